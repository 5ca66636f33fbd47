"""Reconcile one VivifiedPlugin: validate, render, apply what differs, derive status.

Level-based and idempotent: every call starts from the latest known object and the cached
children, so it does not matter what triggered it. Writes happen only where the live state
differs from the desired state; a plugin with nothing to change costs no request at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vivified import tokens
from vivified.admission import identity_violations
from vivified.dependencies import analyze
from vivified.diff import stamped
from vivified.health import probe_target
from vivified.manifest import PluginManifest
from vivified.plan import (
    ChildApply,
    apply_waves,
    children_to_apply,
    plan_instance,
    token_secret_name,
)
from vivified.policy import PolicyConfig, validate_spec
from vivified.policy.egress_status import EgressReport, forces_egress_through_core
from vivified.policy.invoke import effective_permissions
from vivified.registry import PluginEntry, PluginKey, PluginRegistry
from vivified.render import (
    PluginInstance,
    TokenSecretState,
    child_names,
    read_token_secret_state,
    render_token_secret,
)
from vivified.resource import FINALIZER, PluginSpec
from vivified.settings import OperatorSettings
from vivified.shell.events import EventRecorder
from vivified.shell.identity import Identity
from vivified.shell.informer import Informer
from vivified.shell.kube import KINDS, MERGE_PATCH_CONTENT_TYPE, KubeApi, KubeError
from vivified.shell.monitor import HealthMonitor
from vivified.status import (
    EventCounts,
    Phase,
    PluginFacts,
    TokenFacts,
    WorkloadFacts,
    derive_status,
    status_changed,
)
from vivified.tokens.renewal import LiveToken, RenewalInput, refresh_in, renewal_reason
from vivified.violations import Violation

logger = logging.getLogger(__name__)


CLAIMS_ANNOTATION = "vivified.dev/token-claims-hash"
MANIFEST_CACHE_SIZE = 256
DELETIONS_REMEMBERED = 4096


def claims_fingerprint(manifest: PluginManifest) -> str:
    """What the token asserts about the plugin; a change means the token must be re-minted."""
    claims = {
        "id": manifest.id,
        "version": manifest.version,
        "traits": sorted(manifest.traits),
        "data_classification": sorted(manifest.security.data_classification),
    }
    return hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).hexdigest()[:32]


def workload_facts(
    deployment: Mapping[str, Any] | None, *, was_active: bool = True
) -> WorkloadFacts:
    """Read availability the way ``kubectl rollout status`` does.

    ``serving`` (previous pods carry an edit's rollout) is believed only for a plugin that was
    Active: coming out of Disabled (scaled to 0) the Deployment's status can still count the
    pods the scale-down is removing, until its controller catches up. Believed there, the
    plugin went Active, then Pending when the count dropped, then Active again: two
    ``lifecycle.enabled`` records for one enable (seen in CI under load).
    """
    if deployment is None:
        return WorkloadFacts()
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    observed = int(status.get("observedGeneration", 0)) >= int(
        deployment.get("metadata", {}).get("generation", 0)
    )
    available = observed and ready >= desired and updated >= desired
    serving = was_active and desired > 0 and int(status.get("availableReplicas", 0)) >= desired
    return WorkloadFacts(
        exists=True,
        desired_replicas=desired,
        ready_replicas=ready,
        available=available,
        serving=serving,
        updated_replicas=updated,
    )


def namespace_terminating(error: KubeError) -> bool:
    """Whether the API server refused a create because the namespace is being deleted."""
    return error.status == 403 and "being terminated" in error.message


@dataclass(frozen=True)
class TokenInfo:
    """The public facts recorded on a live token Secret."""

    state: TokenSecretState
    claims: str

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any] | None) -> TokenInfo | None:
        if secret is None:
            return None
        notes = secret.get("metadata", {}).get("annotations") or {}
        state = read_token_secret_state(notes)
        return None if state is None else cls(state, notes.get(CLAIMS_ANNOTATION, ""))


class Reconciler:
    """Brings one plugin's children and status in line with its spec."""

    def __init__(
        self,
        *,
        kube: KubeApi,
        informer: Informer,
        registry: PluginRegistry,
        identity: Identity,
        events: EventRecorder,
        settings: OperatorSettings,
        clock: Callable[[], datetime],
        policy: PolicyConfig | None = None,
        health: HealthMonitor | None = None,
        on_affected: Callable[[set[PluginKey]], None] = lambda keys: None,
        egress_reports: Callable[[PluginKey], EgressReport | None] = lambda key: None,
        event_counts: Callable[[PluginKey], EventCounts | None] = lambda key: None,
        on_terminating: Callable[[str], None] = lambda namespace: None,
    ) -> None:
        self._kube = kube
        self._informer = informer
        self._registry = registry
        self._identity = identity
        self._events = events
        self._settings = settings
        self._clock = clock
        self._policy = policy
        self._health = health
        self._on_affected = on_affected
        self._egress_reports = egress_reports
        self._event_counts = event_counts
        self._on_terminating = on_terminating
        #: Valid manifests of other plugins by (key, resourceVersion), for their permissions;
        #: bounded (a plugin's neighbours are few; the cap only guards memory).
        self._manifests: OrderedDict[tuple[PluginKey, str], PluginManifest | None] = OrderedDict()
        #: uids of plugins whose deletion was announced (bounded; see _announce_deletion).
        self._deletions: OrderedDict[str, None] = OrderedDict()

    async def reconcile(self, key: PluginKey) -> float | None:
        """Reconcile ``key``; return seconds until it must be looked at again, if ever."""
        entry = self._registry.get(key)
        if entry is None:
            if self._health is not None:
                self._health.untrack(key)
            return None
        body = entry.body
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            # Straight to clean-up, whatever the children do: in a namespace being deleted they
            # are going too, and re-creating them is refused (and would block the deletion).
            await self.clean_up(key, body)
            return None
        report = validate_spec(body.get("spec"), self._policy)
        errors = tuple(
            sorted({*report.errors, *identity_violations(key, entry.plugin_id, self._registry)})
        )
        if errors or report.spec is None:
            await self._hold_invalid(key, body, errors)
            return None
        try:
            return await self._converge(key, body, report.spec)
        except KubeError as error:
            if not namespace_terminating(error):
                raise
            # Its children are going with the namespace; the plugin's own deletion follows.
            logger.info("%s/%s: namespace is being deleted; children not re-created", *key)
            self._on_terminating(key[0])
            return None

    async def _hold_invalid(
        self, key: PluginKey, body: Mapping[str, Any], errors: tuple[Violation, ...]
    ) -> None:
        """Report the errors; leave any last valid workload exactly as it is."""
        namespace, name = key
        deployment = self._informer.get("Deployment", namespace, name)
        facts = PluginFacts(
            generation=int(body.get("metadata", {}).get("generation", 0)),
            errors=errors,
            workload=workload_facts(deployment),
            kept_last_valid_workload=deployment is not None,
            permissions={"mayCall": [], "callableBy": []},  # an invalid plugin is not routed
        )
        previous = body.get("status") or {}
        new_errors = [v.to_dict() for v in errors] != previous.get("validationErrors")
        if await self._write_status(key, body, facts) and new_errors:
            await self._events.warning(
                body,
                "ValidationFailed",
                f"{len(errors)} validation error(s): "
                + "; ".join(f"{v.field}: {v.message}" for v in errors),
            )

    async def _converge(
        self, key: PluginKey, body: Mapping[str, Any], spec: PluginSpec
    ) -> float | None:
        namespace, name = key
        manifest = spec.manifest
        verdict = analyze(manifest.id, self._registry.graph_view(), self._registry.active_view())
        block = self._settings.dependency_policy == "block"
        instance = plan_instance(key, body["metadata"], spec, verdict, self._settings)
        if self._health is not None:
            target = probe_target(spec, self._settings) if instance.should_run else None
            if target is None:
                self._health.untrack(key, clear_status=True)
            else:
                self._health.track(key, target, body)
        token, requeue = await self._ensure_token(body, instance, manifest)
        changed: list[str] = []
        for wave in apply_waves(children_to_apply(instance, self._settings, self._informer.get)):
            changed += await self._apply_wave(wave)
        if changed:
            await self._events.normal(body, "ChildrenApplied", "; ".join(changed))
        facts = PluginFacts(
            generation=instance.generation,
            enabled=spec.enabled,
            dependencies=verdict,
            block_on_dependencies=block,
            workload=workload_facts(
                self._informer.get("Deployment", namespace, name),
                was_active=(body.get("status") or {}).get("phase") == Phase.ACTIVE,
            ),
            token=token,
            egress_domains=tuple(sorted(manifest.all_allowed_domains)),
            egress_through_core=forces_egress_through_core(
                self._informer.get(
                    "NetworkPolicy", namespace, child_names(instance.plugin_id)["NetworkPolicy"]
                )
            ),
            egress_report=self._egress_reports(key),
            event_publishes=tuple(manifest.events.publishes) if manifest.events else (),
            event_subscribes=tuple(manifest.events.subscribes) if manifest.events else (),
            event_counts=self._event_counts(key),
            permissions=self.permissions(manifest),
        )
        await self._write_status(key, body, facts)
        return requeue

    async def _apply_wave(self, wave: list[ChildApply]) -> list[str]:
        """Apply the wave's children concurrently (one round trip, not one per child); every
        success reaches the informer, then the first failure is raised (the key is retried)."""
        results = await asyncio.gather(
            *(
                self._kube.apply(c.desired, field_manager=self._settings.field_manager)
                for c in wave
            ),
            return_exceptions=True,
        )
        done: list[str] = []
        for child, result in zip(wave, results, strict=True):
            if not isinstance(result, BaseException):
                self._informer.observe(child.desired["kind"], result)
                done.append(child.describe())
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return done

    def permissions(self, manifest: PluginManifest) -> dict[str, list[str]]:
        """``effective_permissions`` over the plugins it concerns: its dependencies' owners and
        the owners that depend on it (the only ones either list can name), not every plugin."""
        neighbours = [
            self._registry.get(owner)
            for owner in (self._registry.owner_of(dep) for dep in manifest.dependencies)
            if owner is not None
        ]
        neighbours += self._registry.dependents_of(manifest.id)
        manifests = [manifest]
        for entry in neighbours:
            other = self._valid_manifest(entry) if entry is not None else None
            if other is not None and other.id != manifest.id:
                manifests.append(other)
        return effective_permissions(manifest.id, manifests)

    def _valid_manifest(self, entry: PluginEntry) -> PluginManifest | None:
        version = str((entry.body.get("metadata") or {}).get("resourceVersion", ""))
        cache_key = (entry.key, version)
        if cache_key in self._manifests:
            self._manifests.move_to_end(cache_key)
            return self._manifests[cache_key]
        report = validate_spec(entry.body.get("spec"), self._policy)
        found = None if report.errors or report.spec is None else report.spec.manifest
        self._manifests[cache_key] = found
        if len(self._manifests) > MANIFEST_CACHE_SIZE:
            self._manifests.popitem(last=False)
        return found

    async def _ensure_token(
        self, body: Mapping[str, Any], instance: PluginInstance, manifest: PluginManifest
    ) -> tuple[TokenFacts | None, float | None]:
        """Mint, refresh or revoke the plugin's token; never exposes the token itself."""
        secret_name = token_secret_name(manifest.id)
        live = self._informer.get("Secret", instance.namespace, secret_name)
        info = TokenInfo.from_secret(live)
        if not instance.enabled:
            if live is not None:
                if info is not None:
                    await self._identity.revoke(info.state.jti, info.state.expires_at)
                await self._kube.delete("Secret", instance.namespace, secret_name)
                self._informer.forget("Secret", instance.namespace, secret_name)
                await self._events.normal(body, "TokenRevoked", "plugin disabled: token revoked")
            return None, None
        now = self._clock()
        claims = claims_fingerprint(manifest)
        state = info.state if info is not None else None
        reason = renewal_reason(
            RenewalInput(
                live=None
                if info is None
                else LiveToken(
                    info.state.jti,
                    info.state.kid,
                    info.state.issued_at,
                    info.state.expires_at,
                    info.claims,
                ),
                claims=claims,
                signing_kids=self._identity.keyring.kids,
                revoked=self._identity.revocations,
                now=now,
                refresh_fraction=self._settings.token_refresh_fraction,
            )
        )
        if reason is not None or state is None:
            if info is not None and info.claims != claims:
                # What the old token asserts is no longer true: it must stop working now, and
                # before the new one is written. Revoked after it (as before), a kill -9 in
                # between left the old token valid until it expired: the Secret then holds
                # the new one and nobody knows the old jti any more (found by
                # tests/unit/test_chaos_crash_points.py).
                await self._identity.revoke(info.state.jti, info.state.expires_at)
            minted = self._identity.mint(manifest)
            secret = render_token_secret(
                instance, minted, self._settings, jwks=tokens.jwks(self._identity.keyring, now)
            )
            secret["metadata"].setdefault("annotations", {})[CLAIMS_ANNOTATION] = claims
            applied = await self._kube.apply(
                stamped(secret), field_manager=self._settings.field_manager
            )
            self._informer.observe("Secret", applied)
            await self._events.normal(
                body,
                "TokenIssued",
                f"token {minted.jti} issued with key {minted.kid} ({reason}), expires "
                f"{tokens.format_rfc3339(minted.expires_at)}",
            )
            state = TokenSecretState(minted.jti, minted.kid, minted.issued_at, minted.expires_at)
        requeue = refresh_in(
            state.issued_at, state.expires_at, now, self._settings.token_refresh_fraction
        )
        return (
            TokenFacts(
                secret_name=secret_name,
                key_id=state.kid,
                expires_at=tokens.format_rfc3339(state.expires_at),
                jti=state.jti,
            ),
            requeue,
        )

    async def _write_status(
        self, key: PluginKey, body: Mapping[str, Any], facts: PluginFacts
    ) -> bool:
        """Patch status when it differs; returns whether it did."""
        previous = body.get("status") or {}
        desired = derive_status(facts, previous, self._clock())
        if not status_changed(previous, desired):
            return False
        namespace, name = key
        updated = await self._kube.patch_status("VivifiedPlugin", namespace, name, desired)
        if previous.get("phase") != desired["phase"]:
            ready = next(c for c in desired["conditions"] if c["type"] == "Ready")
            kind = "Warning" if desired["phase"] == "Invalid" else "Normal"
            await self._events.post(
                body, kind, f"Phase{desired['phase']}", f"{desired['phase']}: {ready['message']}"
            )
        self._on_affected(self._registry.upsert(key, updated))
        return True

    async def finalize(self, key: PluginKey, body: Mapping[str, Any]) -> None:
        """On deletion: revoke the plugin's token (children go by garbage collection).

        The token is found in the cached Secret or, when the Secret is already gone (a namespace
        being deleted removes it first), in the status, which records the token's id.
        """
        if self._health is not None:
            self._health.untrack(key)
        namespace, name = key
        revoked: list[str] = []
        for secret in self._informer.owned_by(namespace, name):
            if secret.get("kind") != "Secret":
                continue
            info = TokenInfo.from_secret(secret)
            if info is not None:
                await self._identity.revoke(info.state.jti, info.state.expires_at)
                revoked.append(info.state.jti)
        recorded = (body.get("status") or {}).get("token") or {}
        jti, expires = recorded.get("jti"), recorded.get("expiresAt")
        if isinstance(jti, str) and jti and isinstance(expires, str):
            try:
                await self._identity.revoke(jti, tokens.parse_rfc3339(expires))
                revoked.append(jti)
            except ValueError:
                logger.warning("%s/%s: recorded token expiry unreadable: %r", *key, expires)
        await self._announce_deletion(body, sorted(set(revoked)))

    async def _announce_deletion(self, body: Mapping[str, Any], revoked: list[str]) -> None:
        """``PluginDeleted`` (and its ``lifecycle.deleted`` record) once per plugin uid.

        Both kopf's delete handler and a reconcile of a plugin marked for deletion finalize it
        (the latter when kopf stopped watching its namespace); the uid keeps it to one record
        per process. A restarted operator may announce again: the record carries the uid.
        """
        uid = str((body.get("metadata") or {}).get("uid") or "")
        if uid in self._deletions:
            return
        self._deletions[uid] = None
        if len(self._deletions) > DELETIONS_REMEMBERED:
            self._deletions.popitem(last=False)
        tokens_text = ", ".join(revoked) if revoked else "none"
        await self._events.normal(
            body,
            "PluginDeleted",
            f"plugin deleted; token(s) revoked: {tokens_text}",
            facts={"uid": uid, "revoked_jti": ",".join(revoked)},
        )

    async def clean_up(self, key: PluginKey, body: Mapping[str, Any]) -> None:
        """A plugin being deleted: revoke its token, release its id, remove our finalizer."""
        await self.finalize(key, body)
        self._on_affected(self._registry.release(key))
        finalizers = list((body.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        namespace, name = key
        remaining = [f for f in finalizers if f != FINALIZER]
        try:
            await self._kube.request(
                "PATCH",
                KINDS["VivifiedPlugin"].path(namespace, name),
                # The resourceVersion makes it a compare-and-swap: another finalizer removed
                # meanwhile means a conflict and a retry, never a finalizer put back.
                body={
                    "metadata": {
                        "finalizers": remaining or None,
                        "resourceVersion": body["metadata"].get("resourceVersion"),
                    }
                },
                content_type=MERGE_PATCH_CONTENT_TYPE,
            )
        except KubeError as error:
            if error.status != 404:
                raise
        logger.info("%s/%s deleted: token revoked, finalizer removed", namespace, name)
