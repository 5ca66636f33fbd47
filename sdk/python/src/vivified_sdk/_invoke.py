"""The operator lane's client side: calling another plugin through the core.

Reserved for issue 16: ``CoreClient.invoke(target, operation, ...)`` (and a sync twin) sending
``{METHOD} {contract.CORE_INVOKE_PATH}/{target}/{operation}[/{rest}]`` with this plugin's
token, and a ``verify_call_token`` for the call tokens the core mints for the target. Export
new names from ``vivified_sdk/__init__.py`` and pin them in ``tests/test_public_api.py``.
"""

from __future__ import annotations

__all__: list[str] = []
