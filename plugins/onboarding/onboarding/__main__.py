"""``python -m onboarding``: serve on ``VIVIFIED_PLUGIN_PORT`` (default 8000)."""

from __future__ import annotations

import os

import uvicorn


def main() -> None:
    uvicorn.run(
        "onboarding.app:create_app",
        factory=True,
        host=os.environ.get("ONBOARDING_HOST", "0.0.0.0"),  # noqa: S104 - in a pod
        port=int(os.environ.get("VIVIFIED_PLUGIN_PORT") or 8000),
        server_header=False,
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
