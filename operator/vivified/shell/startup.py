"""Checks before the operator starts: fail fast with one clear line, never a retry loop.

Two mistakes a new user makes against a fresh cluster: the operator's namespace does not exist
(it holds the signing key and the JWKS; creating it silently would hide a wrong setting), and
probes in ``direct`` mode from outside the cluster (``<id>.<ns>.svc`` would go to the machine's
own resolver: a failed look-up per probe, and cluster names leaking to an outside DNS server).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from vivified.settings import OperatorSettings, env_var_name
from vivified.shell.kube import KubeApi, KubeError

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class StartupError(Exception):
    """Why the operator cannot start, in one line that says what to do."""


def in_cluster(environ: Mapping[str, str], token_file: Path = SERVICE_ACCOUNT_TOKEN) -> bool:
    """Running in a pod: the API server's Service is in the environment and a token is mounted."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and token_file.exists()


def probe_settings(
    settings: OperatorSettings, environ: Mapping[str, str], *, inside: bool
) -> OperatorSettings:
    """Out of the cluster, probe through the API server unless told otherwise; refuse ``direct``.

    ``direct`` is the right default in a pod (cluster DNS answers ``*.svc``). Outside, only the
    API server's service proxy reaches a plugin without touching the machine's resolver.
    """
    if inside or settings.probe_mode != "direct":
        return settings
    variable = env_var_name("probe_mode")
    if environ.get(variable, "").strip():
        raise StartupError(
            f"{variable}=direct needs cluster DNS, which is only there in a pod; out of the "
            f"cluster use {variable}=apiserver-proxy (through the API server) or overrides"
        )
    logger.info("out of the cluster: probing through the API server (%s=apiserver-proxy)", variable)
    return settings.replace(probe_mode="apiserver-proxy")


async def check_namespace(kube: KubeApi, settings: OperatorSettings) -> None:
    """The operator's own namespace must exist; a missing one is a setup error, not a retry."""
    namespace = settings.operator_namespace
    try:
        found = await kube.get("Namespace", None, namespace)
    except KubeError as error:
        if error.status == 403:  # may not read namespaces: the first real request will tell
            return
        raise
    if found is None:
        raise StartupError(
            f"namespace {namespace!r} does not exist: create it (kubectl create namespace "
            f"{namespace}) or set {env_var_name('operator_namespace')} to the namespace that "
            "should hold the operator's signing key"
        )
