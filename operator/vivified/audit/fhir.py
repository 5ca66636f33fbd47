"""FHIR R4 AuditEvent for a record (docs/audit.md has the table).

R4 because that is what deployed FHIR servers and SIEM connectors accept today; the chain
fields travel in an extension so an exported event can be traced back to its stored record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

NS: Final = "https://vivified.dev"
AUDIT_EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ROLE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
CHAIN_EXTENSION: Final = f"{NS}/fhir/StructureDefinition/audit-chain"

#: action → AuditEvent.action (C create, R read, U update, D delete, E execute).
_CRUDE: Final = {
    "event.publish": "C",
    "lifecycle.created": "C",
    "lifecycle.token_minted": "C",
    "lifecycle.deleted": "D",
    "lifecycle.token_revoked": "D",
}
_OUTCOME: Final = {"allowed": "0", "refused": "4", "error": "8"}


def _type(lane: str) -> dict[str, str]:
    if lane in ("operator", "proxy", "event", "heartbeat"):
        return {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
    return {"system": DCM, "code": "110100", "display": "Application Activity"}


def _crude(action: str) -> str:
    if action in _CRUDE:
        return _CRUDE[action]
    if action.startswith(("lifecycle.", "ui.")):
        return "U"
    return "E"


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def to_audit_event(record: Mapping[str, object]) -> dict[str, object]:
    """The AuditEvent resource for one stored record."""
    agent = _mapping(record.get("agent"))
    entity = _mapping(record.get("entity"))
    details = _mapping(record.get("details"))
    action = str(record.get("action", ""))
    is_user = agent.get("type") == "user"
    event: dict[str, object] = {
        "resourceType": "AuditEvent",
        "id": f"{record.get('writer')}-{record.get('seq')}",
        "type": _type(str(record.get("lane", ""))),
        "subtype": [{"system": f"{NS}/audit/action", "code": action}],
        "action": _crude(action),
        "recorded": record.get("time"),
        "outcome": _OUTCOME.get(str(record.get("outcome")), "8"),
        "agent": [
            {
                "type": {
                    "coding": [
                        {"system": ROLE_TYPE, "code": "humanuser" if is_user else "dataprocessor"}
                    ]
                },
                "who": {
                    "identifier": {
                        "system": f"{NS}/{'kubernetes-user' if is_user else 'plugin'}",
                        "value": agent.get("id"),
                    }
                },
                "requestor": bool(agent.get("requestor", True)),
            }
        ],
        "source": {
            "observer": {"display": str(record.get("writer"))},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "extension": [
            {
                "url": CHAIN_EXTENSION,
                "extension": [
                    {"url": "writer", "valueString": str(record.get("writer"))},
                    {"url": "seq", "valueInteger": record.get("seq")},
                    {"url": "hash", "valueString": str(record.get("hash"))},
                    {"url": "prev", "valueString": str(record.get("prev"))},
                ],
            }
        ],
    }
    if record.get("reason"):
        event["outcomeDesc"] = record["reason"]
    purpose = record.get("purpose_of_use")
    if isinstance(purpose, str):
        coding = {"system": ACT_REASON, "code": purpose} if purpose.isupper() else None
        event["purposeOfEvent"] = [{"coding": [coding]} if coding else {"text": purpose}]
    if entity or details:
        what = entity.get("target") or entity.get("host") or entity.get("event_type")
        item: dict[str, object] = {
            "detail": [
                {"type": str(k), "valueString": str(v)}
                for k, v in [*entity.items(), *details.items()]
            ]
        }
        if what:
            item["what"] = {"identifier": {"system": f"{NS}/entity", "value": str(what)}}
        event["entity"] = [item]
    return event
