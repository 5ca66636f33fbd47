"""Decide whether a live object already carries everything we would apply.

Server-side apply of an unchanged object is a no-op on the server but still a write request; the
operator promises none, so it compares first. The API server adds defaults and canonicalises
resource quantities ("1000m" comes back as "1"), so the comparison is "desired is contained in
live", with quantities compared by value.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def quantity_value(text: str) -> Decimal | None:
    """The numeric value of a Kubernetes quantity string, or None if it is not one."""
    match = _QUANTITY.match(text)
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
        if suffix[:1] in ("e", "E"):
            return base * (Decimal(10) ** int(suffix[1:]))
        return base * _SUFFIX[suffix]
    except (InvalidOperation, ValueError):
        return None


def _leaf_equal(desired: object, live: object) -> bool:
    if desired == live:
        return True
    if isinstance(desired, str) and isinstance(live, str):
        left, right = quantity_value(desired), quantity_value(live)
        return left is not None and left == right
    return False


def contains(live: object, desired: object) -> bool:
    """True when every field of ``desired`` is present in ``live`` with an equal value.

    Mappings may carry extra keys in ``live`` (server defaults); sequences must have the same
    length and match element by element, because Kubernetes lists we render are atomic or keyed
    in the order we give them.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(key in live and contains(live[key], value) for key, value in desired.items())
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        if not isinstance(live, Sequence) or isinstance(live, str) or len(live) != len(desired):
            return False
        return all(contains(lv, dv) for lv, dv in zip(live, desired, strict=True))
    return _leaf_equal(desired, live)


APPLIED_HASH_ANNOTATION = "vivified.dev/applied-hash"


def fingerprint(obj: Mapping[str, Any]) -> str:
    """A stable digest of an object as rendered, so a field we stop rendering is noticed."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def stamped(desired: Mapping[str, Any]) -> dict[str, Any]:
    """``desired`` with its fingerprint recorded in an annotation."""
    obj = dict(desired)
    metadata = dict(obj.get("metadata", {}))
    annotations = dict(metadata.get("annotations", {}))
    annotations.pop(APPLIED_HASH_ANNOTATION, None)
    metadata["annotations"] = annotations
    obj["metadata"] = metadata
    annotations[APPLIED_HASH_ANNOTATION] = fingerprint(obj)
    return obj


def needs_apply(stamped_desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying ``stamped_desired`` would change anything on the server.

    Containment catches hand edits and deletions; the fingerprint catches fields we used to set
    and no longer render (containment alone cannot see a removed key).
    """
    if live is None:
        return True
    return not contains(live, stamped_desired)
