"""A test ground for the proxy lane on loopback: a test CA, upstream servers, keys, a proxy.

Nothing here touches the internet or real DNS: names resolve through the proxy's TEST-ONLY
static map, loopback is admitted through the TEST-ONLY allowed networks, and every dial the
proxy makes is recorded (and refused unless it is a loopback address).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vivified import tokens
from vivified.audit.hook import MemoryAuditor
from vivified.dataplane.auth import Authenticator
from vivified.dataplane.directory import StaticDirectory
from vivified.dataplane.proxy import ProxyMetrics, ProxyServer, ProxySettings
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import CoreKey, TrustState
from vivified.manifest import PluginManifest

ISS, AUD = "vivified-operator", "vivified-platform"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class LoopbackCA:
    """A throw-away CA and one server certificate for the given names."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def create(cls, names: Collection[str]) -> LoopbackCA:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vivified test CA")])
        start = datetime.now(UTC) - timedelta(minutes=5)
        end = start + timedelta(days=1)
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, next(iter(names)))]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca.public_bytes(serialization.Encoding.PEM),
            leaf.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def server_context(self, tmp: Path) -> ssl.SSLContext:
        (tmp / "cert.pem").write_bytes(self.cert_pem)
        (tmp / "key.pem").write_bytes(self.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())


@dataclass
class Upstream:
    """A loopback server: ``echo`` relays bytes back; ``http`` answers every request once."""

    mode: str
    tls: ssl.SSLContext | None = None
    accepted: int = 0
    requests: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            if self.mode == "echo":
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            else:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                payload = b"hello from upstream" + (b": " + body if body else b"")
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


@dataclass
class Keys:
    """The operator's key ring and the core's trust state (JWKS, revocations) built from it:
    the proxy checks tokens with the core's own :class:`Authenticator`, as in production."""

    ring: tokens.KeyRing
    trust: TrustState
    revoked: tokens.RevocationList = field(default_factory=tokens.RevocationList)

    @classmethod
    def create(cls, tmp: Path | None = None) -> Keys:
        del tmp
        ring = tokens.KeyRing(active=tokens.generate_signing_key(NOW))
        trust = TrustState(CoreKey(tokens.generate_signing_key(NOW)))
        trust.set_jwks(tokens.jwks_to_configmap_data(tokens.jwks(ring)))
        keys = cls(ring, trust)
        trust.set_revocations(tokens.revocations_to_configmap_data(keys.revoked))
        return keys

    def verifier(self, directory: StaticDirectory | None = None) -> Authenticator:
        settings = CoreSettings(token_issuer=ISS, token_audience=AUD)
        return Authenticator(
            self.trust, directory or StaticDirectory(), settings, lambda: datetime.now(UTC)
        )

    def revoke(self, minted: tokens.MintedToken) -> None:
        self.revoked = tokens.revoke(self.revoked, minted.jti, minted.expires_at)
        self.trust.set_revocations(tokens.revocations_to_configmap_data(self.revoked))

    def mint(self, manifest: PluginManifest, **kwargs: Any) -> tokens.MintedToken:
        options: dict[str, Any] = {"issuer": ISS, "audience": AUD, "ttl_seconds": 600}
        options["now"] = datetime.now(UTC).replace(microsecond=0)
        ring = kwargs.pop("ring", self.ring)
        options.update(kwargs)
        return tokens.mint_plugin_token(ring, manifest, **options)


def basic(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


class DialLog:
    """Wraps the proxy's dialer: records every dial and refuses any non-loopback address."""

    def __init__(self) -> None:
        self.dials: list[tuple[str, int]] = []

    async def __call__(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.dials.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"the proxy dialled {host}: tests never leave loopback")
        return await asyncio.open_connection(host, port)


async def start_proxy(
    directory: StaticDirectory,
    keys: Keys,
    *,
    hosts: dict[str, tuple[str, ...]],
    ports: Collection[int],
    auditor: MemoryAuditor | None = None,
    **overrides: Any,
) -> tuple[ProxyServer, DialLog, MemoryAuditor, ProxyMetrics]:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "allowed_ports": frozenset(ports),
        "test_static_hosts": hosts,
        "test_allow_networks": ("127.0.0.0/8",),
        "policy_recheck_seconds": 0.05,
        "head_timeout": 1.0,
        "connect_timeout": 2.0,
    }
    options.update(overrides)
    auditor = auditor or MemoryAuditor()
    metrics = ProxyMetrics()
    server = ProxyServer(
        ProxySettings(**options),
        directory,
        keys.verifier(directory),
        auditor,
        metrics=metrics,
    )
    dials = DialLog()
    server.dial = dials
    await server.start()
    return server, dials, auditor, metrics


async def raw_request(
    port: int, data: bytes, *, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send ``data`` to the proxy; return (status, headers, body-so-far, reader, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    length = int(headers.get("content-length", "0"))
    if length:
        body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return status, headers, body, reader, writer
