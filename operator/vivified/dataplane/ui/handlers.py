"""The Admin UI's request handlers: thin, each one fetch (as the user) → view model → template.

Authorization is the API server's: reads and the enable/disable patch are the signed-in user's
own API calls. A SelfSubjectAccessReview only decides whether a button is shown enabled; a
forced request still goes to the API server, whose refusal is shown as it gave it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import yaml
from aiohttp import web

from vivified.audit.hook import AuditEntry, Auditor, AuditUnavailable, Outcome
from vivified.dataplane.ui import pages, views
from vivified.dataplane.ui import session as sessions
from vivified.dataplane.ui.audit_seam import AuditReader
from vivified.dataplane.ui.config import UIConfig
from vivified.dataplane.ui.kubeapi import JSON, KubeAPI, KubeError
from vivified.dataplane.ui.security import cross_site_refusal
from vivified.dataplane.ui.session import Session, SessionInvalid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UIState:
    """What every handler needs, kept on the application."""

    config: UIConfig
    kube: KubeAPI
    auditor: Auditor
    audit_reader: AuditReader | None


STATE = web.AppKey("vivified_ui", UIState)
COOKIE = "__Host-vivified-ui"
PLAIN_COOKIE = "vivified-ui"  # without Secure the __Host- prefix is not allowed
MANIFEST_MAX = 40000

SIGN_IN_REASONS = {
    "none": "Sign in with a Kubernetes bearer token.",
    "invalid": "Your session could not be read (forged, from another server, or altered). "
    "Sign in again.",
    "expired": "Your session expired. Sign in again.",
    "refused": "The Kubernetes API no longer accepts your token (expired or revoked). "
    "Sign in again.",
    "signed_out": "You are signed out.",
}


def cookie_name(config: UIConfig) -> str:
    return COOKIE if config.secure_cookie else PLAIN_COOKIE


def set_session(response: web.StreamResponse, config: UIConfig, s: Session) -> None:
    response.set_cookie(
        cookie_name(config),
        sessions.seal(s, config.session_key),
        max_age=config.session_seconds,
        path="/",
        secure=config.secure_cookie,
        httponly=True,
        samesite="Strict",
    )


def current_session(request: web.Request) -> tuple[Session | None, str]:
    """The request's session and, without one, why not ("none", "invalid", "expired")."""
    config = request.app[STATE].config
    cookie = request.cookies.get(cookie_name(config))
    if not cookie:
        return None, "none"
    try:
        return sessions.unseal(cookie, config.session_key), ""
    except SessionInvalid as error:
        return None, "expired" if "expired" in str(error) else "invalid"


@dataclass(frozen=True)
class User:
    """A signed-in request: its session and the token every API call carries."""

    session: Session
    token: str


def _signed_in(request: web.Request) -> User | web.Response:
    s, why = current_session(request)
    if s is None or s.token is None:
        return pages.redirect(f"/ui/login?reason={why or 'none'}")
    return User(s, s.token)


async def _form_checked(request: web.Request, s: Session | None) -> dict[str, str] | web.Response:
    """The POSTed form, or the refusal of a cross-site or token-less request."""
    refusal = cross_site_refusal(request.headers, request.host)
    if refusal:
        return pages.message(
            s,
            "Refused: cross-site request",
            f"This request was refused because {refusal}.",
            status=403,
        )
    form = {k: str(v) for k, v in (await request.post()).items()}
    if s is None or not s.csrf_matches(form.get("csrf")):
        return pages.message(
            s,
            "Refused: form expired or not from this site",
            "The form's CSRF token does not belong to your session (it was sent from another "
            "site, or your session changed since the page was loaded). Reload and try again.",
            status=403,
        )
    return form


def _refused_by_api(request: web.Request, s: Session, error: KubeError) -> web.Response:
    if error.status == 401:
        response = pages.redirect("/ui/login?reason=refused")
        response.del_cookie(cookie_name(request.app[STATE].config), path="/")
        return response
    status = error.status if error.status in (403, 404, 409, 422) else 502
    return pages.message(
        s, f"The Kubernetes API refused ({error.status})", error.message, status=status
    )


# -- sign-in ---------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.StreamResponse:
    config = request.app[STATE].config
    s, _ = current_session(request)
    if s is not None and s.signed_in:
        return pages.redirect("/ui/")
    s = sessions.anonymous(config.session_seconds)
    reason = SIGN_IN_REASONS.get(request.query.get("reason", "none"), SIGN_IN_REASONS["none"])
    response = pages.render(
        "login.html", s, notice=reason, error="", namespace=config.default_namespace
    )
    set_session(response, config, s)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    config, kube = state.config, state.kube
    s, _ = current_session(request)
    form = await _form_checked(request, s)
    if isinstance(form, web.Response):
        return form
    token = form.get("token", "").strip()
    namespace = form.get("namespace", "").strip()[:63]

    def again(error: str, status: int) -> web.Response:
        fresh = sessions.anonymous(config.session_seconds)
        response = pages.render(
            "login.html", fresh, status=status, notice="", error=error, namespace=namespace
        )
        set_session(response, config, fresh)
        return response

    if not token:
        return again("Enter a token: the same bearer token you give kubectl.", 400)
    if len(token) > sessions.MAX_TOKEN_CHARS:
        return again(
            f"This token is longer than {sessions.MAX_TOKEN_CHARS} characters and "
            "cannot be kept in a session cookie.",
            400,
        )
    if any(c.isspace() or not c.isprintable() for c in token):
        return again(
            "A bearer token has no spaces or control characters; check what you pasted.", 400
        )
    try:
        user = await kube.whoami(token)
    except KubeError as error:
        if error.status == 401:
            return again(
                "The Kubernetes API did not accept this token (wrong, expired, or "
                "issued for another cluster).",
                401,
            )
        return again(f"The Kubernetes API could not check the token: {error.message}", 502)
    log.info("ui sign-in: %s", user.username)
    fresh = sessions.signed_in(
        token=token,
        username=user.username,
        groups=user.groups,
        namespace=namespace,
        lifetime=config.session_seconds,
    )
    response = pages.redirect("/ui/")
    set_session(response, config, fresh)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    s, _ = current_session(request)
    form = await _form_checked(request, s)
    if isinstance(form, web.Response):
        return form
    response = pages.redirect("/ui/login?reason=signed_out")
    response.del_cookie(cookie_name(request.app[STATE].config), path="/")
    return response


# -- reading ---------------------------------------------------------------------------------


async def _patch_rights(
    kube: KubeAPI, token: str, namespaces: Iterable[str]
) -> dict[str, tuple[bool, str]]:
    unique = sorted(set(namespaces))
    answers = await asyncio.gather(*(kube.can(token, "patch", ns) for ns in unique))
    return {ns: (a.allowed, a.reason) for ns, a in zip(unique, answers, strict=True)}


async def plugin_list(request: web.Request) -> web.StreamResponse:
    user = _signed_in(request)
    if isinstance(user, web.Response):
        return user
    s, token = user.session, user.token
    kube = request.app[STATE].kube
    filters = views.Filters.parse(request.query, s.namespace)
    try:
        found = await kube.list_plugins(token, filters.namespace)
    except KubeError as error:
        if error.status != 403:
            return _refused_by_api(request, s, error)
        return pages.render(
            "list.html",
            s,
            status=403,
            page=None,
            filters=filters,
            actions={},
            denied=error.message,
            phases=views.PHASES,
            healths=views.HEALTHS,
            poll=request.app[STATE].config.poll_seconds,
        )
    page = views.list_page(found.items, filters, truncated=found.truncated)
    rights = await _patch_rights(kube, token, (r.namespace for r in page.rows))
    actions = {r.key: views.action_for(r, *rights[r.namespace]) for r in page.rows}
    return pages.render(
        "list.html",
        s,
        page=page,
        filters=filters,
        actions=actions,
        denied="",
        phases=views.PHASES,
        healths=views.HEALTHS,
        poll=request.app[STATE].config.poll_seconds,
    )


async def status_poll(request: web.Request) -> web.StreamResponse:
    """JSON for the polling script: the phase/health cells of the rows the page shows."""
    user = _signed_in(request)
    if isinstance(user, web.Response):
        return web.json_response({"signedIn": False}, status=401)
    s, token = user.session, user.token
    kube = request.app[STATE].kube
    filters = views.Filters.parse(request.query, s.namespace)
    name = request.query.get("name")
    try:
        if name:
            rows = [views.plugin_row(await kube.get_plugin(token, filters.namespace, name))]
        else:
            found = await kube.list_plugins(token, filters.namespace)
            rows = list(views.list_page(found.items, filters).rows)
    except KubeError as error:
        return web.json_response({"error": error.message}, status=error.status)
    return web.json_response({"plugins": views.status_json(rows)})


async def plugin_detail(request: web.Request) -> web.StreamResponse:
    user = _signed_in(request)
    if isinstance(user, web.Response):
        return user
    return await _detail(request, user, notice=_done_notice(request.query.get("done", "")))


def _done_notice(done: str) -> str:
    return {
        "disabled": "Disable requested: the operator is scaling the plugin to 0 and revoking "
        "its token.",
        "enabled": "Enable requested: the operator is starting the plugin again.",
    }.get(done, "")


async def _detail(
    request: web.Request, user: User, *, notice: str = "", error: str = "", status: int = 200
) -> web.Response:
    s, token = user.session, user.token
    kube = request.app[STATE].kube
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        obj, event_items, rights = await asyncio.gather(
            kube.get_plugin(token, namespace, name),
            _events_or_empty(kube, token, namespace, name),
            _patch_rights(kube, token, [namespace]),
        )
    except KubeError as failure:
        return _refused_by_api(request, s, failure)
    manifest = (obj.get("spec") or {}).get("manifest") or {}
    text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)
    if len(text) > MANIFEST_MAX:
        text = text[:MANIFEST_MAX] + "\n# … cut: the manifest is longer than the page shows\n"
    page = views.detail_page(obj, event_items, text)
    reader = request.app[STATE].audit_reader
    records = None if reader is None else await reader.recent(namespace, name, 20)
    return pages.render(
        "detail.html",
        s,
        status=status,
        page=page,
        notice=notice,
        error=error,
        action=views.action_for(page.row, *rights[namespace]),
        audit_records=records,
        poll=request.app[STATE].config.poll_seconds,
    )


async def _events_or_empty(kube: KubeAPI, token: str, namespace: str, name: str) -> list[JSON]:
    """Events are a nice-to-have: a user who may not list them still sees the plugin."""
    try:
        return await kube.events(token, namespace, name)
    except KubeError:
        return []


async def confirm(request: web.Request) -> web.StreamResponse:
    """The confirmation step (a page, so it works without JavaScript)."""
    user = _signed_in(request)
    if isinstance(user, web.Response):
        return user
    s, token = user.session, user.token
    kube = request.app[STATE].kube
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        obj = await kube.get_plugin(token, namespace, name)
        rights = await _patch_rights(kube, token, [namespace])
    except KubeError as error:
        return _refused_by_api(request, s, error)
    row = views.plugin_row(obj)
    return pages.render(
        "confirm.html", s, row=row, action=views.action_for(row, *rights[namespace])
    )


# -- acting ----------------------------------------------------------------------------------


async def set_enabled(request: web.Request) -> web.StreamResponse:
    """Enable or disable: the user's own merge patch of spec.enabled, audited either way."""
    s, _ = current_session(request)
    form = await _form_checked(request, s)
    if isinstance(form, web.Response):
        return form
    if s is None or s.token is None:
        return pages.redirect("/ui/login?reason=none")
    user = User(s, s.token)
    token = user.token
    want = form.get("enabled")
    if want not in ("true", "false"):
        return pages.message(
            s,
            "Refused: unknown action",
            "The form must say enabled=true or enabled=false.",
            status=400,
        )
    enabled = want == "true"
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    kube, auditor = request.app[STATE].kube, request.app[STATE].auditor
    action = "ui.enable" if enabled else "ui.disable"
    try:
        obj = await kube.set_enabled(token, namespace, name, enabled)
    except KubeError as error:
        await _audit(
            auditor,
            action,
            s,
            namespace,
            name,
            outcome="refused" if error.status < 500 else "error",
            reason=f"kubernetes_{error.status}",
            row=None,
        )
        if error.status == 401:
            return _refused_by_api(request, s, error)
        return await _detail(
            request,
            user,
            status=error.status if error.status < 500 else 502,
            error=f"The Kubernetes API refused the change ({error.status}): {error.message}",
        )
    row = views.plugin_row(obj)
    log.info("ui %s %s/%s by %s", action, namespace, name, s.username)
    warning = await _audit(auditor, action, s, namespace, name, outcome="allowed", row=row)
    if warning:
        return await _detail(request, user, error=warning)
    return pages.redirect(f"{row.href}?done={'enabled' if enabled else 'disabled'}")


async def _audit(
    auditor: Auditor,
    action: str,
    s: Session,
    namespace: str,
    name: str,
    *,
    outcome: Outcome,
    row: views.PluginRow | None,
    reason: str = "",
) -> str:
    """Record the action; returns a warning for the page when the audit sink failed."""
    traits = {b.kind for b in row.badges} if row else set()
    entry = AuditEntry(
        action=action,
        agent=f"user:{s.username}",
        outcome=outcome,
        reason=reason,
        entity={"namespace": namespace, "plugin": name},
        audit_level=row.audit_level if row and row.audit_level != views.MISSING else "basic",
        audit_required="audit_required" in traits,
    )
    try:
        await auditor.record(entry)
    except AuditUnavailable:
        log.error("ui audit record failed for %s %s/%s", action, namespace, name)
        return (
            "The change was made (the Kubernetes audit log records it), but the platform's "
            "audit trail could not record it: tell your administrator."
        )
    return ""
