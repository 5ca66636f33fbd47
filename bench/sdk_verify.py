"""Benchmark: ``TokenVerifier.verify`` while the JWKS and revocation servers hang.

    python bench/sdk_verify.py [--count 1000]

A real HTTP server on 127.0.0.1 serves the JWKS and the revocation list once, then stalls
(accepts every request and never answers). The verifier's background thread is stuck in a
fetch; this process verifies the same valid token ``--count`` times and reports the total and
per-call time, then the same for refused tokens (unknown kid, garbage). Not a test: the
structural proof that verify never waits is sdk/python/tests/test_sdk_refresh.py.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "sdk" / "python" / "tests"))

from sdk_support import AUD, ISS, Signer, fixed_clock, revocation_document  # noqa: E402
from vivified_sdk import JwksUrl, RevocationUrl, TokenInvalid, TokenVerifier  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    signer = Signer()
    stalled = threading.Event()
    release = threading.Event()
    documents = {"/jwks": json.dumps(signer.jwks()), "/revocations": revocation_document()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if stalled.is_set():
                release.wait(60)
            body = documents.get(self.path, "{}").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            del args

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    jwks = JwksUrl(base + "/jwks", min_refresh_seconds=0, timeout_seconds=60)
    revocations = RevocationUrl(base + "/revocations", refresh_seconds=0.01, timeout_seconds=60)
    verifier = TokenVerifier(
        jwks, audience=AUD, issuer=ISS, revocations=revocations, clock=fixed_clock()
    )
    verifier.refresh_now()
    stalled.set()
    verifier.start()  # the refresh thread now hangs in a fetch
    time.sleep(0.2)
    token = signer.mint()
    started = time.perf_counter()
    for _ in range(args.count):
        verifier.verify(token)
    valid = time.perf_counter() - started
    unknown = Signer().mint()
    started = time.perf_counter()
    for i in range(args.count):
        with contextlib.suppress(TokenInvalid):
            verifier.verify(unknown if i % 2 else f"garbage-{uuid.uuid4()}")
    refused = time.perf_counter() - started
    print(
        f"{args.count} valid verifications with both servers stalled: {valid * 1000:.0f} ms "
        f"({valid / args.count * 1e6:.0f} us each)"
    )
    print(f"{args.count} refusals (unknown kid / garbage):             {refused * 1000:.0f} ms")
    release.set()
    verifier.stop()
    httpd.shutdown()


if __name__ == "__main__":
    main()
