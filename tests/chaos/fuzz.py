"""Hostile input for the core's entry points, in-process (shared by tests and bench/fuzz.py).

Each ``*_case`` sends one generated request through the real aiohttp app built by
``vivified.dataplane.app.build_app`` on a ``tests.unit.core_fakes.World`` (heartbeat, invoke,
the event lane's publish with an in-memory JetStream, the proxy lane's allowlist route), or
one generated AdmissionReview object through the registered kopf validate handler, and
returns a ``Problem`` string when the answer breaks the contract (None when it is fine). The
proxy's own listener (raw bytes on a socket) is fuzzed in tests/chaos/fuzz_proxy.py.

* the answer is well formed: a status below 500 (a 502/503/504 about an upstream or trust state
  is allowed, a 500 never), and a JSON body whenever the content type says JSON;
* no traceback, no Python exception text in the body.

The webhook handler may only return (allowed) or raise ``kopf.AdmissionError`` (denied); any
other exception is what kopf would turn into a 500 for the API server.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import string
import tempfile
from pathlib import Path
from typing import Any, cast

import aiohttp
import kopf
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import strategies as st
from tests.unit.core_fakes import World, manifest

from vivified.dataplane.app import build_app
from vivified.dataplane.context import CoreContext
from vivified.dataplane.events import EventLane, EventLaneSettings
from vivified.dataplane.events.publish import handle_publish
from vivified.dataplane.proxy import http as proxy_http
from vivified.manifest import PluginManifest
from vivified.policy.events import DEFAULT_MAX_EVENT_BYTES
from vivified.registry import PluginRegistry
from vivified.shell.webhook import WEBHOOK_ID, SheddingWebhookServer, register_admission
from vivified_sdk import contract, loads_strict

HEARTBEAT = "/v1/heartbeat"
INVOKE = "/v1/invoke/"
EVENTS = contract.CORE_EVENTS_PATH
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
#: Framing headers are the HTTP client's to write (aiohttp's test client refuses a bad
#: Content-Length before sending); raw framing is fuzzed over a socket in fuzz_proxy.py.
_FRAMING = frozenset({"content-length", "transfer-encoding", "host"})
extra_headers = st.dictionaries(
    st.text(alphabet=string.ascii_letters + "-", min_size=1, max_size=20).filter(
        lambda name: name.lower() not in _FRAMING
    ),
    _header_value,
    max_size=4,
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

_resource = st.one_of(
    st.just({"group": "vivified.dev", "version": "v1alpha1", "resource": "vivifiedplugins"}),
    json_values,
)
_review_request = st.fixed_dictionaries(
    {
        "resource": _resource,
        "userInfo": st.one_of(st.just({"username": "kubernetes-admin"}), json_values),
        "object": st.one_of(admission_objects, json_values),
    },
    optional={
        "uid": st.one_of(st.uuids().map(str), json_values),
        "operation": st.one_of(operations, json_values),
        "oldObject": st.one_of(st.none(), admission_objects, json_values),
        "namespace": st.one_of(_text, json_values),
        "name": st.one_of(_text, json_values),
        "subResource": json_values,
        "dryRun": json_values,
    },
)
#: What may reach the webhook's port: reviews with hostile parts, bare requests, garbage.
review_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "apiVersion": st.one_of(st.just("admission.k8s.io/v1"), json_values),
            "kind": st.one_of(st.just("AdmissionReview"), json_values),
            "request": st.one_of(_review_request, json_values),
        }
    ).map(lambda v: json.dumps(v).encode()),
    _review_request.map(lambda r: json.dumps({"request": r}).encode()),
    bodies,
)

#: Bodies JSON parsers choke on: nesting deeper than Python's recursion limit (a RecursionError
#: is not a ValueError), unbalanced, and sizes around the event lane's limit.
deep_json = st.builds(
    lambda n, open_, close: open_ * n + close * n,
    st.one_of(st.sampled_from([999, 1000, 1001, 5000, 30_000]), st.integers(1, 40_000)),
    st.sampled_from(
        [b"[", b'{"a":', b'{"specversion":"1.0","id":"d","type":"UserCreated","data":']
    ),
    st.sampled_from([b"]", b"}", b""]),
)
_PAD_HEAD = b'{"specversion":"1.0","id":"x","type":"UserCreated","data":{"user_id":"'
_PAD_TAIL = b'"}}'


def _padded(size: int) -> bytes:
    """A valid-looking event of exactly SIZE bytes (its user_id too long for the schema)."""
    return _PAD_HEAD + b"u" * (size - len(_PAD_HEAD) - len(_PAD_TAIL)) + _PAD_TAIL


near_limit = st.sampled_from([-1, 0, 1]).map(lambda d: _padded(DEFAULT_MAX_EVENT_BYTES + d))
EVENT_TYPES = ["UserCreated", "PaymentReceived", "PatientAdmitted", "DocumentProcessed", "Nope"]
_event_data = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "user_id": st.one_of(_text, json_values),
            "email": _text,
            "roles": st.one_of(st.lists(_text, max_size=70), json_values),
            "payment_id": _text,
            "amount": st.one_of(st.from_regex(r"[0-9]{1,8}(\.[0-9]{1,6})?", fullmatch=True), _text),
            "currency": st.one_of(st.from_regex(r"[A-Za-z]{2,4}", fullmatch=True), json_values),
            "patient_id": _text,
            "encounter_id": _text,
            "admitted_at": st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), _text),
        },
    ),
)
cloudevents = st.builds(
    lambda extensions, event: {**extensions, **event},
    st.dictionaries(st.text(max_size=25), json_values, max_size=3),
    st.fixed_dictionaries(
        {},
        optional={
            "specversion": st.one_of(st.just("1.0"), json_values),
            "id": st.one_of(st.text(min_size=1, max_size=300), json_values),
            "type": st.one_of(st.sampled_from(EVENT_TYPES), json_values),
            "source": st.one_of(_text, json_values),
            "subject": st.one_of(_text, json_values),
            "time": st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), json_values),
            "datacontenttype": st.one_of(
                st.sampled_from(["application/json", "text/plain", "application/json; x=y"]),
                json_values,
            ),
            "data": _event_data,
            "data_base64": _text,
        },
    ),
)
#: A publishable event with at most one attribute replaced by a hostile value (so the schema,
#: source, time and extension checks and the store are reached, not only the shape checks).
nearly_valid_events = st.builds(
    lambda event_id, user_id, extra: {
        "specversion": "1.0",
        "id": event_id,
        "type": "UserCreated",
        "data": {"user_id": user_id},
        **extra,
    },
    st.uuids().map(str),
    st.text(min_size=1, max_size=20),
    st.dictionaries(
        st.sampled_from(
            ["source", "time", "subject", "datacontenttype", "data", "ext1", "vivifiedx", "id"]
        ),
        st.one_of(json_values, st.just("vivified://plugins/hr")),
        max_size=1,
    ),
)
event_bodies = st.one_of(
    nearly_valid_events.map(lambda v: json.dumps(v).encode()),
    cloudevents.map(lambda v: json.dumps(v).encode()),
    cloudevents.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    bodies,
    deep_json,
    near_limit,
)
#: Mostly the publisher's own token and a JSON type: hostile bodies must get past the front door
#: to reach the parser (a random token is refused before the body is read).
event_bearers = st.sampled_from([True, True, True, False]).flatmap(
    lambda valid: st.just("VALID") if valid else bearers
)
event_content_types = st.one_of(
    st.just(contract.CLOUDEVENTS_CONTENT_TYPE),
    st.just(contract.CLOUDEVENTS_CONTENT_TYPE),
    st.sampled_from(
        [
            contract.CLOUDEVENTS_CONTENT_TYPE,
            "application/json",
            f"{contract.CLOUDEVENTS_CONTENT_TYPE}; charset=utf-8",
            "text/plain",
            "",
        ]
    ),
    _header_value,
)


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
    client: CaseClient,
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
    client: CaseClient,
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


async def events_case(
    client: CaseClient,
    valid: dict[str, str],
    *,
    bearer: str | None,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
) -> str | None:
    response = await client.post(
        EVENTS,
        data=body,
        headers={**headers, "Content-Type": content_type, **_auth(bearer, valid)},
    )
    return await check_answer(response)


async def allowlists_case(
    client: CaseClient,
    valid: dict[str, str],
    *,
    method: str,
    bearer: str | None,
    headers: dict[str, str],
) -> str | None:
    response = await client.request(
        method, proxy_http.ALLOWLISTS_PATH, headers={**headers, **_auth(bearer, valid)}
    )
    return await check_answer(response)


async def webhook_case(endpoint: WebhookEndpoint, body: bytes) -> str | None:
    """One body POSTed to the operator's webhook server (HTTPS, kopf's real admission path):
    any answer but a 500; a 200 must be an AdmissionReview response with ``allowed``."""
    async with endpoint.session.post(
        endpoint.url, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        problem = await check_answer(response)
        if problem is not None or response.status != 200:
            return problem
        try:
            answer = json.loads(await response.read())
            allowed = answer["response"]["allowed"]
        except (ValueError, KeyError, TypeError):
            return f"200 without an AdmissionReview response: {(await response.read())[:200]!r}"
        return None if isinstance(allowed, bool) else f"allowed is {allowed!r}"


class WebhookEndpoint:
    """The operator's webhook server (``SheddingWebhookServer``) on loopback with a
    throw-away certificate, and a client session that trusts it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from tests.chaos import webhook_load  # noqa: PLC0415 - only for the webhook cases
        from tests.cluster_support import self_signed_certificate  # noqa: PLC0415

        self.loop = loop
        self.directory = Path(tempfile.mkdtemp(prefix="fuzz-webhook-"))
        cert, key = self_signed_certificate(self.directory)
        self.server = SheddingWebhookServer(
            max_in_flight=64, addr="127.0.0.1", port=0, certfile=str(cert), pkeyfile=str(key)
        )
        self._serving = webhook_load.serving(self.server, webhook_load.admission_fn())
        self.url: str = loop.run_until_complete(self._serving.__aenter__())
        self.session: aiohttp.ClientSession = loop.run_until_complete(
            self._session(webhook_load.client_context(cert))
        )

    @staticmethod
    async def _session(context: ssl.SSLContext) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.run_until_complete(self._serving.__aexit__(None, None, None))
        shutil.rmtree(self.directory, ignore_errors=True)


class _Ack:
    def __init__(self, duplicate: bool) -> None:
        self.duplicate = duplicate


class MemoryJetStream:
    """Stores what the event lane publishes (counts and the last ids only: bounded memory),
    de-duplicating on ``Nats-Msg-Id`` like JetStream's window."""

    def __init__(self) -> None:
        self.stored = 0
        self.ids: dict[str, None] = {}

    async def publish(
        self, subject: str, payload: bytes, *, headers: dict[str, str], **_: Any
    ) -> _Ack:
        loads_strict(payload)  # the lane stores strict JSON, always (no NaN, no duplicates)
        key = headers["Nats-Msg-Id"]
        if key in self.ids:
            return _Ack(True)
        self.ids[key] = None
        if len(self.ids) > 1000:
            self.ids.pop(next(iter(self.ids)))
        self.stored += 1
        return _Ack(False)


class StoredEventLane(EventLane):
    """The real event lane (publish path, registry, audit, metrics) on an in-memory store
    instead of a NATS connection; it delivers nothing."""

    def __init__(self, ctx: CoreContext) -> None:
        super().__init__(ctx, EventLaneSettings(nats_url="nats://127.0.0.1:1"))
        self.memory = MemoryJetStream()

    @property
    def js(self) -> Any:
        return self.memory

    @property
    def ready(self) -> bool:
        return True


def _fuzz_lanes(app: web.Application, ctx: CoreContext) -> None:
    lane = StoredEventLane(ctx)

    async def publish(request: web.Request) -> web.Response:
        return await handle_publish(lane, request)

    app.router.add_post(EVENTS, publish)
    app.add_routes(proxy_http.routes(ctx.directory, "enforce", ctx.authenticator))


PUBLISHER = PluginManifest.model_validate(
    {
        **manifest("hr", traits=["handles_pii", "handles_phi", "audit_required"]).model_dump(),
        "events": {"publishes": ["UserCreated", "PaymentReceived", "PatientAdmitted"]},
        "security": {"authentication_required": True, "data_classification": ["pii", "phi"]},
    }
)


def admission_handler() -> Any:
    registry = kopf.OperatorRegistry()

    class _Runtime:
        def __init__(self) -> None:
            self.registry = PluginRegistry()
            self.policy = None

    register_admission(registry, cast(Any, _Runtime()))
    (handler,) = [h for h in registry._webhooks.get_all_handlers() if h.id == WEBHOOK_ID]
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


class CaseClient:
    """Requests to the test server that keep nothing once answered.

    aiohttp's TestClient holds every response until it closes (to release them then), so a
    run of 10,000 cases grew by tens of MiB that were the harness's, not the server's: the
    "bounded memory" check measured the wrong thing. URLs are built as the TestClient builds
    them (``TestServer.make_url``: relative paths only, so no case can address another host).
    """

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    async def request(self, method: str, path: str, **options: Any) -> aiohttp.ClientResponse:
        return await self.session.request(method, self.server.make_url(path), **options)

    async def post(self, path: str, **options: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **options)

    async def close(self) -> None:
        await self.session.close()
        await self.server.close()


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
        self.world.add(PUBLISHER)
        self.valid = self.world.bearer(a)
        self.publisher = self.world.bearer(PUBLISHER)
        app = build_app(self.world.ctx, [_fuzz_lanes])
        server = TestServer(app, loop=self.loop)
        self.loop.run_until_complete(server.start_server())
        self.client = self.loop.run_until_complete(self._client(server))
        self.admission = admission_handler()
        self._webhook: WebhookEndpoint | None = None

    @staticmethod
    async def _client(server: TestServer) -> CaseClient:
        return CaseClient(server)  # a ClientSession is made inside the loop it runs on

    @property
    def webhook(self) -> WebhookEndpoint:
        """Started on first use (only the webhook cases need a TLS server)."""
        if self._webhook is None:
            self._webhook = WebhookEndpoint(self.loop)
        return self._webhook

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        if self._webhook is not None:
            self._webhook.close()
        self.loop.run_until_complete(self.client.close())
        self.loop.close()
