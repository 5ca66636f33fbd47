"""kopf handlers: thin adapters from kopf's events to the runtime. No decisions here."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from vivified.resource import GROUP, PLURAL, VERSION
from vivified.shell.namespaces import is_terminating, watched
from vivified.shell.runtime import Runtime

logger = logging.getLogger(__name__)

RESOURCE = (GROUP, VERSION, PLURAL)
#: Handlers that only feed the index and the queue: their per-event "succeeded" lines say
#: nothing (the reconcile logs what it did), so they are demoted to DEBUG.
QUIET_HANDLERS = ("observe", "namespace-deletion")


class _QuietRoutineHandlers(logging.Filter):
    """Demote kopf's "Handler 'observe' succeeded." (one per watch event) to DEBUG."""

    PREFIXES = tuple(f"Handler {name!r} succeeded" for name in QUIET_HANDLERS)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.getMessage().startswith(self.PREFIXES):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


_QUIET = _QuietRoutineHandlers()


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    """Register the handlers against ``runtime`` (a registry per operator, not kopf's global)."""
    registry = kopf.OperatorRegistry()
    kopf_objects = logging.getLogger("kopf.objects")
    if _QUIET not in kopf_objects.filters:
        kopf_objects.addFilter(_QUIET)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # A private registry has none of kopf's default login handlers; ours logs kopf in with
        # the credentials our own client uses (read again: a rotated token is picked up).
        found = runtime.kube.credentials
        return kopf.ConnectionInfo(
            server=found.server,
            ca_path=found.ca_file,
            insecure=found.insecure or None,
            token=found.bearer(),
            certificate_path=found.cert_file,
            private_key_path=found.key_file,
        )

    @kopf.on.startup(registry=registry)
    async def start(**_: Any) -> None:
        await runtime.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        await runtime.stop()

    @kopf.on.event(*RESOURCE, registry=registry, id="observe")
    async def observe(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        runtime.observe(str(event.get("type")), dict(body))

    if runtime.namespaces:
        # kopf stops a listed namespace's stream before the namespace controller marks its
        # plugins; the runtime follows such a namespace itself (shell/namespaces.py).
        @kopf.on.event("v1", "namespaces", registry=registry, id="namespace-deletion")
        async def namespace_changed(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
            name = body.metadata.name or ""
            if not watched(name, runtime.namespaces):
                return
            if event.get("type") == "DELETED":
                runtime.terminating.drop(name)
            elif is_terminating(body):
                runtime.namespace_terminating(name)

    # No on.create/on.update/on.resume: ``observe`` already indexes and queues every event,
    # and each of those handlers made kopf write its progress and diff base to the plugin.
    # on.delete is what makes kopf keep the finalizer (when the mutating webhook did not add
    # it at creation) and call clean-up on deletion.
    @kopf.on.delete(*RESOURCE, registry=registry, id="revoke-token")
    async def deleted(body: kopf.Body, **_: Any) -> None:
        key = (body.metadata.namespace or "", body.metadata.name or "")
        await runtime.reconciler.finalize(key, dict(body))

    @kopf.on.probe(id="queue", registry=registry)
    def queue_depth(**_: Any) -> int:
        return runtime.queue.depth

    return registry
