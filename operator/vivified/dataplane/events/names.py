"""Subjects and consumer names: one place, reversible (the core owns every name here)."""

from __future__ import annotations

SUBJECT_PREFIX = "vivified.events."
DEAD_LETTER_PREFIX = "vivified.deadletter."
CONSUMER_PREFIX = "vd_"


def subject(type_name: str) -> str:
    return SUBJECT_PREFIX + type_name


def dead_letter_subject(subscriber: str, type_name: str) -> str:
    return f"{DEAD_LETTER_PREFIX}{subscriber}.{type_name}"


def consumer_name(subscriber: str, type_name: str) -> str:
    """Durable consumer of (subscriber, type). Plugin ids have no '_', types no '_' or '-'."""
    return f"{CONSUMER_PREFIX}{subscriber}_{type_name.replace('.', '_')}"


def parse_consumer_name(name: str) -> tuple[str, str] | None:
    if not name.startswith(CONSUMER_PREFIX):
        return None
    rest = name[len(CONSUMER_PREFIX) :]
    subscriber, sep, type_part = rest.partition("_")
    if not sep or not subscriber or not type_part:
        return None
    return subscriber, type_part.replace("_", ".")


def msg_id(publisher: str, event_id: str) -> str:
    """Nats-Msg-Id: CloudEvents ids are unique per source, so the publisher is part of it."""
    return f"{publisher}/{event_id}"
