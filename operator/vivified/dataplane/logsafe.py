"""No request, however malformed, puts a credential into a log line.

Two layers:

* ``aiohttp.server`` logs a request it cannot parse at ERROR with the parser's exception,
  whose text quotes the offending header line — a whole bearer token when the bad byte sits
  in ``Authorization``. :class:`BadRequestFilter` keeps the event (remote address, exception
  type) and drops the exception text.
* :class:`RedactingFilter`, on every handler of the root logger, replaces anything shaped like
  a JWT or a ``Bearer``/``Basic`` credential in the final message and traceback text: a last
  line of defence for messages we did not write.
"""

from __future__ import annotations

import logging
import re

__all__ = ["BadRequestFilter", "RedactingFilter", "install", "redact"]

_SECRETS = re.compile(
    r"(?i)(bearer|basic)\s+\S+"
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)?"
)


def redact(text: str) -> str:
    """``text`` with every credential-shaped run replaced by ``[redacted]``."""
    return _SECRETS.sub(lambda m: f"{m.group(1)} [redacted]" if m.group(1) else "[redacted]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        record.msg, record.args = redact(message), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class BadRequestFilter(logging.Filter):
    """For ``aiohttp.server``: keep that a bad request happened, never what it contained."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Error handling request"):
            kind = record.exc_info[0].__name__ if record.exc_info[0] else "error"
            record.msg = "bad request refused (%s; request content withheld)"
            record.args = (kind,)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install() -> None:
    """Attach both filters (idempotent). Call after logging is configured."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in server.filters):
        server.addFilter(BadRequestFilter())
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
