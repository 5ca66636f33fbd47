"""The event lane's client side: publishing and receiving canonical events.

Reserved for issue 10: ``publish(event_type, data)`` (``POST {contract.CORE_EVENTS_PATH}``,
CloudEvents 1.0 structured JSON; the core sets ``source``) and the receiving half (parse and
verify a delivery POSTed to the plugin's ``endpoints.events`` path with a call token). Export
new names from ``vivified_sdk/__init__.py`` and pin them in ``tests/test_public_api.py``.
"""

from __future__ import annotations

__all__: list[str] = []
