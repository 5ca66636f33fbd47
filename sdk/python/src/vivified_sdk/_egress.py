"""The proxy lane's client side: external HTTP through the core's proxy.

Reserved for issue 9: an ``httpx`` client (sync and async) whose proxy is the core's
``proxy`` port (``contract.CORE_PROXY_PORT``) with this plugin's token in
``Proxy-Authorization``, re-read from the token file on every request. Export new names from
``vivified_sdk/__init__.py`` and pin them in ``tests/test_public_api.py``.
"""

from __future__ import annotations

__all__: list[str] = []
