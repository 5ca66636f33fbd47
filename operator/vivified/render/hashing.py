"""The pod-template hash that rolls pods when what they run changes."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vivified.resource import PluginSpec

__all__ = ["canonical_json", "spec_hash"]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace (stable across runs)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: PluginSpec) -> str:
    """sha256 (hex) over the parts of the spec the pods run: manifest, image, env, port.

    ``replicas`` and ``enabled`` are left out on purpose: scaling or disabling must not
    roll pods. The manifest is hashed after parsing, so two spellings of the same manifest
    (a default written out or omitted, keys in another order) hash the same.
    """
    document = {
        "manifest": spec.manifest.model_dump(mode="json"),
        "image": spec.image,
        "env": [{"name": e.name, "value": e.value} for e in spec.env],
        "port": spec.effective_port,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
