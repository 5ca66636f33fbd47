"""The operator's signing keys over time: one active key plus recently retired public keys.

Rotation is two-phase so verifiers learn a key before they see tokens signed with it (JWKS
copies propagate with a delay: ConfigMap/Secret volumes refresh on the kubelet's sync period):

1. ``stage`` publishes the *next* key in the JWKS while the active key keeps signing;
2. ``rotate`` makes the staged (or any new) key active and retires the old one.

``rotation_due`` tells the shell which step, if any, is due.

A retired key stays published in the JWKS until ``retire_until``: the moment the last token
it could have signed expires (``retired_at + ttl``) plus a grace period that covers verifier
leeway and clock skew. After that it is pruned.

Serialised form (the ``signing_key_secret`` Secret, key ``keyring.json``; the shell does the
base64 of Secret ``data``)::

    {"version": 1,
     "active": {"kid": ..., "created_at": RFC3339, "private_pem": PEM},
     "next": {same shape as active} | null,
     "retired": [{"kid", "crv", "x", "y", "retired_at", "retire_until"}, ...]}

Only the *active* and *next* keys' private halves are stored; retired keys keep only their
public JWK members.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from vivified_sdk import contract

from .keys import (
    CURVE,
    KeyMaterialError,
    SigningKey,
    ec_public_jwk,
    load_signing_key,
    public_jwk_members,
)
from .timeutil import format_rfc3339, parse_rfc3339, require_aware

__all__ = [
    "DEFAULT_ROTATION_GRACE_SECONDS",
    "JWKS_CONFIGMAP_KEY",
    "KEYRING_SECRET_KEY",
    "KeyChange",
    "KeyRing",
    "KeyRingError",
    "RetiredKey",
    "RotationStep",
    "jwks",
    "jwks_to_configmap_data",
    "key_changes",
    "keyring_from_secret_data",
    "keyring_to_secret_data",
    "needs_rotation",
    "prune_keyring",
    "rotate",
    "rotation_due",
    "stage",
]

KEYRING_SECRET_KEY = "keyring.json"  # noqa: S105 - a data key
JWKS_CONFIGMAP_KEY = contract.JWKS_FILE_NAME
DEFAULT_ROTATION_GRACE_SECONDS = 60
_FORMAT_VERSION = 1


class KeyRingError(ValueError):
    """The stored key ring is unreadable. Messages never contain key material."""


@dataclass(frozen=True, order=True)
class RetiredKey:
    """Public half of a key that no longer signs but may still verify tokens."""

    retired_at: datetime
    kid: str
    x: str
    y: str
    retire_until: datetime
    crv: str = CURVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "retired_at", require_aware(self.retired_at, "retired_at"))
        object.__setattr__(self, "retire_until", require_aware(self.retire_until, "retire_until"))

    def public_jwk(self) -> dict[str, str]:
        return ec_public_jwk(self.kid, self.crv, self.x, self.y)


@dataclass(frozen=True)
class KeyRing:
    """Immutable: ``rotate`` and ``prune_keyring`` return new rings."""

    active: SigningKey
    #: Newest first; kids unique and never equal to the active kid.
    retired: tuple[RetiredKey, ...] = field(default=())
    #: Staged key: published in the JWKS, not yet signing.
    next: SigningKey | None = None

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.retired, key=lambda r: (r.retired_at, r.kid), reverse=True))
        object.__setattr__(self, "retired", ordered)
        kids = self.kids
        if len(set(kids)) != len(kids):
            raise KeyRingError("key ids in a key ring must be unique")

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id in JWKS order: active, next (if staged), retired newest first."""
        staged = (self.next.kid,) if self.next is not None else ()
        return (self.active.kid, *staged, *(r.kid for r in self.retired))


def stage(keyring: KeyRing, next_key: SigningKey) -> KeyRing:
    """Publish ``next_key`` in the JWKS ahead of signing with it (replaces any staged key)."""
    if next_key.kid == keyring.active.kid:
        raise ValueError("the staged key is already the active key")
    others = tuple(r for r in keyring.retired if r.kid != next_key.kid)
    return KeyRing(active=keyring.active, retired=others, next=next_key)


def rotate(
    keyring: KeyRing,
    new_key: SigningKey,
    now: datetime,
    ttl_seconds: int,
    *,
    grace_seconds: int = DEFAULT_ROTATION_GRACE_SECONDS,
) -> KeyRing:
    """Make ``new_key`` active; the old active key is retired until ``now + ttl + grace``.

    ``ttl_seconds`` must be the longest lifetime of any token the old key signed. Pass
    ``keyring.next`` to promote the staged key; any other key discards the staged one.
    """
    now = require_aware(now)
    if ttl_seconds <= 0 or grace_seconds < 0:
        raise ValueError("ttl_seconds must be positive and grace_seconds >= 0")
    if new_key.kid == keyring.active.kid:
        raise ValueError("the new key is already the active key")
    old = keyring.active
    crv, x, y = public_jwk_members(old.public_jwk())
    retired_old = RetiredKey(
        retired_at=now,
        kid=old.kid,
        x=x,
        y=y,
        crv=crv,
        retire_until=now + timedelta(seconds=ttl_seconds + grace_seconds),
    )
    others = tuple(r for r in keyring.retired if r.kid != new_key.kid)
    return KeyRing(active=new_key, retired=(retired_old, *others), next=None)


def prune_keyring(keyring: KeyRing, now: datetime) -> KeyRing:
    """Drop retired keys whose ``retire_until`` is at or before ``now``."""
    now = require_aware(now)
    kept = tuple(r for r in keyring.retired if r.retire_until > now)
    if kept == keyring.retired:
        return keyring
    return replace(keyring, retired=kept)


def needs_rotation(keyring: KeyRing, now: datetime, max_age_seconds: int) -> bool:
    """True once the active key is ``max_age_seconds`` old (or older)."""
    age = require_aware(now) - keyring.active.created_at
    return age >= timedelta(seconds=max_age_seconds)


RotationStep = Literal["stage", "rotate"]


def rotation_due(
    keyring: KeyRing,
    now: datetime,
    *,
    max_age_seconds: int,
    publish_ahead_seconds: int,
) -> RotationStep | None:
    """Which rotation step is due at ``now``, if any.

    ``"rotate"`` once the active key is ``max_age_seconds`` old; ``"stage"`` from
    ``publish_ahead_seconds`` before that when no key is staged yet; otherwise ``None``.
    """
    age = require_aware(now) - keyring.active.created_at
    if age >= timedelta(seconds=max_age_seconds):
        return "rotate"
    stage_at = timedelta(seconds=max(0, max_age_seconds - publish_ahead_seconds))
    if keyring.next is None and age >= stage_at:
        return "stage"
    return None


@dataclass(frozen=True)
class KeyChange:
    """One step of a key ring's life that changes what signs or what verifiers trust.

    Key ids only (they are public JWKS members): a change is announced and audited, and
    neither may ever hold key material.
    """

    step: Literal["created", "staged", "rotated"]
    kid: str
    """The key the step is about: the new active key, or the staged one."""
    previous_kid: str = ""
    """For ``rotated``: the key that signed until now (verifies until ``retire_until``)."""
    retire_until: datetime | None = None


def key_changes(before: KeyRing | None, after: KeyRing) -> tuple[KeyChange, ...]:
    """What changed from ``before`` (None: there was no key ring) to ``after``, in order.

    Pruning an expired retired key is not a change here: it was announced when it retired.
    """
    if before is None:
        changes: list[KeyChange] = [KeyChange("created", after.active.kid)]
    elif before.active.kid != after.active.kid:
        retired = next((r for r in after.retired if r.kid == before.active.kid), None)
        changes = [
            KeyChange(
                "rotated",
                after.active.kid,
                previous_kid=before.active.kid,
                retire_until=retired.retire_until if retired is not None else None,
            )
        ]
    else:
        changes = []
    staged_before = before.next.kid if before is not None and before.next is not None else None
    if after.next is not None and after.next.kid != staged_before:
        changes.append(KeyChange("staged", after.next.kid))
    return tuple(changes)


def jwks(keyring: KeyRing, now: datetime | None = None) -> dict[str, list[dict[str, str]]]:
    """``{"keys": [...]}``: active key, staged next key, then retired keys newest first.

    With ``now``, retired keys past ``retire_until`` are left out (same rule as prune).
    """
    retired = keyring.retired
    if now is not None:
        moment = require_aware(now)
        retired = tuple(r for r in retired if r.retire_until > moment)
    staged = [keyring.next.public_jwk()] if keyring.next is not None else []
    return {"keys": [keyring.active.public_jwk(), *staged, *(r.public_jwk() for r in retired)]}


def _dumps(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def jwks_to_configmap_data(document: Mapping[str, Any]) -> dict[str, str]:
    """ConfigMap ``data`` for the public JWKS: ``{"jwks.json": <canonical JSON>}``."""
    return {JWKS_CONFIGMAP_KEY: _dumps(document)}


def _private_doc(key: SigningKey) -> dict[str, str]:
    return {
        "kid": key.kid,
        "created_at": format_rfc3339(key.created_at),
        "private_pem": key.private_pem.decode("ascii"),
    }


def _private_key_from_doc(doc: object, where: str) -> SigningKey:
    if not isinstance(doc, dict):
        raise KeyRingError(f"{where} must be an object")
    try:
        return load_signing_key(
            _str(doc, "private_pem", where),
            created_at=_time(doc, "created_at", where),
            kid=_str(doc, "kid", where),
        )
    except KeyMaterialError as exc:
        raise KeyRingError(f"{where} key: {exc}") from None


def keyring_to_secret_data(keyring: KeyRing) -> dict[str, str]:
    """Secret data (plain strings; base64 is the caller's job): ``{"keyring.json": ...}``."""
    document = {
        "version": _FORMAT_VERSION,
        "active": _private_doc(keyring.active),
        "next": _private_doc(keyring.next) if keyring.next is not None else None,
        "retired": [
            {
                "kid": r.kid,
                "crv": r.crv,
                "x": r.x,
                "y": r.y,
                "retired_at": format_rfc3339(r.retired_at),
                "retire_until": format_rfc3339(r.retire_until),
            }
            for r in keyring.retired
        ],
    }
    return {KEYRING_SECRET_KEY: _dumps(document)}


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise KeyRingError(f"{where}.{key} must be a non-empty string")
    return value


def _time(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    try:
        return parse_rfc3339(_str(obj, key, where))
    except ValueError:
        raise KeyRingError(f"{where}.{key} must be an RFC 3339 timestamp") from None


def keyring_from_secret_data(data: Mapping[str, str]) -> KeyRing:
    """Inverse of ``keyring_to_secret_data``. Raises ``KeyRingError`` on any problem."""
    raw = data.get(KEYRING_SECRET_KEY)
    if raw is None:
        raise KeyRingError(f"secret has no {KEYRING_SECRET_KEY!r} entry")
    try:
        document = json.loads(raw)
    except (ValueError, TypeError):
        raise KeyRingError(f"{KEYRING_SECRET_KEY} is not valid JSON") from None
    if not isinstance(document, dict):
        raise KeyRingError(f"{KEYRING_SECRET_KEY} must be a JSON object")
    if document.get("version") != _FORMAT_VERSION:
        raise KeyRingError(f"unsupported key ring version {document.get('version')!r}")
    key = _private_key_from_doc(document.get("active"), "active")
    next_doc = document.get("next")
    next_key = _private_key_from_doc(next_doc, "next") if next_doc is not None else None
    retired_docs = document.get("retired", [])
    if not isinstance(retired_docs, list):
        raise KeyRingError("retired must be a list")
    retired: list[RetiredKey] = []
    for i, item in enumerate(retired_docs):
        where = f"retired[{i}]"
        if not isinstance(item, dict):
            raise KeyRingError(f"{where} must be an object")
        try:
            crv, x, y = public_jwk_members(
                {"kty": "EC", "crv": item.get("crv"), "x": item.get("x"), "y": item.get("y")}
            )
        except KeyMaterialError as exc:
            raise KeyRingError(f"{where}: {exc}") from None
        retired.append(
            RetiredKey(
                retired_at=_time(item, "retired_at", where),
                kid=_str(item, "kid", where),
                x=x,
                y=y,
                crv=crv,
                retire_until=_time(item, "retire_until", where),
            )
        )
    return KeyRing(active=key, retired=tuple(retired), next=next_key)
