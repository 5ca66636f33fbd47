"""Where a verifier's public keys and revoked token ids come from.

Reading a source never touches the network: ``document()`` / ``jtis()`` return a snapshot.
URL sources are refreshed by ``refresh()``, which only the verifier's background thread calls
(``TokenVerifier.start``). Files are stat-ed on read (one local ``stat``; re-read on change).

Fail closed (HIPAA): a revocation source that was never loaded, or whose last good load is
older than ``max_stale_seconds``, raises ``VerifierUnavailable`` and every token is refused: a
revoked token must not keep working quietly because the list could not be fetched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx

from ._errors import VerifierUnavailable
from ._revocations import revoked_jtis
from ._strict_json import loads_strict

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "JwksFile",
    "JwksSource",
    "JwksUrl",
    "Polled",
    "RevocationFile",
    "RevocationSource",
    "RevocationUrl",
    "StaticJwks",
    "StaticRevocations",
    "all_jwks",
    "all_revocations",
    "polled_parts",
]

logger = logging.getLogger("vivified_sdk")

MAX_DOCUMENT_BYTES = 256 * 1024
_Signature = tuple[int, int, int, int]


class JwksSource(Protocol):
    """Public keys to verify against. Never blocks on the network."""

    def document(self) -> Mapping[str, Any]:
        """The current JWKS; ``VerifierUnavailable`` when there is none to use."""
        ...

    def missing(self, kid: str) -> None:
        """A token named a key id not in ``document()``: a hint to refresh soon."""
        ...


class RevocationSource(Protocol):
    """Revoked token ids. Never blocks on the network."""

    def jtis(self) -> Collection[str]:
        """The current set; ``VerifierUnavailable`` when unusable (fail closed)."""
        ...


def _keys_of(document: object) -> list[dict[str, Any]]:
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError("not a JWKS document")
    return [dict(k) for k in keys if isinstance(k, Mapping) and isinstance(k.get("kid"), str)]


def _stat_signature(path: Path) -> _Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _read_json_file(path: Path) -> object:
    with path.open("rb") as handle:
        return loads_strict(handle.read(MAX_DOCUMENT_BYTES + 1), max_bytes=MAX_DOCUMENT_BYTES)


class StaticJwks:
    """A fixed JWKS (tests, or a server that holds its keys in memory)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = {"keys": _keys_of(document)}

    def document(self) -> Mapping[str, Any]:
        return self._document

    def missing(self, kid: str) -> None:
        del kid


class StaticRevocations:
    """A fixed set of revoked jtis (tests, or a platform that pushes them in)."""

    def __init__(self, jtis: Collection[str] = ()) -> None:
        self._jtis = frozenset(jtis)

    def jtis(self) -> Collection[str]:
        return self._jtis


class _WatchedFile:
    """A JSON file re-read when its stat changes; the last good content survives a bad write."""

    def __init__(self, path: str | os.PathLike[str], parse: Callable[[object], Any]) -> None:
        self.path = Path(path)
        self._parse = parse
        self._lock = threading.Lock()
        self._signature: _Signature | None = None
        self._value: Any = None

    def value(self) -> Any:
        signature = _stat_signature(self.path)
        if signature is not None and signature != self._signature:
            with self._lock:
                if signature != self._signature:
                    try:
                        self._value = self._parse(_read_json_file(self.path))
                        self._signature = signature
                    except (OSError, ValueError):
                        pass  # half-written or broken: keep the last good content
        return self._value


class JwksFile:
    """``jwks.json`` as the operator mounts it next to the token."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = _WatchedFile(path, lambda doc: {"keys": _keys_of(doc)})

    @property
    def path(self) -> Path:
        return self._file.path

    def document(self) -> Mapping[str, Any]:
        value: Mapping[str, Any] | None = self._file.value()
        return value if value is not None else {"keys": []}

    def missing(self, kid: str) -> None:
        del kid  # the kubelet swaps the file in; the next read sees it


class RevocationFile:
    """``revoked.json`` (or a JSON list of jtis), re-read on change. Fails closed until read."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = _WatchedFile(path, revoked_jtis)

    @property
    def path(self) -> Path:
        return self._file.path

    def jtis(self) -> Collection[str]:
        value: frozenset[str] | None = self._file.value()
        if value is None:
            raise VerifierUnavailable("revocation list unavailable")
        return value


class Polled:
    """A source refreshed over HTTP by the verifier's background thread.

    ``refresh()`` is the only method that does I/O. The snapshot it leaves behind is one
    attribute replaced at once, so readers need no lock and never wait for a fetch.
    """

    def __init__(
        self,
        url: str,
        *,
        refresh_seconds: float,
        retry_seconds: float,
        timeout_seconds: float,
        http: httpx.Client | None,
        monotonic: Callable[[], float],
    ) -> None:
        if not url:
            raise ValueError(f"{type(self).__name__} needs a URL")
        self.url = url
        self._refresh = refresh_seconds
        self._retry = min(retry_seconds, refresh_seconds)
        self._timeout = timeout_seconds
        self._http = http
        self._monotonic = monotonic
        self._attempted_at: float | None = None
        self._failing = False
        self._wanted = False
        #: Set by the background refresher: wakes it up early.
        self.wake: Callable[[], None] = lambda: None
        #: How many times the URL was fetched (tests and metrics).
        self.fetches = 0

    @property
    def attempted(self) -> bool:
        return self._attempted_at is not None

    def due_in(self) -> float:
        """Seconds until the next fetch (0 or less: now), on this source's clock."""
        if self._attempted_at is None or self._wanted:
            return 0.0
        wait = self._retry if self._failing else self._refresh
        return self._attempted_at + wait - self._monotonic()

    def refresh(self) -> None:
        """Fetch once (blocking). Failures keep the last good snapshot and are logged once."""
        self._attempted_at = self._monotonic()
        self._wanted = False
        self.fetches += 1
        try:
            self._load(self._get())
        except (httpx.HTTPError, ValueError) as error:
            if not self._failing:
                logger.warning("fetch of %s failed: %s", self.url, error)
            self._failing = True
            return
        if self._failing:
            logger.info("fetch of %s works again", self.url)
        self._failing = False

    def _get(self) -> object:
        client = self._http or httpx.Client(timeout=self._timeout, trust_env=False)
        try:
            with client.stream("GET", self.url, headers={"Accept": "application/json"}) as reply:
                if reply.status_code != 200:
                    raise ValueError(f"HTTP {reply.status_code}")
                body = b""
                for chunk in reply.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise ValueError(f"larger than {MAX_DOCUMENT_BYTES} bytes")
            return loads_strict(body, max_bytes=MAX_DOCUMENT_BYTES)
        finally:
            if self._http is None:
                client.close()

    def _load(self, document: object) -> None:
        raise NotImplementedError


class JwksUrl(Polled):
    """The JWKS over HTTP: every ``refresh_seconds``, and soon after a token names an unknown
    key id — but at most once per ``min_refresh_seconds``, so made-up key ids cannot turn
    into a flood of fetches. A failed fetch keeps the last good keys."""

    def __init__(
        self,
        url: str,
        *,
        refresh_seconds: float = 300.0,
        min_refresh_seconds: float = 30.0,
        retry_seconds: float = 5.0,
        timeout_seconds: float = 5.0,
        http: httpx.Client | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            url,
            refresh_seconds=refresh_seconds,
            retry_seconds=retry_seconds,
            timeout_seconds=timeout_seconds,
            http=http,
            monotonic=monotonic,
        )
        self._min_refresh = min_refresh_seconds
        self._document: Mapping[str, Any] = {"keys": []}

    def _load(self, document: object) -> None:
        self._document = {"keys": _keys_of(document)}

    def document(self) -> Mapping[str, Any]:
        return self._document

    def missing(self, kid: str) -> None:
        del kid
        last = self._attempted_at
        if last is not None and self._monotonic() - last >= self._min_refresh:
            self._wanted = True
            self.wake()


class RevocationUrl(Polled):
    """The revocation list over HTTP (``revoked.json`` as the platform serves it), fetched
    every ``refresh_seconds`` (after a failure: ``retry_seconds``). Never loaded, or last
    loaded more than ``max_stale_seconds`` ago: ``VerifierUnavailable`` (fail closed)."""

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
        if max_stale_seconds < refresh_seconds:
            raise ValueError("max_stale_seconds must be at least refresh_seconds")
        super().__init__(
            url,
            refresh_seconds=refresh_seconds,
            retry_seconds=retry_seconds,
            timeout_seconds=timeout_seconds,
            http=http,
            monotonic=monotonic,
        )
        self._max_stale = max_stale_seconds
        self._snapshot: tuple[frozenset[str], float] | None = None

    def _load(self, document: object) -> None:
        self._snapshot = (revoked_jtis(document), self._monotonic())

    def jtis(self) -> Collection[str]:
        snapshot = self._snapshot
        if snapshot is None:
            raise VerifierUnavailable("revocation list unavailable")
        jtis, loaded_at = snapshot
        if self._monotonic() - loaded_at > self._max_stale:
            raise VerifierUnavailable("revocation list stale")
        return jtis


class _AllJwks:
    """Several key sources: the first source naming a kid wins."""

    def __init__(self, *parts: JwksSource) -> None:
        self.parts = parts

    def document(self) -> Mapping[str, Any]:
        merged: dict[str, Mapping[str, Any]] = {}
        for part in self.parts:
            for key in part.document().get("keys", []):
                merged.setdefault(key["kid"], key)
        return {"keys": list(merged.values())}

    def missing(self, kid: str) -> None:
        for part in self.parts:
            part.missing(kid)


class _AllRevocations:
    """Several lists: a jti revoked by any is revoked; any unusable fails closed."""

    def __init__(self, *parts: RevocationSource) -> None:
        self.parts = parts

    def jtis(self) -> Collection[str]:
        merged: set[str] = set()
        for part in self.parts:
            merged.update(part.jtis())
        return merged


def all_jwks(*parts: JwksSource) -> JwksSource:
    return parts[0] if len(parts) == 1 else _AllJwks(*parts)


def all_revocations(*parts: RevocationSource) -> RevocationSource | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else _AllRevocations(*parts)


def polled_parts(*sources: object) -> list[Polled]:
    """Every ``Polled`` source inside ``sources`` (looking into combined ones)."""
    found: list[Polled] = []
    for source in sources:
        if isinstance(source, Polled):
            found.append(source)
        elif isinstance(source, _AllJwks | _AllRevocations):
            found.extend(polled_parts(*source.parts))
    return found
