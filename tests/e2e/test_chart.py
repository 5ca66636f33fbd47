"""The Helm chart on a real API server, with the operator running under the chart's RBAC.

No image can run on the local cluster, so the chart is installed in *local mode*
(`operator.enabled=false`, `webhook.url=https://127.0.0.1:PORT/validate-plugin`): Helm creates
the CRDs, the ServiceAccount, the RBAC, the webhook's certificate Secret and its
ValidatingWebhookConfiguration for real; then this test runs `python -m vivified operator` on
the host, authenticated with a TokenRequest token of the chart's ServiceAccount and serving the
webhook on loopback with the chart's own certificate. Every API call the operator makes is
therefore authorized by the chart's RBAC, and every admission by the chart's configuration.

Steps run in file order and share one release (the `release` fixture): lint and schema, install,
webhook, a plugin becoming Active, RBAC, server-side dry runs, upgrade, uninstall.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.e2e.conftest import OperatorProcess
from tests.e2e.kube import EXAMPLES, GROUP, PLURAL, REPO, VERSION, load_example, wait_for

from cluster_support import KubeCluster

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "vivified"
RELEASE = "vivified"
RELEASE_NS = "vivified-chart-e2e"
PLUGINS_NS = "vivified-chart-e2e-plugins"
PLUGINS_NS_B = "vivified-chart-e2e-plugins-b"
SERVICE_ACCOUNT = "vivified"  # the chart's full name for release "vivified"
SA_USER = f"system:serviceaccount:{RELEASE_NS}:{SERVICE_ACCOUNT}"
CRD_NAME = "vivifiedplugins.vivified.dev"
WEBHOOK_NAME = "validate-plugin.vivified.dev"
WEBHOOK_SECRET = f"{SERVICE_ACCOUNT}-webhook-tls"
CLUSTER_NAME = f"{SERVICE_ACCOUNT}-{RELEASE_NS}"  # cluster-scoped objects: fullname-namespace


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Tools:
    kubectl: Path
    helm: Path
    kubeconfig: Path

    def run(
        self, tool: Path, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(tool), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{tool.name} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def k(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self.run(self.kubectl, *args, stdin=stdin, check=check).stdout

    def h(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(self.helm, *args, check=check)


@dataclass
class Release:
    tools: Tools
    api: client.ApiClient
    port: int
    values: Path
    operator: OperatorProcess
    install_output: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/validate-plugin"


@pytest.fixture(scope="module")
def tools(kubectl: Path, helm: Path, kubeconfig_path: Path) -> Tools:
    return Tools(kubectl, helm, kubeconfig_path)


def _delete_namespaces(api: client.ApiClient, names: Sequence[str], *, wait: bool) -> None:
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    for name in names:
        # Plugins still carrying the operator's finalizer would keep the namespace forever
        # once the operator is gone.
        with contextlib.suppress(ApiException):
            listing = custom.list_namespaced_custom_object(GROUP, VERSION, name, PLURAL)
            assert isinstance(listing, dict)
            for item in listing["items"]:
                custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    name,
                    PLURAL,
                    item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                )
        with contextlib.suppress(ApiException):
            core.delete_namespace(name)
    if wait:

        def gone() -> bool:
            try:
                return all(
                    not core.list_namespace(field_selector=f"metadata.name={n}").items
                    for n in names
                )
            except ApiException:
                return False

        wait_for("leftover namespaces to go", gone, timeout=120)


def _sa_kubeconfig(tools: Tools, directory: Path) -> Path:
    """A kubeconfig holding only a TokenRequest token of the chart's ServiceAccount."""
    admin = yaml.safe_load(tools.kubeconfig.read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    token = tools.k(
        "create", "token", SERVICE_ACCOUNT, "-n", RELEASE_NS, "--duration", "2h"
    ).strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": SERVICE_ACCOUNT}}],
        "current-context": "sa",
    }
    path = directory / "sa-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _start_operator(tools: Tools, directory: Path, port: int) -> OperatorProcess:
    certs = directory / "webhook-certs"
    certs.mkdir()
    secret = json.loads(tools.k("get", "secret", WEBHOOK_SECRET, "-n", RELEASE_NS, "-o", "json"))
    for key in ("tls.crt", "tls.key"):
        (certs / key).write_bytes(base64.b64decode(secret["data"][key]))
    (certs / "tls.key").chmod(0o600)
    env = {
        **os.environ,
        "KUBECONFIG": str(_sa_kubeconfig(tools, directory)),
        "PYTHONUNBUFFERED": "1",
        "VIVIFIED_OPERATOR_NAMESPACE": RELEASE_NS,
        "VIVIFIED_WEBHOOK_PORT": str(port),
        "VIVIFIED_WEBHOOK_ADDR": "127.0.0.1",
        "VIVIFIED_WEBHOOK_CERT_DIR": str(certs),
        # Never dial plugin pods (kwok's addresses are fake) and bind nothing shared.
        "VIVIFIED_PROBE_MODE": "overrides",
    }
    log = directory / "operator.log"
    args = [sys.executable, "-m", "vivified", "operator", "--log-level", "debug"]
    for namespace in (PLUGINS_NS, PLUGINS_NS_B):
        args += ["--namespace", namespace]
    with log.open("wb") as sink:
        process = subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
    operator = OperatorProcess(process, log, (PLUGINS_NS, PLUGINS_NS_B), env)
    operator.wait_log(r"caches synced", timeout=60)

    def listening() -> bool:
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for("the webhook to listen", listening, timeout=30)
    return operator


@pytest.fixture(scope="module")
def release(
    tools: Tools,
    k8s_api: client.ApiClient,
    kube_cluster: KubeCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    """The chart installed in local mode, and the operator running as its ServiceAccount."""
    if not kube_cluster.local:
        pytest.skip(
            "local mode needs an API server that reaches this host's loopback (the local test "
            "cluster); on kind, `make e2e-kind` runs test_the_installed_operator instead"
        )
    namespaces = (RELEASE_NS, PLUGINS_NS, PLUGINS_NS_B)
    tools.h("uninstall", RELEASE, "-n", RELEASE_NS, "--wait", check=False)  # a crashed run
    _delete_namespaces(k8s_api, namespaces, wait=True)
    core = client.CoreV1Api(k8s_api)
    for name in namespaces:
        core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(name=name, labels={"vivified.dev/test": "true"})
            )
        )
    directory = tmp_path_factory.mktemp("chart")
    port = free_port()
    values = directory / "local-mode.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "operator": {"enabled": False},
                "watchNamespaces": [PLUGINS_NS, PLUGINS_NS_B],
                "webhook": {"url": f"https://127.0.0.1:{port}/validate-plugin"},
            }
        )
    )
    installed = tools.h("install", RELEASE, str(CHART), "-n", RELEASE_NS, "-f", str(values))
    operator = None
    try:
        operator = _start_operator(tools, directory, port)
        yield Release(tools, k8s_api, port, values, operator, installed.stdout)
    finally:
        if operator is not None and operator.process.poll() is None:
            # Delete plugins while the operator can still remove its finalizer.
            for namespace in (PLUGINS_NS, PLUGINS_NS_B):
                tools.k("delete", "vp", "--all", "-n", namespace, "--timeout=30s", check=False)
            operator.stop()
        tools.h("uninstall", RELEASE, "-n", RELEASE_NS, "--wait", check=False)
        _delete_namespaces(k8s_api, namespaces, wait=False)


def apply(tools: Tools, namespace: str, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return tools.run(
        tools.kubectl, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(body), check=False
    )


# -- before installing ------------------------------------------------------------------------


def test_helm_lint_is_clean(tools: Tools) -> None:
    for extra in (
        [],
        ["--set", "watchNamespaces={a,b}", "--set", "peering.enabled=true"],
        ["--set", "replicaCount=2", "--set", "peering.enabled=true"],
        ["--set", "webhook.certManager.enabled=true"],
        ["--set", "operator.enabled=false", "--set", "webhook.enabled=false"],
    ):
        result = tools.h("lint", "--strict", str(CHART), *extra)
        assert "0 chart(s) failed" in result.stdout, result.stdout
        assert "[WARNING]" not in result.stdout
        assert "[ERROR]" not in result.stdout


def test_the_schema_rejects_a_wrong_type_at_install(tools: Tools) -> None:
    result = tools.h(
        "install",
        "schema-check",
        str(CHART),
        "-n",
        "default",
        "--dry-run=server",
        "--set",
        "webhook.timeoutSeconds=soon",
        check=False,
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert "timeoutSeconds" in result.stderr


# -- installed ----------------------------------------------------------------------------------


def test_install_establishes_the_crd_and_prints_next_steps(release: Release) -> None:
    release.tools.k("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")
    notes = release.install_output
    assert "kubectl apply" in notes
    assert "kubectl get vp" in notes
    assert "--for=condition=Ready" in notes
    hook = json.loads(
        release.tools.k("get", "validatingwebhookconfiguration", CLUSTER_NAME, "-o", "json")
    )["webhooks"][0]
    assert hook["name"] == WEBHOOK_NAME
    assert hook["clientConfig"]["url"] == release.url
    assert hook["failurePolicy"] == "Fail"
    assert hook["timeoutSeconds"] == 5


def test_an_invalid_plugin_is_rejected_with_every_error_by_field(release: Release) -> None:
    result = release.tools.run(
        release.tools.kubectl,
        "apply",
        "-n",
        PLUGINS_NS,
        "-f",
        str(EXAMPLES / "invalid" / "phi-without-controls.yaml"),
        check=False,
    )
    assert result.returncode != 0
    assert f'admission webhook "{WEBHOOK_NAME}" denied the request' in result.stderr
    for field in (
        "spec.manifest.compliance.data_retention_days: ",
        "spec.manifest.compliance.hipaa_controls: ",
        "spec.manifest.security.data_classification: ",
    ):
        assert field in result.stderr
    assert not release.tools.k("get", "vp", "-n", PLUGINS_NS, "-o", "name").strip()


def test_name_and_id_must_match(release: Release) -> None:
    body = load_example("user-management.yaml")
    body["metadata"]["name"] = "users"
    result = apply(release.tools, PLUGINS_NS, body)
    assert result.returncode != 0
    # The CRD's own CEL rule answers first (before admission webhooks are called); the
    # webhook applies the same rule (tests/unit/test_admission.py) for API servers without it.
    assert "must equal spec.manifest.id" in result.stderr


def test_a_valid_plugin_becomes_active_under_the_charts_rbac(release: Release) -> None:
    tools = release.tools
    tools.k("apply", "-n", PLUGINS_NS, "-f", str(EXAMPLES / "user-management.yaml"))
    tools.k(
        "wait",
        "vp/user-management",
        "-n",
        PLUGINS_NS,
        "--for=condition=Ready",
        "--timeout=60s",
    )
    listing = tools.k("get", "vp", "-n", PLUGINS_NS)
    assert "Active" in listing
    # The chart's mutating webhook put the finalizer on at creation: kubectl's own apply owns
    # it, and the operator never wrote to the plugin itself, only to its status.
    plugin = json.loads(
        tools.k(
            "get", "vp/user-management", "-n", PLUGINS_NS, "-o", "json", "--show-managed-fields"
        )
    )
    assert plugin["metadata"]["finalizers"] == ["vivified.dev/finalizer"]
    writers = {
        entry["manager"]
        for entry in plugin["metadata"]["managedFields"]
        if entry.get("subresource") != "status"
    }
    assert writers == {"kubectl-client-side-apply"}, plugin["metadata"]["managedFields"]
    # The operator created its identity in the release namespace, as the ServiceAccount.
    core = client.CoreV1Api(release.api)
    assert core.read_namespaced_secret("vivified-signing-key", RELEASE_NS).data
    assert core.read_namespaced_config_map("vivified-jwks", RELEASE_NS).data
    # ... and nothing it tried was forbidden.
    log = release.operator.text()
    assert "Forbidden" not in log
    assert " 403" not in log


def test_a_duplicate_plugin_id_is_rejected(release: Release) -> None:
    release.tools.k(
        "wait", "vp/user-management", "-n", PLUGINS_NS, "--for=condition=Ready", "--timeout=60s"
    )
    result = apply(release.tools, PLUGINS_NS_B, load_example("user-management.yaml"))
    assert result.returncode != 0
    assert (
        f"spec.manifest.id: plugin id 'user-management' is already used by VivifiedPlugin "
        f"{PLUGINS_NS}/user-management" in result.stderr
    )


def test_updates_are_validated_but_metadata_only_changes_are_not(release: Release) -> None:
    tools = release.tools
    bad = tools.run(
        tools.kubectl,
        "patch",
        "vp/user-management",
        "-n",
        PLUGINS_NS,
        "--type=json",
        "-p",
        json.dumps([{"op": "add", "path": "/spec/manifest/traits/-", "value": "admin"}]),
        check=False,
    )
    assert bad.returncode != 0
    assert "spec.manifest.traits[2]: trait 'admin' is reserved" in bad.stderr
    tools.k("label", "vp/user-management", "-n", PLUGINS_NS, "team=identity")
    tools.k(
        "patch",
        "vp/user-management",
        "-n",
        PLUGINS_NS,
        "--type=merge",
        "-p",
        '{"spec":{"replicas":2}}',
    )


def test_disable_and_delete_work_under_the_charts_rbac(release: Release) -> None:
    tools = release.tools
    body = load_example("external-crm.yaml")
    tools.k("apply", "-n", PLUGINS_NS_B, "-f", "-", stdin=yaml.safe_dump(body))
    tools.k("wait", "vp/external-crm", "-n", PLUGINS_NS_B, "--for=condition=Ready", "--timeout=60s")
    tools.k(
        "patch",
        "vp/external-crm",
        "-n",
        PLUGINS_NS_B,
        "--type=merge",
        "-p",
        '{"spec":{"enabled":false}}',
    )
    core = client.CoreV1Api(release.api)

    def token_gone() -> bool:
        try:
            core.read_namespaced_secret("external-crm-token", PLUGINS_NS_B)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    wait_for("the disabled plugin's token Secret to be deleted", token_gone, timeout=30)
    tools.k("delete", "vp/external-crm", "-n", PLUGINS_NS_B, "--timeout=30s")
    assert "Forbidden" not in release.operator.text()


# -- RBAC ---------------------------------------------------------------------------------------


def can_i(tools: Tools, *args: str) -> bool:
    result = tools.run(tools.kubectl, "auth", "can-i", *args, "--as", SA_USER, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


ALLOWED_NAMESPACED = [
    ("list", "vivifiedplugins.vivified.dev"),
    ("watch", "vivifiedplugins.vivified.dev"),
    ("patch", "vivifiedplugins.vivified.dev"),
    ("patch", "vivifiedplugins.vivified.dev", "--subresource=status"),
    ("update", "vivifiedplugins.vivified.dev", "--subresource=finalizers"),
    ("create", "events"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("watch", "deployments.apps"),
    ("create", "services"),
    ("create", "serviceaccounts"),
    ("create", "networkpolicies.networking.k8s.io"),
    ("list", "secrets"),
    ("patch", "secrets"),
    ("delete", "secrets"),
]
DENIED_NAMESPACED = [
    ("get", "vivifiedplugins.vivified.dev"),
    ("delete", "vivifiedplugins.vivified.dev"),
    ("update", "vivifiedplugins.vivified.dev"),
    ("delete", "deployments.apps"),
    ("get", "secrets"),
    ("create", "pods"),
    ("create", "pods", "--subresource=exec"),
    ("get", "configmaps"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("escalate", "roles.rbac.authorization.k8s.io"),
    ("bind", "roles.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
]
DENIED_ANYWHERE = [
    ("delete", "nodes"),
    ("get", "secrets", "-n", "kube-system"),
    ("list", "secrets", "-n", "kube-system"),
    ("list", "vivifiedplugins.vivified.dev", "-n", "default"),
    ("create", "deployments.apps", "-n", "default"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("*", "*"),
]


def test_rbac_allows_exactly_what_the_operator_needs(release: Release) -> None:
    tools = release.tools
    for namespace in (PLUGINS_NS, PLUGINS_NS_B):
        for check in ALLOWED_NAMESPACED:
            assert can_i(tools, *check, "-n", namespace), f"{check} in {namespace}"
        for check in DENIED_NAMESPACED:
            assert not can_i(tools, *check, "-n", namespace), f"{check} in {namespace}"
    for check in DENIED_ANYWHERE:
        assert not can_i(tools, *check), check
    # Cluster-scoped reads kopf needs.
    assert can_i(tools, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert can_i(tools, "list", "namespaces")
    assert not can_i(tools, "get", "namespaces")
    # ...and its own namespace by name (the start-up check that it exists), no other.
    assert can_i(tools, "get", f"namespaces/{RELEASE_NS}")
    assert not can_i(tools, "get", f"namespaces/{PLUGINS_NS}")
    # Its own namespace: the signing key and the published ConfigMaps, by name.
    ns = ("-n", RELEASE_NS)
    assert can_i(tools, "get", "secrets/vivified-signing-key", *ns)
    assert can_i(tools, "update", "secrets/vivified-signing-key", *ns)
    assert can_i(tools, "create", "secrets", *ns)
    assert not can_i(tools, "get", f"secrets/{WEBHOOK_SECRET}", *ns)
    assert not can_i(tools, "list", "secrets", *ns)
    assert not can_i(tools, "delete", "secrets/vivified-signing-key", *ns)
    assert can_i(tools, "patch", "configmaps/vivified-jwks", *ns)
    assert can_i(tools, "get", "configmaps/vivified-revoked-tokens", *ns)
    assert not can_i(tools, "get", "configmaps/kube-root-ca.crt", *ns)
    assert not can_i(tools, "create", "deployments.apps", *ns)


# -- the core's ServiceAccount (issue 16) -------------------------------------------------------

CORE_USER = f"system:serviceaccount:{RELEASE_NS}:vivified-core"


def core_can_i(tools: Tools, *args: str) -> bool:
    result = tools.run(tools.kubectl, "auth", "can-i", *args, "--as", CORE_USER, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def test_core_rbac_reads_plugins_writes_only_leases_and_never_secrets(release: Release) -> None:
    tools = release.tools
    for namespace in (PLUGINS_NS, PLUGINS_NS_B):
        for verb in ("get", "list", "watch"):
            assert core_can_i(tools, verb, "vivifiedplugins.vivified.dev", "-n", namespace)
        for verb in ("create", "patch", "get"):
            assert core_can_i(tools, verb, "leases.coordination.k8s.io", "-n", namespace)
        for check in (
            ("patch", "vivifiedplugins.vivified.dev"),
            ("patch", "vivifiedplugins.vivified.dev", "--subresource=status"),
            ("delete", "leases.coordination.k8s.io"),
            ("get", "secrets"),
            ("list", "secrets"),
            ("create", "deployments.apps"),
            ("create", "pods"),
            ("get", "configmaps"),
        ):
            assert not core_can_i(tools, *check, "-n", namespace), check
    assert core_can_i(tools, "watch", "configmaps", "-n", RELEASE_NS)
    assert core_can_i(tools, "create", "events", "-n", RELEASE_NS), "the audit outage alert"
    assert not core_can_i(tools, "patch", "configmaps", "-n", RELEASE_NS)
    assert not core_can_i(tools, "get", "secrets", "-n", RELEASE_NS)
    assert not core_can_i(tools, "list", "secrets", "-n", RELEASE_NS)
    assert not core_can_i(tools, "list", "vivifiedplugins.vivified.dev", "-n", "default")
    assert not core_can_i(tools, "*", "*")


def test_the_service_account_token_is_what_the_api_server_sees(release: Release) -> None:
    sa_kubeconfig = Path(release.operator.env["KUBECONFIG"])
    review = json.loads(
        subprocess.run(
            [
                str(release.tools.kubectl),
                "--kubeconfig",
                str(sa_kubeconfig),
                "auth",
                "whoami",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert review["status"]["userInfo"]["username"] == SA_USER
    denied = subprocess.run(
        [
            str(release.tools.kubectl),
            "--kubeconfig",
            str(sa_kubeconfig),
            "get",
            "secrets",
            "-n",
            "kube-system",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr


# -- every template, against the API server -----------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},
        {
            "watchNamespaces": [PLUGINS_NS, PLUGINS_NS_B],
            "peering": {"enabled": True},
            "replicaCount": 2,
        },
        {
            "operator": {"enabled": False, "settings": {"probeMode": "apiserver-proxy"}},
            "webhook": {"url": "https://127.0.0.1:9443/validate-plugin"},
            "signingKey": {"existingSecret": "keys"},
        },
        {
            "webhook": {"enabled": False},
            "rbac": {"create": False},
            "serviceAccount": {"create": False, "name": "x"},
        },
        {"events": {"enabled": True}},  # the audit trail on: its key Secret, env and mounts
    ],
    ids=["defaults", "namespaced-ha", "local-mode", "minimal", "audited"],
)
def test_every_rendered_template_passes_server_side_dry_run(
    release: Release, values: dict[str, Any], tmp_path: Path
) -> None:
    # Another release name: a dry run must not look like an update of the installed release.
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    rendered = release.tools.h(
        "template", "dryrun", str(CHART), "-n", RELEASE_NS, "--include-crds", "-f", str(values_file)
    ).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    assert documents
    result = release.tools.run(
        release.tools.kubectl, "apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(documents), result.stdout


# -- upgrade and uninstall ----------------------------------------------------------------------


def test_upgrade_with_changed_values_keeps_the_webhook_certificate(release: Release) -> None:
    tools = release.tools
    before = json.loads(tools.k("get", "secret", WEBHOOK_SECRET, "-n", RELEASE_NS, "-o", "json"))
    tools.h(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NS,
        "-f",
        str(release.values),
        "--set",
        "webhook.timeoutSeconds=3",
        "--set",
        "operator.settings.dependencyPolicy=warn",
    )
    after = json.loads(tools.k("get", "secret", WEBHOOK_SECRET, "-n", RELEASE_NS, "-o", "json"))
    assert after["data"] == before["data"], "the upgrade regenerated the webhook certificate"
    hook = json.loads(tools.k("get", "validatingwebhookconfiguration", CLUSTER_NAME, "-o", "json"))
    assert hook["webhooks"][0]["timeoutSeconds"] == 3
    assert hook["webhooks"][0]["clientConfig"]["caBundle"] == before["data"]["ca.crt"]
    # The running operator (same certificate) still answers the API server.
    result = tools.run(
        tools.kubectl,
        "apply",
        "-n",
        PLUGINS_NS,
        "-f",
        str(EXAMPLES / "invalid" / "phi-without-controls.yaml"),
        check=False,
    )
    assert f'admission webhook "{WEBHOOK_NAME}" denied the request' in result.stderr


def test_cluster_wide_rbac_after_upgrade(release: Release) -> None:
    """watchNamespaces emptied: a ClusterRole. The webhook is off for this step, so that the
    shared cluster's other tests never meet a cluster-wide webhook served by this test."""
    tools = release.tools
    for namespace in (PLUGINS_NS, PLUGINS_NS_B):  # while the operator can still finalize them
        tools.k("delete", "vp", "--all", "-n", namespace, "--timeout=60s")
    release.operator.stop()
    tools.h(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NS,
        "--set",
        "operator.enabled=false",
        "--set",
        "webhook.enabled=false",
    )
    assert not tools.k(
        "get",
        "validatingwebhookconfiguration",
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
        "-o",
        "name",
    ).strip()
    assert can_i(tools, "list", "vivifiedplugins.vivified.dev", "-n", "default")
    assert can_i(tools, "create", "deployments.apps", "-n", "default")
    assert not can_i(tools, "get", "secrets", "-n", "kube-system")
    assert not can_i(tools, "delete", "nodes")
    assert not can_i(tools, "list", "namespaces")
    for check in DENIED_NAMESPACED:
        assert not can_i(tools, *check, "-n", "default"), check
    # Roles of the namespaced install are gone.
    assert not tools.k("get", "roles", "-n", PLUGINS_NS, "-o", "name").strip()


def test_uninstall_leaves_only_what_is_documented(release: Release) -> None:
    tools = release.tools
    result = tools.h("uninstall", RELEASE, "-n", RELEASE_NS, "--wait")
    assert f'release "{RELEASE}" uninstalled' in result.stdout
    # Helm never deletes CRDs from crds/.
    tools.k("get", f"crd/{CRD_NAME}")
    # Cluster-scoped objects of the release are gone.
    for kind in ("clusterrole", "clusterrolebinding", "validatingwebhookconfiguration"):
        out = tools.k("get", kind, CLUSTER_NAME, "--ignore-not-found", "-o", "name")
        assert not out.strip(), f"{kind} left behind"
    # What the operator created at runtime stays (docs/install.md, Uninstall).
    left = tools.k("get", "secrets,configmaps", "-n", RELEASE_NS, "-o", "name").split()
    assert "secret/vivified-signing-key" in left
    assert "configmap/vivified-jwks" in left
    assert "configmap/vivified-revoked-tokens" in left
    assert f"secret/{WEBHOOK_SECRET}" not in left
    assert "serviceaccount/vivified" not in tools.k("get", "sa", "-n", RELEASE_NS, "-o", "name")


# -- a release running the operator image (make e2e-kind) ---------------------------------------

#: "namespace/release" of a chart installed with the real image; set by `make e2e-kind`.
INSTALLED = os.environ.get("VIVIFIED_E2E_CHART_RELEASE", "")


@pytest.mark.timeout(900)  # with the real node: the chart's install (real_release)
def test_the_installed_operator(
    tools: Tools, k8s_api: client.ApiClient, request: pytest.FixtureRequest
) -> None:
    """The chart with the real image: `make e2e-kind`'s release, or else the local cluster's
    real node (the `real_release` fixture; skipped without a real node, except in CI)."""
    if INSTALLED:
        namespace, name = INSTALLED.split("/", 1)
        plugins = os.environ["VIVIFIED_E2E_CHART_NAMESPACE"]
        image = os.environ.get("VIVIFIED_E2E_PLUGIN_IMAGE")
    else:
        real = request.getfixturevalue("real_release")
        namespace, name, plugins = real.namespace, "vivified", real.plugins_namespace
        image = real.node.images["user-management"]
    fullname = name if "vivified" in name else f"{name}-vivified"
    tools.k("rollout", "status", f"deployment/{fullname}", "-n", namespace, "--timeout=180s")
    pod = json.loads(
        tools.k(
            "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}", "-o", "json"
        )
    )["items"][0]
    (container,) = pod["spec"]["containers"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # The webhook, through the chart's Service and certificate.
    rejected = tools.run(
        tools.kubectl,
        "apply",
        "-n",
        plugins,
        "-f",
        str(EXAMPLES / "invalid" / "phi-without-controls.yaml"),
        check=False,
    )
    assert f'admission webhook "{WEBHOOK_NAME}" denied the request' in rejected.stderr
    assert "spec.manifest.compliance.hipaa_controls: " in rejected.stderr

    body = load_example("user-management.yaml")
    if image:
        body["spec"]["image"] = image
    tools.k("apply", "-n", plugins, "-f", "-", stdin=yaml.safe_dump(body))
    try:
        tools.k(
            "wait",
            "vp/user-management",
            "-n",
            plugins,
            "--for=condition=TokenIssued",
            "--timeout=120s",
        )
        if image:  # a real plugin image: it must become Ready
            tools.k(
                "wait",
                "vp/user-management",
                "-n",
                plugins,
                "--for=condition=Ready",
                "--timeout=180s",
            )
    finally:
        tools.k("delete", "vp/user-management", "-n", plugins, "--timeout=60s", check=False)
