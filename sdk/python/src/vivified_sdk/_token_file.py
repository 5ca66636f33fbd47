"""The plugin's own token, read from the file the operator mounts.

The kubelet replaces a mounted Secret by swapping a symlink (``..data``) to a new directory,
so the token file's inode and mtime change when the operator re-mints the token. ``TokenFile``
stats the path on every read (cheap) and re-reads the content only when that changed: code
that asks for the token on each request always sends the current one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

from . import contract as c

__all__ = ["TokenFile", "TokenFileError"]

MAX_TOKEN_BYTES = 16 * 1024


class TokenFileError(RuntimeError):
    """The token file is missing, empty or unreadable. Never contains the token."""


class TokenFile:
    """``read()`` returns the current token; ``repr`` never shows it."""

    def __init__(self, path: str | os.PathLike[str] = c.DEFAULT_TOKEN_FILE) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int, int] | None = None
        self._token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TokenFile:
        env = os.environ if environ is None else environ
        return cls(env.get(c.ENV_TOKEN_FILE) or c.DEFAULT_TOKEN_FILE)

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    def _stat(self) -> tuple[int, int, int, int]:
        st = os.stat(self.path)  # follows the kubelet's symlinks to the real file
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self, *, force: bool = False) -> str:
        """The current token (re-read when the file changed, or always with ``force``)."""
        with self._lock:
            try:
                signature = self._stat()
                if force or self._token is None or signature != self._signature:
                    with self.path.open("rb") as handle:
                        data = handle.read(MAX_TOKEN_BYTES + 1)
                    if len(data) > MAX_TOKEN_BYTES:
                        raise TokenFileError(f"token file {self.path} is too large")
                    token = data.decode("ascii").strip()
                    if not token:
                        raise TokenFileError(f"token file {self.path} is empty")
                    self._token, self._signature = token, signature
            except (OSError, UnicodeDecodeError) as error:
                if self._token is not None and not force:
                    # Mid-swap or briefly unreadable: the previous token is still the best bet.
                    return self._token
                raise TokenFileError(
                    f"cannot read token file {self.path}: {type(error).__name__}"
                ) from None
            return self._token
