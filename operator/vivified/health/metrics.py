"""Metrics: hostile input in, a few small scalars out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from vivified.health.limits import (
    _METRIC_KEY,
    MAX_BODY_BYTES,
    MAX_MESSAGE_LENGTH,
    MAX_METRIC_DEPTH,
    MAX_METRIC_INT,
    MAX_METRIC_KEY_LENGTH,
    MAX_METRIC_STRING_LENGTH,
    MAX_METRICS,
    MetricValue,
)
from vivified_sdk import loads_strict


def _metric_value(value: object) -> MetricValue | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) <= MAX_METRIC_INT else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        ok = len(value) <= MAX_METRIC_STRING_LENGTH and value.isprintable()
        return value if ok else None
    return None


def sanitize_metrics(document: object) -> dict[str, MetricValue]:
    """Numbers and short printable strings from a JSON object, flattened and capped.

    Keys must match ``[A-Za-z_][A-Za-z0-9_.-]*`` and be at most 64 characters (after
    flattening ``{"memory": {"rss": 1}}`` to ``memory.rss``); booleans, nulls, lists, huge
    integers, non-finite floats and long or non-printable strings are dropped. The first
    ``MAX_METRICS`` keys in sorted order are kept, so the result does not depend on the
    order the plugin sent them in.
    """
    found: dict[str, MetricValue] = {}
    budget = [4 * MAX_METRICS * MAX_METRICS]  # items looked at, whatever the body holds

    def walk(obj: Mapping[Any, Any], prefix: str, depth: int) -> None:
        for key, value in obj.items():
            budget[0] -= 1
            if budget[0] < 0:
                return
            if not isinstance(key, str):
                continue
            name = f"{prefix}{key}"
            if len(name) > MAX_METRIC_KEY_LENGTH or not _METRIC_KEY.match(key):
                continue
            if isinstance(value, Mapping):
                if depth < MAX_METRIC_DEPTH:
                    walk(value, name + ".", depth + 1)
                continue
            clean = _metric_value(value)
            if clean is not None:
                found[name] = clean

    if isinstance(document, Mapping):
        walk(document, "", 1)
    return {k: found[k] for k in sorted(found)[:MAX_METRICS]}


def load_json(body: bytes) -> object:
    """Strict JSON (no NaN/Infinity, no duplicate keys; ``vivified_sdk.loads_strict``, the
    helper plugins use too); ValueError on anything else."""
    return loads_strict(body, max_bytes=MAX_BODY_BYTES)


def metrics_from_body(body: bytes) -> dict[str, MetricValue] | None:
    """Metrics from a health endpoint's response body; None when it is not a JSON object."""
    try:
        document = load_json(body)
    except ValueError:
        return None
    return sanitize_metrics(document) if isinstance(document, Mapping) else None


def _message(text: str) -> str:
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= MAX_MESSAGE_LENGTH else clean[: MAX_MESSAGE_LENGTH - 3] + "..."
