"""``python -m vivified.dataplane.ui``: the Admin UI alone, for development and browser tests.

In production the core serves it (``vivified core`` mounts :func:`create_ui_app` at ``/ui``).
"""

from __future__ import annotations

import argparse
import logging
import ssl
from pathlib import Path

from aiohttp import web

from vivified.dataplane.ui import Options, create_ui_app, from_kubeconfig, in_cluster


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vivified.dataplane.ui")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="use this kubeconfig's cluster (not its user); default: in-cluster",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--namespace", default="", help="namespace listed by default")
    parser.add_argument("--poll-seconds", type=int, default=3)
    parser.add_argument(
        "--insecure-cookie",
        action="store_true",
        help="no Secure flag on the cookie (plain http tests only)",
    )
    parser.add_argument("--tls-cert", type=Path, help="serve https with this certificate")
    parser.add_argument("--tls-key", type=Path, help="... and this key")
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    options = Options(
        default_namespace=args.namespace,
        poll_seconds=args.poll_seconds,
        secure_cookie=not args.insecure_cookie,
    )
    config = from_kubeconfig(args.kubeconfig, options) if args.kubeconfig else in_cluster(options)
    root = web.Application()
    root.add_subapp("/ui", create_ui_app(config))

    async def home(request: web.Request) -> web.Response:
        return web.Response(status=303, headers={"Location": "/ui"})

    root.router.add_get("/", home)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    print(f"vivified ui listening on {args.host}:{args.port}", flush=True)
    web.run_app(root, host=args.host, port=args.port, ssl_context=tls, print=None, access_log=None)


if __name__ == "__main__":
    main()
