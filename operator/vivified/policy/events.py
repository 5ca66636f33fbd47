"""The event lane's decisions (pure): may this CloudEvent be published, may it be delivered.

Default deny: a publish passes only for an Active plugin that declared the type, with the
trait the type's classification needs, with a well-formed CloudEvents 1.0 structured body whose
``data`` is valid against the type's schema. Every refusal carries a stable ``reason`` (used in
problem+json, metrics and audit), an HTTP status and a message saying why.

Decisions (docs/events.md): a body's own ``source`` is *refused* unless it equals the
caller's ``vivified://plugins/<id>`` (a mismatch is a spoofing attempt or a bug, and either way
the publisher should hear about it); ``time`` is kept when the publisher set a valid RFC 3339
one (the occurrence time) and set by the core otherwise; ``vivified*`` extension attributes are
the core's (a body setting one is refused).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from vivified.event_types import EventTypeRegistry
from vivified.manifest import EVENTS_ENDPOINT
from vivified.policy.manifest_events import CLASSIFICATION_TRAIT
from vivified.policy.party import Party
from vivified_sdk import contract, loads_strict

SPEC_VERSION = "1.0"
SOURCE_PREFIX = contract.EVENT_SOURCE_PREFIX
#: The core's extension attribute naming the type's data classification.
CLASSIFICATION_ATTR = "vivifiedclassification"
RESERVED_ATTR_PREFIX = "vivified"
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
MAX_ID_LENGTH = 256

_CONTEXT = {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject"}
_EXTENSION_RE = re.compile(r"^[a-z0-9]{1,20}$")
_JSON_CONTENT = re.compile(r"^application/(.+\+)?json\s*(;.*)?$", re.IGNORECASE)


class PluginRecord(Party, Protocol):
    """A plugin as the event decision sees it: a :class:`Party` and its phase."""

    @property
    def phase(self) -> str: ...


@dataclass(frozen=True)
class EventDecision:
    allowed: bool
    reason: str
    message: str
    status: int = 200
    event: Mapping[str, Any] | None = field(default=None)


def _refuse(status: int, reason: str, message: str) -> EventDecision:
    return EventDecision(False, reason, message, status)


def source_of(plugin_id: str) -> str:
    return f"{SOURCE_PREFIX}{plugin_id}"


def parse_body(body: bytes, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> EventDecision:
    """Bytes -> a JSON object, or why not (size first: nothing larger is parsed)."""
    if len(body) > max_bytes:
        return _refuse(
            413, "event_too_large", f"the event is {len(body)} bytes; the limit is {max_bytes}"
        )
    try:
        # Strict (vivified_sdk.loads_strict): no NaN/Infinity (json.dumps would store them and
        # no subscriber could parse the event), no duplicate keys (ambiguous), and a body
        # nested deeper than the recursion limit is refused (found by tests/chaos: plain
        # json.loads raised RecursionError, a 500).
        value = loads_strict(body, max_bytes=max_bytes)
    except ValueError as exc:
        return _refuse(400, "malformed_json", f"the body is not valid JSON ({exc})")
    if not isinstance(value, dict):
        return _refuse(
            400,
            "not_a_cloudevent",
            "the body must be a CloudEvents 1.0 structured JSON object, not "
            f"{type(value).__name__}",
        )
    return EventDecision(True, "ok", "parsed", event=value)


def _shape_problem(body: Mapping[str, Any]) -> EventDecision | None:
    missing = [k for k in ("specversion", "id", "type") if k not in body]
    if missing:
        return _refuse(
            400,
            "not_a_cloudevent",
            f"missing required CloudEvents attribute(s) {', '.join(missing)} "
            "(the core sets 'source' itself)",
        )
    if body["specversion"] != SPEC_VERSION:
        return _refuse(
            400,
            "unsupported_specversion",
            f"specversion must be '1.0', not {body['specversion']!r}",
        )
    event_id = body["id"]
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH:
        return _refuse(
            400, "not_a_cloudevent", f"id must be a non-empty string of at most {MAX_ID_LENGTH}"
        )
    if not isinstance(body["type"], str):
        return _refuse(400, "not_a_cloudevent", "type must be a string")
    if "data_base64" in body:
        return _refuse(
            400, "unsupported_data", "binary data (data_base64) is not accepted; send JSON data"
        )
    content = body.get("datacontenttype", "application/json")
    if not isinstance(content, str) or not _JSON_CONTENT.match(content):
        return _refuse(
            400, "unsupported_data", f"datacontenttype must be application/json, not {content!r}"
        )
    for key, value in body.items():
        if key in _CONTEXT or key in ("data", "time"):
            if key != "data" and not isinstance(value, str):
                return _refuse(400, "not_a_cloudevent", f"attribute {key!r} must be a string")
            continue
        if key.startswith(RESERVED_ATTR_PREFIX):
            return _refuse(
                400, "reserved_attribute", f"attribute {key!r} is set by the core, not by plugins"
            )
        if not _EXTENSION_RE.match(key):
            return _refuse(
                400,
                "not_a_cloudevent",
                f"extension attribute {key!r} must be 1-20 lowercase letters or digits",
            )
        if not isinstance(value, str | int | bool):
            return _refuse(400, "not_a_cloudevent", f"extension attribute {key!r} must be a scalar")
    return None


def _has_trait(record: PluginRecord, classification: str) -> str | None:
    needed = CLASSIFICATION_TRAIT.get(classification)
    if needed and needed not in record.manifest.traits:
        return needed
    return None


def decide_publish(
    publisher: PluginRecord | None,
    body: Mapping[str, Any],
    registry: EventTypeRegistry,
    now: datetime,
) -> EventDecision:
    """The canonical event to store, or why the publish is refused (default deny)."""
    if publisher is None:
        return _refuse(403, "unknown_plugin", "the token's plugin is not known to the core")
    if not publisher.active:
        return _refuse(
            403, "plugin_inactive", f"plugin {publisher.plugin_id!r} is {publisher.phase}"
        )
    problem = _shape_problem(body)
    if problem is not None:
        return problem
    own_source = source_of(publisher.plugin_id)
    if "source" in body and body["source"] != own_source:
        return _refuse(
            403,
            "source_mismatch",
            f"source {str(body['source'])[:100]!r} is not yours: the core sets source to "
            f"{own_source!r} (omit it or send exactly that)",
        )
    type_name = body["type"]
    event_type = registry.get(type_name)
    if event_type is None:
        return _refuse(
            400, "unknown_event_type", f"event type {type_name[:100]!r} is not registered"
        )
    declared = publisher.manifest.events.publishes if publisher.manifest.events else []
    if type_name not in declared:
        return _refuse(
            403,
            "type_not_declared",
            f"plugin {publisher.plugin_id!r} does not declare {type_name!r} in events.publishes",
        )
    missing = _has_trait(publisher, event_type.classification)
    if missing:
        return _refuse(
            403,
            "missing_trait",
            f"{type_name!r} is {event_type.classification!r}: publishing needs {missing!r}",
        )
    if "data" not in body:
        return _refuse(422, "data_invalid", f"{type_name!r} events need 'data'")
    errors = event_type.data_errors(body["data"])
    if errors:
        return _refuse(
            422,
            "data_invalid",
            f"data does not match the {type_name!r} schema: " + "; ".join(errors),
        )
    event = dict(body)
    event["source"] = own_source
    if "time" in event:
        try:
            datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        except ValueError:
            return _refuse(400, "not_a_cloudevent", "time must be an RFC 3339 timestamp")
    else:
        event["time"] = now.isoformat().replace("+00:00", "Z")
    event.setdefault("datacontenttype", "application/json")
    event[CLASSIFICATION_ATTR] = event_type.classification
    return EventDecision(True, "published", f"{type_name} accepted", 201, event)


def decide_delivery(
    subscriber: PluginRecord | None, type_name: str, registry: EventTypeRegistry
) -> EventDecision:
    """May this event type be delivered to this subscriber now (checked on every delivery)."""
    if subscriber is None:
        return _refuse(404, "unknown_plugin", "the subscriber is not known to the core")
    if not subscriber.active:
        return _refuse(
            409, "subscriber_inactive", f"{subscriber.plugin_id!r} is {subscriber.phase}; paused"
        )
    event_type = registry.get(type_name)
    if event_type is None:
        return _refuse(404, "unknown_event_type", f"{type_name!r} is no longer registered")
    events = subscriber.manifest.events
    if events is None or type_name not in events.subscribes:
        return _refuse(403, "type_not_declared", f"{type_name!r} not in events.subscribes")
    missing = _has_trait(subscriber, event_type.classification)
    if missing:
        return _refuse(
            403,
            "missing_trait",
            f"{type_name!r} is {event_type.classification!r}: needs {missing!r}",
        )
    if EVENTS_ENDPOINT not in subscriber.manifest.endpoints:
        return _refuse(403, "no_events_endpoint", "the subscriber has no endpoints.events")
    return EventDecision(True, "deliver", "ok")
