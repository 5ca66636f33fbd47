"""Where the API server is and how to log in: the pod's service account, or a kubeconfig.

The ``kubernetes`` package did this before; it is 126 MB installed and kopf imports all of its
models when it is present (about 12 MiB of start-up RSS), for two config loaders. This module
reads what the operator needs and nothing else: a server URL, the CA, and a bearer token or a
client certificate. kopf's login handler is built from the same credentials, so both clients
always talk to the same cluster as the same user. Exec and auth-provider plugins (cloud
kubeconfigs) are not supported out of the cluster: use a token or a client certificate there.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class CredentialsError(Exception):
    """No usable cluster configuration."""


@dataclass(frozen=True)
class Credentials:
    """One API server and one identity."""

    server: str
    ca_file: str | None = None
    insecure: bool = False
    token: str | None = None
    token_file: Path | None = None
    """Re-read on use: bound service-account tokens are rotated by the kubelet."""
    cert_file: str | None = None
    key_file: str | None = None
    _token_cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def bearer(self) -> str | None:
        """The bearer token, re-read from its file when the file changed."""
        if self.token_file is None:
            return self.token
        stamp = self.token_file.stat().st_mtime_ns
        if self._token_cache.get("stamp") != stamp:
            self._token_cache.update(stamp=stamp, token=self.token_file.read_text().strip())
        token = self._token_cache.get("token")
        return str(token) if token else None

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def in_cluster(environ: Mapping[str, str], directory: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    token = directory / "token"
    if not host or not port or not token.exists():
        raise CredentialsError("not in a pod (no KUBERNETES_SERVICE_HOST or no token)")
    host = f"[{host}]" if ":" in host else host
    ca = directory / "ca.crt"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_file=str(ca) if ca.exists() else None,
        token_file=token,
    )


def _data_file(data: str, suffix: str) -> str:
    """ssl wants files: write base64 kubeconfig data to a private temporary file."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
        prefix="vivified-", suffix=suffix, delete=False
    )
    os.chmod(handle.name, 0o600)
    handle.write(base64.b64decode(data))
    handle.close()
    return handle.name


def from_kubeconfig(path: str | None, environ: Mapping[str, str]) -> Credentials:
    """The current context of ``path``, else ``$KUBECONFIG`` (first file), else ~/.kube/config."""
    chosen = path or (environ.get("KUBECONFIG") or "").split(os.pathsep)[0] or "~/.kube/config"
    file = Path(chosen).expanduser()
    if not file.exists():
        raise CredentialsError(f"no kubeconfig at {file} and not in a pod")
    config = yaml.safe_load(file.read_text()) or {}
    base = file.parent

    def named(section: str, name: str) -> dict[str, Any]:
        for item in config.get(section) or []:
            if item.get("name") == name:
                value: dict[str, Any] = item.get(section[:-1]) or {}
                return value
        raise CredentialsError(f"kubeconfig {file}: no {section[:-1]} named {name!r}")

    def local(value: str | None) -> str | None:
        return str(base / value) if value else None

    context = named("contexts", str(config.get("current-context") or ""))
    cluster = named("clusters", str(context.get("cluster")))
    user = named("users", str(context.get("user")))
    if "exec" in user or "auth-provider" in user:
        raise CredentialsError(
            f"kubeconfig {file}: exec/auth-provider users are not supported; use a token or a "
            "client certificate"
        )
    ca = cluster.get("certificate-authority-data")
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_data_file(ca, ".crt") if ca else local(cluster.get("certificate-authority")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=user.get("token"),
        token_file=Path(local(user["tokenFile"]) or "") if user.get("tokenFile") else None,
        cert_file=_data_file(cert, ".crt") if cert else local(user.get("client-certificate")),
        key_file=_data_file(key, ".key") if key else local(user.get("client-key")),
    )


def load(kubeconfig: str | None = None, environ: Mapping[str, str] | None = None) -> Credentials:
    """In a pod, its service account (unless a kubeconfig is named); else the kubeconfig."""
    env = os.environ if environ is None else environ
    if kubeconfig is None:
        try:
            return in_cluster(env)
        except CredentialsError:
            pass
    return from_kubeconfig(kubeconfig, env)
