"""The Admin UI in a real browser (Debian's chromium, driven by Playwright) against the real
local cluster, with the operator running as in the other e2e tests.

Two users are ServiceAccounts with tokens from TokenRequest: ``ui-admin`` may read and patch
VivifiedPlugins in the test's namespace, ``ui-reader`` may only read them. Every page and action
is the user's own Kubernetes API request, so the API server's audit log names them.

Screenshots go to ``.artifacts/ui/`` (git-ignored) for a reviewer to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import axe_playwright_python
import pytest
from kubernetes import client
from playwright.sync_api import Browser, Page, expect, sync_playwright
from tests.cluster_support import self_signed_certificate
from tests.e2e.conftest import StartOperator
from tests.e2e.kube import GROUP, PLURAL, REPO, Cluster, load_example, plugin_body, wait_for

pytestmark = pytest.mark.cluster

ARTIFACTS = REPO / ".artifacts" / "ui"
AXE_JS = Path(axe_playwright_python.__file__).parent / "axe.min.js"
MARKUP_NAME = "<script>alert('x')</script><b>bold</b>"
EXAMPLES = ("user-management.yaml", "external-crm.yaml", "phi-records.yaml")
#: No DNS from the browser at all: loopback is reached by address, anything else is refused.
NO_DNS = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def chromium_path() -> str:
    found = os.environ.get("VIVIFIED_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("Debian's chromium is missing: run hack/ui/chromium.sh (make test does)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- users -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Users:
    namespace: str
    admin: str
    reader: str

    def username(self, sa: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{sa}"


def _rbac(k8s_api: client.ApiClient, namespace: str, sa: str, verbs: list[str]) -> str:
    core, rbac = client.CoreV1Api(k8s_api), client.RbacAuthorizationV1Api(k8s_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": sa}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": sa},
            "rules": [
                {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": verbs},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": sa},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
    )
    request = {"spec": {"audiences": [], "expirationSeconds": 3600}}
    answer = core.create_namespaced_service_account_token(sa, namespace, request)
    return str(answer.status.token)


@pytest.fixture
def users(k8s_api: client.ApiClient, namespace: str) -> Users:
    return Users(
        namespace=namespace,
        admin=_rbac(k8s_api, namespace, "ui-admin", ["get", "list", "watch", "patch"]),
        reader=_rbac(k8s_api, namespace, "ui-reader", ["get", "list", "watch"]),
    )


# -- the UI server and the browser -----------------------------------------------------------


@pytest.fixture
def ui_url(kubeconfig_path: Path, tmp_path: Path) -> Iterator[str]:
    """``python -m vivified.dataplane.ui`` over https on loopback, polling every second."""
    port = free_port()
    cert, key = self_signed_certificate(tmp_path)
    log = tmp_path / "ui.log"
    args = [sys.executable, "-m", "vivified.dataplane.ui", "--kubeconfig", str(kubeconfig_path)]
    args += ["--port", str(port), "--poll-seconds", "1"]
    args += ["--tls-cert", str(cert), "--tls-key", str(key)]
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"https://127.0.0.1:{port}"

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the UI exited early:\n{log.read_text()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for("the UI to listen", listening, timeout=30)
    yield url
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    text = log.read_text()
    for token_fragment in ("eyJ",):  # a JWT's header: no token is ever logged
        assert token_fragment not in text, "a token reached the UI's log"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", NO_DNS],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()
    assert not dialogs, f"a script ran and opened a dialog: {dialogs}"


def sign_in(page: Page, url: str, token: str, namespace: str) -> None:
    page.goto(f"{url}/ui/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Kubernetes bearer token").fill(token)
    page.get_by_label("Namespace (optional)").fill(namespace)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Plugins")).to_be_visible()


def row(page: Page, namespace: str, name: str) -> Any:
    return page.locator(f'tr[data-key="{namespace}/{name}"]')


def axe_scan(page: Page, what: str) -> None:
    """axe-core (shipped in a pinned PyPI package, not fetched): no critical/serious issue."""
    page.evaluate(AXE_JS.read_text())
    result = page.evaluate("async () => await axe.run(document)")
    bad = [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in ("critical", "serious")
    ]
    assert not bad, f"axe found on the {what} page:\n{json.dumps(bad, indent=1)}"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# -- the plugins -----------------------------------------------------------------------------


def apply_examples(cluster: Cluster, namespace: str) -> None:
    for example in EXAMPLES:
        cluster.apply_plugin(namespace, load_example(example))
    markup = plugin_body("markup-name")
    markup["spec"]["manifest"]["name"] = MARKUP_NAME
    cluster.apply_plugin(namespace, markup)


def kubectl_rows(kubectl: Path, kubeconfig: Path, namespace: str) -> dict[str, tuple[str, ...]]:
    """``kubectl get vp``: NAME VERSION PHASE HEALTH READY AGE, by name."""
    out = subprocess.run(
        [
            str(kubectl),
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            namespace,
            "get",
            "vp",
            "--no-headers",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {cols[0]: tuple(cols[1:5]) for cols in (line.split() for line in out.splitlines())}


def page_rows(page: Page, namespace: str) -> dict[str, tuple[str, ...]]:
    out = {}
    for tr in page.locator("tr[data-key]").all():
        name = tr.get_attribute("data-key").split("/", 1)[1]  # type: ignore[union-attr]
        cells = tr.locator("td")
        out[name] = (
            cells.nth(1).inner_text().strip(),
            tr.locator('[data-field="phase"]').inner_text().strip(),
            tr.locator('[data-field="health"]').inner_text().strip(),
            tr.locator('[data-field="ready"]').inner_text().strip(),
        )
    return out


def audit_log_names(state_dir: Path, namespace: str, name: str, username: str) -> bool:
    log = state_dir / "logs" / "audit.log"
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (
            entry.get("verb") == "patch"
            and ref.get("resource") == PLURAL
            and ref.get("namespace") == namespace
            and ref.get("name") == name
            and entry.get("user", {}).get("username") == username
            and entry.get("stage") == "ResponseComplete"
            and entry.get("responseStatus", {}).get("code") == 200
        ):
            return True
    return False


# -- the tests -------------------------------------------------------------------------------


def test_admin_lists_disables_and_enables_in_the_browser(  # noqa: PLR0917 - fixtures
    page: Page,
    ui_url: str,
    users: Users,
    cluster: Cluster,
    start_operator: StartOperator,
    kubectl: Path,
    kubeconfig_path: Path,
    kube_cluster: Any,
) -> None:
    ns = users.namespace
    start_operator(ns)
    apply_examples(cluster, ns)
    cluster.wait_phase(ns, "user-management", "Active", timeout=60)

    # No token, a wrong token: the sign-in page, saying why.
    page.goto(f"{ui_url}/ui/plugins/{ns}/user-management")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Kubernetes bearer token").fill("not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("did not accept this token")

    sign_in(page, ui_url, users.admin, ns)
    expect(page.locator(".user")).to_have_text(users.username("ui-admin"))
    for title in ("Identity", "Communication", "Storage"):
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()

    # The list matches kubectl get vp (statuses settle first; the page polls every second).
    def same() -> dict[str, tuple[str, ...]] | None:
        want = kubectl_rows(kubectl, kubeconfig_path, ns)
        page.reload()
        return want if want and page_rows(page, ns) == want else None

    wait_for("the page to match kubectl get vp", same, timeout=30, interval=1)
    um = row(page, ns, "user-management")
    expect(um.locator(".badge")).to_have_text(["PII", "audited"])
    expect(row(page, ns, "phi-records").locator(".badge").first).to_have_text("PHI")

    # Markup in a manifest name is text, not markup (and no script ran: see the page fixture).
    expect(page.get_by_text(MARKUP_NAME, exact=True)).to_be_visible()
    assert page.locator("main script, main b").count() == 0
    axe_scan(page, "list")
    screenshot(page, "list")

    # Disable user-management: the confirmation names the consequence.
    um.get_by_role("button", name="Disable").click()
    expect(page.locator(".consequence")).to_contain_text(
        "scales it to 0, revokes its token, and all traffic to and from it is denied"
    )
    screenshot(page, "confirm")
    page.get_by_role("button", name="Yes, disable user-management").click()
    expect(page.locator('[data-field="phase"]')).to_have_text("Disabled", timeout=20000)
    body = cluster.plugin(ns, "user-management")
    assert body is not None
    assert body["spec"]["enabled"] is False
    axe_scan(page, "detail")
    screenshot(page, "detail-disabled")

    # Enable again: Active within seconds, without reloading.
    page.get_by_role("button", name="Enable").click()
    page.get_by_role("button", name="Yes, enable user-management").click()
    expect(page.locator('[data-field="phase"]')).to_have_text("Active", timeout=30000)
    assert (cluster.plugin(ns, "user-management") or {})["spec"]["enabled"] is True
    expect(page.get_by_role("heading", name="Manifest")).to_be_visible()
    screenshot(page, "detail")

    # Kubernetes' own audit log names the user who patched.
    if kube_cluster.local:
        wait_for(
            "the API server's audit log to name ui-admin",
            lambda: audit_log_names(
                kube_cluster.state_dir, ns, "user-management", users.username("ui-admin")
            ),
            timeout=15,
        )

    # A cross-site POST (from another origin, no cookie, a guessed token) is refused.
    evil = (
        f'<html><body><form id="f" method="post" '
        f'action="{ui_url}/ui/plugins/{ns}/user-management/enabled">'
        '<input name="enabled" value="false"><input name="csrf" value="guess">'
        '<button id="go">go</button></form></body></html>'
    )
    page.route(
        "http://evil.test/**", lambda route: route.fulfill(body=evil, content_type="text/html")
    )
    page.goto("http://evil.test/")
    with page.expect_response(lambda r: r.url.endswith("/enabled")) as answer:
        page.click("#go")
    assert answer.value.status == 403
    expect(page.get_by_role("heading", name="Refused: cross-site request")).to_be_visible()
    assert (cluster.plugin(ns, "user-management") or {})["spec"]["enabled"] is True


def test_read_only_user_sees_disabled_buttons_and_a_forced_post_gets_403(
    page: Page, ui_url: str, users: Users, cluster: Cluster
) -> None:
    ns = users.namespace
    apply_examples(cluster, ns)
    sign_in(page, ui_url, users.reader, ns)
    um = row(page, ns, "user-management")
    button = um.get_by_role("button", name="Disable")
    expect(button).to_be_disabled()
    expect(um.locator(".why")).to_contain_text("may read this plugin but not change it")
    screenshot(page, "list-read-only")

    # Forcing it: enable the button in the page and press it; the API server says 403.
    um.locator("button[data-field=action]").evaluate("b => { b.disabled = false; }")
    with page.expect_response(lambda r: r.url.endswith("/enabled")) as answer:
        button.click()
    assert answer.value.status == 403
    expect(page.locator("#action-error")).to_contain_text(
        "The Kubernetes API refused the change (403)"
    )
    expect(page.locator("#action-error")).to_contain_text("forbidden")
    assert (cluster.plugin(ns, "user-management") or {})["spec"]["enabled"] is True
