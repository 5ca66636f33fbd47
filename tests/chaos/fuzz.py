"""Hostile input for the core's entry points, in-process (shared by tests and bench/fuzz.py).

Each ``*_case`` sends one generated request through the real aiohttp app built by
``vivified.dataplane.app.build_app`` on a ``tests.unit.core_fakes.World``, or one generated
AdmissionReview object through the registered kopf validate handler, and returns a
``Problem`` string when the answer breaks the contract (None when it is fine):

* the answer is well formed: a status below 500 (a 502/503/504 about an upstream or trust state
  is allowed, a 500 never), and a JSON body whenever the content type says JSON;
* no traceback, no Python exception text in the body.

The webhook handler may only return (allowed) or raise ``kopf.AdmissionError`` (denied); any
other exception is what kopf would turn into a 500 for the API server.
"""

from __future__ import annotations

import asyncio
import json
import string
from typing import Any, cast

import kopf
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import strategies as st
from tests.unit.core_fakes import World, manifest

from vivified.dataplane.app import build_app
from vivified.registry import PluginRegistry
from vivified.shell.webhook import register_admission

HEARTBEAT = "/v1/heartbeat"
INVOKE = "/v1/invoke/"
_LEAKS = ("Traceback", 'File "', "Error:", "Exception")

# --- strategies -------------------------------------------------------------------------------

_text = st.text(max_size=40)
_token_chars = string.ascii_letters + string.digits + "-_."
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
bearers = st.one_of(
    st.none(),
    st.just("VALID"),
    st.builds(lambda s: f"Bearer {s}", st.text(alphabet=_token_chars, max_size=80)),
    _header_value,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["status", "plugin_id", "ts", "details", "health", "x"]),
        json_values,
        max_size=5,
    ).map(lambda v: json.dumps(v).encode()),
)
_segment = st.text(
    alphabet=st.sampled_from(list(string.ascii_letters + string.digits + "-_.~%/:@!$&'()*+,;=")),
    max_size=20,
)
paths = st.one_of(
    st.lists(_segment, max_size=5).map("/".join),
    st.builds(lambda a, b: f"{a}/{b}", st.sampled_from(["a", "b", "..", "%2e%2e", ""]), _segment),
)
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
extra_headers = st.dictionaries(
    st.text(alphabet=string.ascii_letters + "-", min_size=1, max_size=20), _header_value, max_size=4
)


def _metadata() -> st.SearchStrategy[Any]:
    return st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.one_of(_text, json_values),
                "namespace": st.one_of(_text, json_values),
                "labels": json_values,
                "annotations": json_values,
            },
        ),
    )


def _manifest() -> st.SearchStrategy[Any]:
    keys = [
        "id",
        "name",
        "version",
        "description",
        "contracts",
        "traits",
        "dependencies",
        "allowed_domains",
        "endpoints",
        "security",
        "compliance",
        "health_check",
        "resources",
    ]
    return st.one_of(json_values, st.dictionaries(st.sampled_from(keys), json_values, max_size=8))


admission_objects = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.one_of(st.just("vivified.dev/v1alpha1"), json_values),
        "kind": st.one_of(st.just("VivifiedPlugin"), json_values),
        "metadata": _metadata(),
        "spec": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "manifest": _manifest(),
                    "image": st.one_of(_text, json_values),
                    "enabled": json_values,
                    "replicas": json_values,
                },
            ),
        ),
        "status": json_values,
    },
)
operations = st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "", "weird"])


# --- checks -----------------------------------------------------------------------------------


async def check_answer(response: Any) -> str | None:
    body = await response.read()
    text = body.decode(errors="replace")
    if response.status == 500:
        return f"500: {text[:200]!r}"
    if response.status > 504:
        return f"status {response.status}"
    for leak in _LEAKS:
        if leak in text:
            return f"{response.status} leaks {leak!r}: {text[:200]!r}"
    if response.content_type == "application/json" and body:
        try:
            json.loads(body)
        except ValueError:
            return f"{response.status} says JSON but is not: {text[:200]!r}"
    return None


_JSON = {"Content-Type": "application/json"}


def _auth(bearer: str | None, valid: dict[str, str]) -> dict[str, str]:
    if bearer is None:
        return {}
    if bearer == "VALID":
        return dict(valid)
    return {"Authorization": bearer}


async def heartbeat_case(
    client: TestClient[web.Request, web.Application],
    valid: dict[str, str],
    bearer: str | None,
    body: bytes,
    headers: dict[str, str],
) -> str | None:
    response = await client.post(
        HEARTBEAT, data=body, headers={**_JSON, **headers, **_auth(bearer, valid)}
    )
    return await check_answer(response)


async def invoke_case(
    client: TestClient[web.Request, web.Application],
    valid: dict[str, str],
    *,
    method: str,
    path: str,
    bearer: str | None,
    body: bytes,
    headers: dict[str, str],
) -> str | None:
    response = await client.request(
        method,
        INVOKE + path,
        data=body if method not in ("GET", "HEAD") else None,
        headers={**_JSON, **headers, **_auth(bearer, valid)},
    )
    return await check_answer(response)


def admission_handler() -> Any:
    registry = kopf.OperatorRegistry()

    class _Runtime:
        def __init__(self) -> None:
            self.registry = PluginRegistry()
            self.policy = None

    register_admission(registry, cast(Any, _Runtime()))
    (handler,) = registry._webhooks.get_all_handlers()
    return handler.fn


async def admission_case(
    fn: Any, obj: dict[str, Any], old: Any, operation: str, namespace: str | None
) -> str | None:
    warnings: list[str] = []
    try:
        await fn(
            body=kopf.Body(cast(kopf.RawBody, obj)),
            warnings=warnings,
            namespace=namespace,
            operation=operation,
            old=old,
        )
    except kopf.AdmissionError as denied:
        if not str(denied):
            return "denied without a message"
    except Exception as error:  # that is exactly what we look for
        return f"{type(error).__name__}: {error}"[:300]
    if not all(isinstance(w, str) for w in warnings):
        return f"non-string warning {warnings!r}"
    return None


class Driver:
    """One event loop and one test client of the core's app, shared by many generated cases
    (hypothesis runs synchronous functions; starting a server per case would cost more than
    the case)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.world = World()
        a = manifest("a", dependencies=["b"])
        self.world.add(a)
        self.world.add(manifest("b"))
        self.valid = self.world.bearer(a)
        app = build_app(self.world.ctx)
        self.client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(app), loop=self.loop
        )
        self.loop.run_until_complete(self.client.start_server())
        self.admission = admission_handler()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()
