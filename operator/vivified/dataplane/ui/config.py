"""Where the Admin UI finds the Kubernetes API, and how its sessions are sealed.

The UI holds no Kubernetes credentials of its own: it only needs the API server's address and
CA, and calls it with each signed-in user's token. The session key seals the cookies; replicas
behind one Service must share it (a Secret), else a session works only on the replica that made
it.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

IN_CLUSTER_CA = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
SESSION_KEY_BYTES = 32
DEFAULT_SESSION_SECONDS = 30 * 60
DEFAULT_POLL_SECONDS = 3


@dataclass(frozen=True)
class UIConfig:
    """Everything :func:`vivified.dataplane.ui.create_ui_app` needs."""

    api_server: str
    """Base URL of the Kubernetes API, e.g. ``https://kubernetes.default.svc``."""
    ca_pem: bytes | None
    """PEM of the CA that signed the API server's certificate (None: system trust store)."""
    session_key: bytes
    """32 bytes (AES-256-GCM) sealing the session cookie."""
    session_seconds: int = DEFAULT_SESSION_SECONDS
    poll_seconds: int = DEFAULT_POLL_SECONDS
    default_namespace: str = ""
    """Namespace listed when the user names none ("" = all namespaces)."""
    secure_cookie: bool = True
    """Secure flag on the cookie; only tests over plain http on loopback may turn it off."""

    def __post_init__(self) -> None:
        if len(self.session_key) != SESSION_KEY_BYTES:
            raise ValueError(f"session key must be {SESSION_KEY_BYTES} bytes (AES-256-GCM)")
        if not self.api_server.startswith("https://"):
            raise ValueError("the Kubernetes API must be reached over https (tokens travel)")


def session_key_from_env(value: str | None) -> bytes:
    """The base64 key from ``VIVIFIED_UI_SESSION_KEY``, else a random one (one replica only)."""
    if not value:
        return secrets.token_bytes(SESSION_KEY_BYTES)
    return base64.b64decode(value, validate=True)


@dataclass(frozen=True)
class Options:
    """The settings that are not about where the API server is."""

    default_namespace: str = ""
    poll_seconds: int = DEFAULT_POLL_SECONDS
    session_seconds: int = DEFAULT_SESSION_SECONDS
    secure_cookie: bool = True


def _config(server: str, ca: bytes | None, options: Options) -> UIConfig:
    return UIConfig(
        api_server=server,
        ca_pem=ca,
        session_key=session_key_from_env(os.environ.get("VIVIFIED_UI_SESSION_KEY")),
        session_seconds=options.session_seconds,
        poll_seconds=options.poll_seconds,
        default_namespace=options.default_namespace,
        secure_cookie=options.secure_cookie,
    )


def from_kubeconfig(path: Path, options: Options | None = None) -> UIConfig:
    """The current context's cluster (server and CA) of a kubeconfig; its user is ignored."""
    doc = yaml.safe_load(path.read_text())
    current = doc.get("current-context")
    context = next(c["context"] for c in doc["contexts"] if c["name"] == current)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
    ca: bytes | None = None
    if data := cluster.get("certificate-authority-data"):
        ca = base64.b64decode(data)
    elif file := cluster.get("certificate-authority"):
        ca = (path.parent / file).read_bytes()
    return _config(str(cluster["server"]).rstrip("/"), ca, options or Options())


def in_cluster(options: Options | None = None) -> UIConfig:
    """The API server as a pod sees it (the ServiceAccount's CA; its token is never used)."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return _config(server, IN_CLUSTER_CA.read_bytes(), options or Options())
