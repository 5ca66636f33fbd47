"""The invariants every fault must leave intact, checked from the API server's state.

Two halves:

* pure: :class:`Snapshot` (what was read) and :func:`check` (the list of violations, each a
  sentence naming the object), table-tested in tests/unit/test_chaos_invariants.py;
* reading: :func:`snapshot_from` builds a Snapshot from objects as JSON (the plugins of some
  namespaces, their labelled children, the token Secrets, the signing-key Secret, the JWKS and
  the revocation list in the operator's namespace); :func:`read_snapshot` reads them from a
  live API server, tests/unit/test_chaos_crash_points.py from the fake cluster.

The invariants (issue 13):

1. every VivifiedPlugin is in the phase its spec implies (``expected_phase``), written for its
   current generation (``status.observedGeneration``);
2. no orphaned child: every object labelled ``vivified.dev/plugin`` is owned by a live plugin;
3. no plugin without its children (``required_kinds``);
4. at most one valid token per plugin (exactly one for an enabled one, none for a disabled one);
5. every jti revoked in an earlier snapshot is still revoked (until it expires);
6. the signing-key Secret and the published JWKS agree (same kids, same public keys);
7. no unrevoked old token: a token seen earlier that has not expired is revoked when its
   plugin is gone or disabled, or when the plugin's current token asserts other claims (a
   re-mint that only refreshes the lifetime or the key keeps the old one valid until it
   expires, by design: docs/tokens.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PLUGIN_LABEL = "vivified.dev/plugin"
JTI_ANNOTATION = "vivified.dev/token-jti"
KINDS = ("ServiceAccount", "Secret", "Deployment", "Service", "NetworkPolicy")


@dataclass(frozen=True)
class Child:
    kind: str
    namespace: str
    name: str
    plugin: str  # the vivified.dev/plugin label
    owner_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plugin:
    namespace: str
    name: str
    uid: str
    enabled: bool
    phase: str | None
    deleting: bool = False
    #: ``metadata.generation`` and the ``status.observedGeneration`` the phase was written for:
    #: a phase that describes an older spec has not converged yet.
    generation: int = 0
    observed_generation: int | None = 0


@dataclass(frozen=True)
class Token:
    """A token found in a token Secret; ``valid``: it verifies against the JWKS, is not
    revoked and has not expired (decided by the reader with the SDK's verifier). ``claims``
    is the Secret's claims fingerprint, ``owner_uid`` the plugin that owns the Secret."""

    namespace: str
    plugin: str
    jti: str
    valid: bool
    claims: str = ""
    owner_uid: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    plugins: tuple[Plugin, ...] = ()
    children: tuple[Child, ...] = ()
    tokens: tuple[Token, ...] = ()
    #: jti -> expiry, from the revocation ConfigMap
    revoked: Mapping[str, datetime] = field(default_factory=dict)
    #: kid -> (x, y), from the signing-key Secret (active, staged, retired still in the JWKS)
    keyring_keys: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: kid -> (x, y), from the JWKS ConfigMap
    jwks_keys: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def expected_phase(plugin: Plugin) -> str:
    """The phase the spec implies once the operator has caught up (valid plugins, kwok nodes)."""
    return "Active" if plugin.enabled else "Disabled"


def required_kinds(plugin: Plugin) -> tuple[str, ...]:
    """A disabled plugin keeps its workload (scaled to 0) but has no token Secret."""
    return KINDS if plugin.enabled else tuple(k for k in KINDS if k != "Secret")


def check(snapshot: Snapshot, earlier: Sequence[Snapshot] = ()) -> list[str]:
    """Every invariant violation in SNAPSHOT (and against EARLIER snapshots), sorted."""
    problems: list[str] = []
    live = {p.uid: p for p in snapshot.plugins}
    by_key = {(p.namespace, p.name): p for p in snapshot.plugins}

    for plugin in snapshot.plugins:
        if plugin.deleting:
            continue
        want = expected_phase(plugin)
        if plugin.phase != want:
            problems.append(f"{plugin.namespace}/{plugin.name}: phase {plugin.phase}, want {want}")
        elif plugin.observed_generation != plugin.generation:
            problems.append(
                f"{plugin.namespace}/{plugin.name}: status is for generation "
                f"{plugin.observed_generation}, the spec is at {plugin.generation}"
            )
        kinds = {
            c.kind
            for c in snapshot.children
            if (c.namespace, c.plugin) == (plugin.namespace, plugin.name)
            and plugin.uid in c.owner_uids
        }
        for kind in required_kinds(plugin):
            if kind not in kinds:
                problems.append(f"{plugin.namespace}/{plugin.name}: no {kind}")

    for child in snapshot.children:
        if not any(uid in live for uid in child.owner_uids):
            problems.append(f"{child.namespace}/{child.kind}/{child.name}: orphan (no live owner)")

    valid: dict[tuple[str, str], list[str]] = {}
    for token in snapshot.tokens:
        if token.valid:
            valid.setdefault((token.namespace, token.plugin), []).append(token.jti)
        if token.valid and token.jti in snapshot.revoked:
            problems.append(
                f"{token.namespace}/{token.plugin}: token {token.jti} valid but revoked"
            )
    for key, jtis in valid.items():
        if len(jtis) > 1:
            problems.append(f"{key[0]}/{key[1]}: {len(jtis)} valid tokens")
        owner = by_key.get(key)
        if owner is None or not owner.enabled:
            problems.append(f"{key[0]}/{key[1]}: valid token for a plugin that is gone or disabled")
    for plugin in snapshot.plugins:
        if plugin.enabled and not plugin.deleting and (plugin.namespace, plugin.name) not in valid:
            problems.append(f"{plugin.namespace}/{plugin.name}: no valid token")

    for before in earlier:
        for jti, expires in before.revoked.items():
            if jti not in snapshot.revoked and expires > snapshot.taken_at:
                problems.append(f"revocation of {jti} lost (expires {expires.isoformat()})")
    problems.extend(_unrevoked_old_tokens(snapshot, earlier, live, by_key))

    if set(snapshot.keyring_keys) != set(snapshot.jwks_keys):
        problems.append(
            f"keyring kids {sorted(snapshot.keyring_keys)}"
            f" != JWKS kids {sorted(snapshot.jwks_keys)}"
        )
    for kid in set(snapshot.keyring_keys) & set(snapshot.jwks_keys):
        if snapshot.keyring_keys[kid] != snapshot.jwks_keys[kid]:
            problems.append(f"key {kid}: keyring and JWKS publish different public keys")
    return sorted(problems)


def _unrevoked_old_tokens(
    snapshot: Snapshot,
    earlier: Sequence[Snapshot],
    live: Mapping[str, Plugin],
    by_key: Mapping[tuple[str, str], Plugin],
) -> set[str]:
    """Invariant 7 (see the module docstring)."""
    current = {(t.namespace, t.plugin): t for t in snapshot.tokens if t.valid}
    problems: set[str] = set()
    for before in earlier:
        for old in before.tokens:
            if not old.valid or old.jti in snapshot.revoked:
                continue
            if old.expires_at is None or old.expires_at <= snapshot.taken_at:
                continue
            key = (old.namespace, old.plugin)
            owner = live.get(old.owner_uid) if old.owner_uid else by_key.get(key)
            where = f"{old.namespace}/{old.plugin}"
            if owner is not None and owner.deleting:
                continue  # the delete handler revokes it; converge waits for that
            if owner is None or not owner.enabled:
                state = "deleted" if owner is None else "disabled"
                problems.add(f"{where}: old token {old.jti} of a {state} plugin not revoked")
                continue
            now = current.get(key)
            if now is not None and now.jti != old.jti and old.claims and now.claims != old.claims:
                problems.add(f"{where}: old token {old.jti} asserts superseded claims, not revoked")
    return problems


# --- building a snapshot from objects ----------------------------------------------------------

CLAIMS_ANNOTATION = "vivified.dev/token-claims-hash"
EXPIRES_ANNOTATION = "vivified.dev/token-expires-at"


def snapshot_from(
    plugins: Iterable[Mapping[str, Any]],
    children: Mapping[str, Iterable[Mapping[str, Any]]],
    *,
    jwks_data: Mapping[str, str],
    revocations_data: Mapping[str, str],
    signing_key_data: Mapping[str, str] | None,
    now: datetime,
    issuer: str,
    audience: str,
) -> Snapshot:
    """A Snapshot of objects as the API serves them (JSON): VivifiedPlugins, their labelled
    children by kind, the data of the JWKS and revocation ConfigMaps and of the signing-key
    Secret (base64, None when it does not exist). Tokens are verified with the operator's own
    verifier against that JWKS and revocation list at NOW."""
    from vivified import tokens  # noqa: PLC0415

    jwks_raw = jwks_data.get(tokens.JWKS_CONFIGMAP_KEY)
    jwks_doc = json.loads(jwks_raw) if jwks_raw else {"keys": []}
    revoked = tokens.revocations_from_configmap_data(dict(revocations_data))
    keyring_keys: dict[str, tuple[str, str]] = {}
    if signing_key_data is not None:
        decoded = {k: base64.b64decode(v).decode() for k, v in signing_key_data.items()}
        keyring_keys = _jwk_map(tokens.jwks(tokens.keyring_from_secret_data(decoded), now))

    found_plugins = [
        Plugin(
            namespace=item["metadata"].get("namespace", ""),
            name=item["metadata"]["name"],
            uid=item["metadata"]["uid"],
            enabled=bool((item.get("spec") or {}).get("enabled", True)),
            phase=(item.get("status") or {}).get("phase"),
            deleting=bool(item["metadata"].get("deletionTimestamp")),
            generation=int(item["metadata"].get("generation") or 0),
            observed_generation=(item.get("status") or {}).get(
                "observedGeneration", int(item["metadata"].get("generation") or 0)
            ),
        )
        for item in plugins
    ]
    found_children: list[Child] = []
    found_tokens: list[Token] = []
    for kind, objects in children.items():
        for obj in objects:
            meta = obj["metadata"]
            owners = tuple(str(o["uid"]) for o in meta.get("ownerReferences") or ())
            plugin_id = (meta.get("labels") or {})[PLUGIN_LABEL]
            namespace = meta.get("namespace", "")
            found_children.append(Child(kind, namespace, meta["name"], plugin_id, owners))
            data = obj.get("data") or {}
            if kind != "Secret" or "token" not in data:
                continue
            annotations = meta.get("annotations") or {}
            raw = base64.b64decode(data["token"]).decode()
            expires = annotations.get(EXPIRES_ANNOTATION)
            facts = {
                "claims": annotations.get(CLAIMS_ANNOTATION, ""),
                "owner_uid": owners[0] if owners else "",
                "expires_at": tokens.parse_rfc3339(expires) if expires else None,
            }
            try:
                verified = tokens.verify_plugin_token(
                    raw,
                    jwks_doc,
                    audience=audience,
                    issuer=issuer,
                    revoked_jtis=revoked.jtis,
                    now=now,
                )
                found_tokens.append(Token(namespace, plugin_id, verified.jti, True, **facts))
            except tokens.TokenInvalid:
                jti = annotations.get(JTI_ANNOTATION, "")
                found_tokens.append(Token(namespace, plugin_id, jti, False, **facts))
    return Snapshot(
        plugins=tuple(found_plugins),
        children=tuple(found_children),
        tokens=tuple(found_tokens),
        revoked=dict(revoked.entries),
        keyring_keys=keyring_keys,
        jwks_keys=_jwk_map(jwks_doc),
        taken_at=now,
    )


# --- reading a live API server ---------------------------------------------------------------


def _jwk_map(document: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {str(k["kid"]): (str(k["x"]), str(k["y"])) for k in document.get("keys", [])}


def read_snapshot(
    api: Any, namespaces: Iterable[str], operator_namespace: str, now: datetime | None = None
) -> Snapshot:
    """A Snapshot of NAMESPACES (and the trust documents in OPERATOR_NAMESPACE) via API
    (a ``kubernetes.client.ApiClient``)."""
    from kubernetes import client  # noqa: PLC0415

    from vivified.settings import OperatorSettings  # noqa: PLC0415

    settings = OperatorSettings()
    core, apps, net = client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)
    custom = client.CustomObjectsApi(api)

    def config_map(name: str) -> dict[str, str]:
        try:
            return dict(core.read_namespaced_config_map(name, operator_namespace).data or {})
        except client.ApiException as error:
            if error.status == 404:
                return {}
            raise

    jwks_data = config_map(settings.jwks_configmap)
    revocations_data = config_map(settings.revocations_configmap)
    signing_key_data: dict[str, str] | None
    try:
        secret = core.read_namespaced_secret(settings.signing_key_secret, operator_namespace)
        signing_key_data = {str(k): str(v) for k, v in (secret.data or {}).items()}
    except client.ApiException as error:
        if error.status != 404:
            raise
        signing_key_data = None
    listers: dict[str, Any] = {
        "ServiceAccount": core.list_namespaced_service_account,
        "Secret": core.list_namespaced_secret,
        "Deployment": apps.list_namespaced_deployment,
        "Service": core.list_namespaced_service,
        "NetworkPolicy": net.list_namespaced_network_policy,
    }
    plugins: list[dict[str, Any]] = []
    children: dict[str, list[dict[str, Any]]] = {kind: [] for kind in listers}
    for namespace in namespaces:
        listing: Any = custom.list_namespaced_custom_object(
            "vivified.dev", "v1alpha1", namespace, "vivifiedplugins"
        )
        plugins.extend(listing["items"])
        for kind, lister in listers.items():
            items = lister(namespace, label_selector=PLUGIN_LABEL).items
            children[kind].extend(api.sanitize_for_serialization(obj) for obj in items)
    return snapshot_from(
        plugins,
        children,
        jwks_data=jwks_data,
        revocations_data=revocations_data,
        signing_key_data=signing_key_data,
        now=now or datetime.now(UTC),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
    )
