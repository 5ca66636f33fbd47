"""Helpers for the SDK's tests alone: a signing key and a minter made of PyJWT and cryptography
(no operator code, so the SDK's tests run from its own distribution)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

NOW = datetime.now(UTC).replace(microsecond=0)
ISS, AUD = "vivified-operator", "vivified-platform"


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode("ascii")


@dataclass
class Signer:
    """An ES256 key pair with a kid, signing plugin tokens the way the operator does."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": self.kid,
            "x": _b64(numbers.x),
            "y": _b64(numbers.y),
        }

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.jwk]}

    def claims(self, plugin_id: str = "billing", **overrides: Any) -> dict[str, Any]:
        now = int(NOW.timestamp())
        claims: dict[str, Any] = {
            "iss": ISS,
            "sub": f"plugin:{plugin_id}",
            "aud": AUD,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "plugin_id": plugin_id,
            "type": "plugin",
            "traits": ["audit_required"],
            "data_classification": ["internal"],
            "version": "1.0.0",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, plugin_id: str = "billing", **overrides: Any) -> str:
        return jwt.encode(
            self.claims(plugin_id, **overrides),
            self.key,
            algorithm="ES256",
            headers={"kid": self.kid, "typ": "JWT"},
        )


def jti_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def revocation_document(*jtis: str) -> str:
    expiry = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"revoked": dict.fromkeys(jtis, expiry), "version": 1})


class KubeletMount:
    """A Secret volume as the kubelet writes it: files are symlinks into ``..data``, which
    is itself a symlink swapped atomically to a new timestamped directory on update."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    def write(self, files: dict[str, str]) -> None:
        self.generation += 1
        target = self.root / f"..2025_{self.generation:04d}"
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(target.name)
        os.replace(tmp, self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Server:
    """A real HTTP server on 127.0.0.1 serving ``GET`` answers set by the test.

    ``stall`` makes every request wait until ``release`` is set (a hung JWKS endpoint);
    ``requests`` counts what arrived."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.status = 200
        self.requests = 0
        self.stall = threading.Event()
        self.release = threading.Event()
        self.arrived = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                outer.arrived.set()
                if outer.stall.is_set():
                    outer.release.wait(30)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                del args

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, document: object) -> None:
        self.body = (document if isinstance(document, str) else json.dumps(document)).encode()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def fixed_clock() -> Callable[[], datetime]:
    return lambda: NOW
