"""Verify the plugin tokens that callers present, with cached public keys and revocations.

The checks themselves are ``vivified.tokens.verify_plugin_token`` (ES256 only, kid must be
published, signature, issuer, audience, times, type/sub, revocation): this module only keeps
its inputs fresh without hitting the disk or the network on every request.

* JWKS from a file (the operator mounts ``jwks.json`` next to the token) and/or a URL. The
  file is re-read when it changes; the URL is re-fetched when a token names a key we do not
  know — at most once per ``min_refresh_seconds``, so a flood of tokens with made-up key ids
  cannot turn into a flood of fetches — and otherwise every ``max_age_seconds``.
* Revocations from a file in the operator's ``revoked.json`` format (or a JSON list of
  jtis) and/or a URL serving the same document (in a cluster: the operator's
  ``GET /plugins/revocations``, passed as ``VIVIFIED_REVOCATIONS_URL``). The URL is re-fetched
  every ``refresh_seconds`` (default 15 s) from the verifying call itself, never more often.
* Fail closed. When a revocation source is configured but has never been readable, or (URL)
  the last successful fetch is older than ``max_stale_seconds`` (default 5 min), every token
  is rejected. Profiles and other PHI/PII sit behind these tokens (HIPAA): a revoked token
  must not keep working silently because the list could not be fetched, so an outage of the
  revocation source is a visible outage (401s) rather than a quiet security gap. Staleness
  bounds how long a revocation can go unseen.

Tokens are never logged here; fetch failures are logged with the URL and the error only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt

from vivified.tokens import (
    REVOCATIONS_CONFIGMAP_KEY,
    RevocationListError,
    TokenInvalid,
    VerifiedToken,
    revocations_from_configmap_data,
    verify_plugin_token,
)

from .config import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    DEFAULT_JWKS_FILE,
    ENV_AUDIENCE,
    ENV_ISSUER,
    ENV_JWKS_FILE,
    ENV_JWKS_URL,
    ENV_REVOCATIONS_FILE,
    ENV_REVOCATIONS_URL,
    first,
    optional,
)

__all__ = [
    "JwksCache",
    "RevocationFile",
    "RevocationSource",
    "RevocationUrl",
    "StaticRevocations",
    "TokenVerifier",
]

logger = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_TOKEN_LENGTH = 8 * 1024


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _stat_signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _read_json_file(path: Path) -> Any:
    with path.open("rb") as handle:
        data = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{path} is larger than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(data)


def _keys_of(document: Any) -> list[dict[str, Any]]:
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError("not a JWKS document")
    return [dict(k) for k in keys if isinstance(k, Mapping) and isinstance(k.get("kid"), str)]


class JwksCache:
    """Public keys from a file and/or URL, refreshed on change / unknown kid / age."""

    def __init__(
        self,
        *,
        file: str | os.PathLike[str] | None = None,
        url: str | None = None,
        min_refresh_seconds: float = 30.0,
        max_age_seconds: float = 300.0,
        http: httpx.Client | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if file is None and url is None:
            raise ValueError("JwksCache needs a file, a URL or both")
        self._file = Path(file) if file is not None else None
        self._url = url
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._http = http
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._file_signature: tuple[int, int, int, int] | None = None
        self._file_keys: list[dict[str, Any]] = []
        self._url_keys: list[dict[str, Any]] = []
        self._url_fetched_at: float | None = None
        #: How many times the URL was fetched (tests and metrics).
        self.fetches = 0

    def _refresh_file(self) -> None:
        if self._file is None:
            return
        signature = _stat_signature(self._file)
        if signature is None or signature == self._file_signature:
            return
        try:
            self._file_keys = _keys_of(_read_json_file(self._file))
            self._file_signature = signature
        except (OSError, ValueError):
            pass  # keep the last good keys; a half-written file is retried next time

    def _fetch_url(self) -> None:
        if self._url is None:
            return
        self._url_fetched_at = self._monotonic()
        self.fetches += 1
        client = self._http or httpx.Client(timeout=5.0, trust_env=False)
        try:
            response = client.get(self._url, headers={"Accept": "application/json"})
            if response.status_code == 200 and len(response.content) <= MAX_DOCUMENT_BYTES:
                self._url_keys = _keys_of(response.json())
        except (httpx.HTTPError, ValueError):
            pass  # keep the last good keys
        finally:
            if self._http is None:
                client.close()

    def document(self, kid: str | None = None) -> dict[str, Any]:
        """The JWKS to verify against; refreshed first if ``kid`` is not known yet."""
        with self._lock:
            self._refresh_file()
            now = self._monotonic()
            fetched = self._url_fetched_at
            if self._url is not None:
                expired = fetched is None or now - fetched >= self._max_age
                unknown = kid is not None and not self._knows(kid)
                may_refetch = fetched is not None and now - fetched >= self._min_refresh
                if expired or (unknown and may_refetch):
                    self._fetch_url()
            merged: dict[str, dict[str, Any]] = {}
            for key in (*self._file_keys, *self._url_keys):
                merged.setdefault(key["kid"], key)
            return {"keys": list(merged.values())}

    def _knows(self, kid: str) -> bool:
        return any(k["kid"] == kid for k in (*self._file_keys, *self._url_keys))


class RevocationSource(Protocol):
    """Where revoked token ids come from. Raise ``TokenInvalid`` when unusable."""

    def jtis(self) -> Collection[str]: ...


class StaticRevocations:
    """A fixed set of revoked jtis (tests, or a platform that pushes them in)."""

    def __init__(self, jtis: Collection[str] = ()) -> None:
        self._jtis = frozenset(jtis)

    def jtis(self) -> Collection[str]:
        return self._jtis


class RevocationFile:
    """The operator's ``revoked.json`` (``{"revoked": {jti: expiry}, "version": 1}``) or a
    JSON list of jtis, re-read when the file changes. Fails closed until read once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int, int] | None = None
        self._jtis: frozenset[str] | None = None

    def jtis(self) -> Collection[str]:
        with self._lock:
            signature = _stat_signature(self.path)
            if signature is not None and signature != self._signature:
                try:
                    self._jtis = self._load()
                    self._signature = signature
                except (OSError, ValueError, RevocationListError):
                    pass  # keep the last good list
            if self._jtis is None:
                raise TokenInvalid("revocation list unavailable")
            return self._jtis

    def _load(self) -> frozenset[str]:
        return _jtis_of(_read_json_file(self.path))


def _jtis_of(document: Any) -> frozenset[str]:
    """Revoked jtis from the operator's ``revoked.json`` document or a JSON list of jtis."""
    if isinstance(document, list):
        if not all(isinstance(j, str) for j in document):
            raise ValueError("revocation list must contain strings")
        return frozenset(document)
    text = json.dumps(document)
    return revocations_from_configmap_data({REVOCATIONS_CONFIGMAP_KEY: text}).jtis


class RevocationUrl:
    """The revocation list served over HTTP (the operator's ``GET /plugins/revocations``).

    Fetched from the calling thread when the last attempt is ``refresh_seconds`` old (after
    a failure: ``retry_seconds``), so a flood of requests never becomes a flood of fetches.
    A failed fetch keeps the last good list, but only while it is younger than
    ``max_stale_seconds``: never fetched, or stale, means every token is refused (see the
    module docstring for why this fails closed).
    """

    def __init__(
        self,
        url: str,
        *,
        refresh_seconds: float = 15.0,
        max_stale_seconds: float = 300.0,
        retry_seconds: float = 2.0,
        timeout_seconds: float = 5.0,
        http: httpx.Client | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url:
            raise ValueError("RevocationUrl needs a URL")
        if max_stale_seconds < refresh_seconds:
            raise ValueError("max_stale_seconds must be at least refresh_seconds")
        self.url = url
        self._refresh = refresh_seconds
        self._max_stale = max_stale_seconds
        self._retry = min(retry_seconds, refresh_seconds)
        self._timeout = timeout_seconds
        self._http = http
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._jtis: frozenset[str] | None = None
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None
        self._failing = False
        #: How many times the URL was fetched (tests and metrics).
        self.fetches = 0

    def _due(self, now: float) -> bool:
        if self._attempted_at is None:
            return True
        wait = self._retry if self._failing else self._refresh
        return now - self._attempted_at >= wait

    def _fetch(self, now: float) -> None:
        self._attempted_at = now
        self.fetches += 1
        client = self._http or httpx.Client(timeout=self._timeout, trust_env=False)
        try:
            response = client.get(self.url, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            if len(response.content) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"larger than {MAX_DOCUMENT_BYTES} bytes")
            jtis = _jtis_of(json.loads(response.content))
        except (httpx.HTTPError, ValueError) as error:  # RevocationListError is a ValueError
            if not self._failing:
                logger.warning("revocation list fetch from %s failed: %s", self.url, error)
            self._failing = True
            return
        finally:
            if self._http is None:
                client.close()
        if self._failing:
            logger.info("revocation list fetch from %s works again", self.url)
        self._failing = False
        self._jtis = jtis
        self._loaded_at = self._monotonic()

    def jtis(self) -> Collection[str]:
        with self._lock:
            now = self._monotonic()
            if self._due(now):
                self._fetch(now)
                now = self._monotonic()
            if self._jtis is None or self._loaded_at is None:
                raise TokenInvalid("revocation list unavailable")
            if now - self._loaded_at > self._max_stale:
                raise TokenInvalid("revocation list stale")
            return self._jtis


class _AllRevocations:
    """Several sources at once: a jti revoked by any is revoked; any unusable fails closed."""

    def __init__(self, *sources: RevocationSource) -> None:
        self.sources = sources

    def jtis(self) -> Collection[str]:
        merged: set[str] = set()
        for source in self.sources:
            merged.update(source.jtis())
        return merged


class TokenVerifier:
    """Verifies incoming plugin tokens. Thread-safe; cheap after the first call."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        audience: str = DEFAULT_AUDIENCE,
        issuer: str = DEFAULT_ISSUER,
        revocations: RevocationSource | None = None,
        leeway: int = 30,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.jwks = jwks
        self.audience = audience
        self.issuer = issuer
        self.revocations = revocations
        self.leeway = leeway
        self._clock = clock

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        revocations_refresh_seconds: float = 15.0,
        revocations_max_stale_seconds: float = 300.0,
        http: httpx.Client | None = None,
    ) -> TokenVerifier:
        """``VIVIFIED_JWKS_FILE`` (default ``/var/run/vivified/jwks.json``) and/or
        ``VIVIFIED_JWKS_URL``; ``VIVIFIED_REVOCATIONS_FILE`` and/or
        ``VIVIFIED_REVOCATIONS_URL`` if set (both: a jti in either is revoked, and either
        unusable refuses every token); issuer and audience from
        ``VIVIFIED_TOKEN_ISSUER``/``TOKEN_ISSUER`` and ``VIVIFIED_TOKEN_AUDIENCE``/
        ``TOKEN_AUDIENCE`` (defaults: the operator's). ``http`` is used for both URLs."""
        env = os.environ if environ is None else environ
        url = optional(env, ENV_JWKS_URL)
        file = optional(env, ENV_JWKS_FILE)
        if file is None and url is None:
            file = DEFAULT_JWKS_FILE
        sources: list[RevocationSource] = []
        revocations_file = optional(env, ENV_REVOCATIONS_FILE)
        if revocations_file:
            sources.append(RevocationFile(revocations_file))
        revocations_url = optional(env, ENV_REVOCATIONS_URL)
        if revocations_url:
            sources.append(
                RevocationUrl(
                    revocations_url,
                    refresh_seconds=revocations_refresh_seconds,
                    max_stale_seconds=revocations_max_stale_seconds,
                    http=http,
                )
            )
        revocations: RevocationSource | None
        if not sources:
            revocations = None
        elif len(sources) == 1:
            revocations = sources[0]
        else:
            revocations = _AllRevocations(*sources)
        return cls(
            JwksCache(file=file, url=url, http=http),
            audience=first(env, ENV_AUDIENCE, DEFAULT_AUDIENCE),
            issuer=first(env, ENV_ISSUER, DEFAULT_ISSUER),
            revocations=revocations,
            clock=clock,
        )

    def verify(self, token: str) -> VerifiedToken:
        """Every check of docs/tokens.md; raises ``TokenInvalid`` (reason safe to log)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("malformed token")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise TokenInvalid("malformed token") from None
        revoked = self.revocations.jtis() if self.revocations is not None else ()
        return verify_plugin_token(
            token,
            self.jwks.document(kid if isinstance(kid, str) else None),
            audience=self.audience,
            issuer=self.issuer,
            revoked_jtis=revoked,
            now=self._clock(),
            leeway=self.leeway,
        )

    def verify_authorization(self, header: str | None) -> VerifiedToken:
        """Verify an ``Authorization: Bearer <token>`` header value."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenInvalid("missing bearer token")
        return self.verify(token.strip())
