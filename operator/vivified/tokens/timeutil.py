"""Timestamps for tokens: the SDK's functions (``vivified_sdk.timestamps``), one implementation.

Re-exported here so the token modules import from inside their own package.
"""

from __future__ import annotations

from vivified_sdk.timestamps import (
    format_rfc3339,
    from_epoch,
    parse_rfc3339,
    require_aware,
    to_epoch,
)

__all__ = ["format_rfc3339", "from_epoch", "parse_rfc3339", "require_aware", "to_epoch"]
