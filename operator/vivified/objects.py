"""Facts about Kubernetes objects as plain dicts: which copy is newer, what a cache can drop.

Pure: the informer and the plugin index both use it to keep the newest copy they have seen,
whatever order a write's response and the watch's events arrive in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resource_version(obj: Mapping[str, Any]) -> int | None:
    """The object's resourceVersion as a number, when it is one (etcd's revision)."""
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    if not isinstance(raw, str | int):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def is_older(candidate: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether ``candidate`` is a strictly older copy of the same object than ``current``.

    resourceVersions are opaque by contract but etcd revisions in practice; when they are not
    numbers, or the uid differs (deleted and re-created), the candidate is taken as newer.
    """
    old, new = resource_version(candidate), resource_version(current)
    same = (candidate.get("metadata") or {}).get("uid") == (current.get("metadata") or {}).get(
        "uid"
    )
    return same and old is not None and new is not None and old < new


#: kopf's former diff base, a copy of the whole spec as JSON: operators before issue 17's
#: write budget stored it on every plugin, and plugins created by them still carry it.
_KOPF_ANNOTATIONS = ("vivified.dev/last-handled-configuration",)


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy without what reconcile never reads, for the operator's caches.

    ``managedFields`` is most of a Deployment's size; kopf's last-handled configuration repeats
    the spec; a Secret's data (the plugin's token) is never read back (reconcile goes by the
    annotations), and keeping it out of memory keeps 1,000 tokens out of a heap dump.
    """
    metadata = obj.get("metadata")
    changed = dict(obj)
    if isinstance(metadata, dict):
        meta = {k: v for k, v in metadata.items() if k != "managedFields"}
        notes = meta.get("annotations")
        if isinstance(notes, dict) and any(k in notes for k in _KOPF_ANNOTATIONS):
            meta["annotations"] = {k: v for k, v in notes.items() if k not in _KOPF_ANNOTATIONS}
        changed["metadata"] = meta
    if obj.get("kind") == "Secret":
        changed.pop("data", None)
        changed.pop("stringData", None)
    return changed
