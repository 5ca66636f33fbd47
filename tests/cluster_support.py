"""Helpers for tests that talk to a cluster (tests/conftest.py has the fixtures)."""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO / "hack" / "cluster" / "cluster.py"
BUILD_SCRIPT = REPO / "hack" / "cluster" / "build.sh"
BIN_DIR_SCRIPT = REPO / "hack" / "cluster" / "bin-dir"
LOCAL_STATE = REPO / ".cluster"


@dataclass(frozen=True)
class KubeCluster:
    kubeconfig: Path
    # The local test cluster (not one from $KUBECONFIG): its egress guard,
    # logs and versions are known, so tests may look at them.
    local: bool
    state_dir: Path | None = None


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Polls CHECK until it returns something truthy, and returns that.

    A 404 from the API counts as "not yet". Fails after TIMEOUT seconds with WHAT.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except ApiException as error:
            if error.status != 404:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def is_gone(read: Callable[[], object]) -> bool:
    """True once READ (a read_namespaced_... call) answers 404."""
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def self_signed_certificate(directory: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A serving certificate for IP that is its own CA (a webhook's caBundle)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
