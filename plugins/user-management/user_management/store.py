"""Profiles in a SQLite file: one row per user, attributes as canonical JSON.

A connection per operation keeps it safe under FastAPI's thread pool; WAL mode lets readers
run while a write is in progress. Values are always bound as parameters.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Profile", "ProfileStore", "StoreUnavailable"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    user_id    TEXT PRIMARY KEY,
    attributes TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
)
"""


class StoreUnavailable(RuntimeError):  # noqa: N818
    """The database cannot be opened or used."""


@dataclass(frozen=True)
class Profile:
    user_id: str
    attributes: Mapping[str, Any]
    updated_at: str
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "attributes": dict(self.attributes),
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


class ProfileStore:
    """Extended user attributes, durable across restarts."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False
        self._init_lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"cannot open {self.path}: {error}") from None
        try:
            if not self._ready:
                with self._init_lock:
                    if not self._ready:
                        connection.execute("PRAGMA journal_mode=WAL")
                        connection.execute(_SCHEMA)
                        self._ready = True
            yield connection
        except sqlite3.Error as error:
            raise StoreUnavailable(f"database error: {type(error).__name__}") from None
        finally:
            connection.close()

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers."""
        with self._connect() as db:
            db.execute("SELECT 1").fetchone()

    def get(self, user_id: str) -> Profile | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT user_id, attributes, updated_at, updated_by FROM profiles "
                "WHERE user_id = ?",
                (user_id,),
            ).fetchone()
        if row is None:
            return None
        return Profile(row[0], json.loads(row[1]), row[2], row[3])

    def put(self, user_id: str, attributes: Mapping[str, Any], updated_by: str) -> bool:
        """Replace the user's attributes; True when the profile was created."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = json.dumps(dict(attributes), sort_keys=True, separators=(",", ":"))
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                existed = (
                    db.execute("SELECT 1 FROM profiles WHERE user_id = ?", (user_id,)).fetchone()
                    is not None
                )
                db.execute(
                    "INSERT INTO profiles (user_id, attributes, updated_at, updated_by) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(user_id) DO UPDATE SET "
                    "attributes = excluded.attributes, updated_at = excluded.updated_at, "
                    "updated_by = excluded.updated_by",
                    (user_id, text, stamp, updated_by),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return not existed
