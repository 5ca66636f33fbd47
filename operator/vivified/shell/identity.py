"""The operator's signing identity in the cluster: key ring Secret, JWKS and revocation list.

The private key lives only in a Secret in the operator's namespace and in this process's memory;
it is never logged. Public keys are published as a JWKS ConfigMap and revoked token ids as a
ConfigMap, both readable by the platform and by plugins that verify tokens.

Every change of the key ring (created, next key staged, rotated) is announced once, by the
replica whose write made it, as an Event about the Secret through the operator's Event
recorder, which also makes it a ``lifecycle.key_rotated`` audit record: key ids only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from vivified import tokens
from vivified.diff import needs_apply, stamped
from vivified.render import (
    render_jwks_configmap,
    render_revocations_configmap,
    render_signing_key_secret,
)
from vivified.settings import OperatorSettings
from vivified.shell.events import EventRecorder
from vivified.shell.kube import KINDS, MERGE_PATCH_CONTENT_TYPE, KubeApi, KubeError

logger = logging.getLogger(__name__)

#: Read-merge-write rounds of one revocation before its 409 is raised (the reconcile retries).
REVOKE_ATTEMPTS = 5


def _decode(data: Mapping[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


class Identity:
    """Loads or creates the key ring, rotates it, publishes JWKS, and keeps revocations."""

    def __init__(
        self,
        kube: KubeApi,
        settings: OperatorSettings,
        clock: Callable[[], datetime],
        events: EventRecorder | None = None,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._clock = clock
        self._events = events
        self._lock = asyncio.Lock()
        self._keyring: tokens.KeyRing | None = None
        self._revocations = tokens.RevocationList()

    @property
    def keyring(self) -> tokens.KeyRing:
        if self._keyring is None:
            raise RuntimeError("identity not loaded")
        return self._keyring

    @property
    def revocations(self) -> tokens.RevocationList:
        return self._revocations

    async def load(self) -> None:
        """Load (or create) the key ring, rotate it when due, and publish JWKS."""
        async with self._lock:
            ns, name = self._settings.operator_namespace, self._settings.signing_key_secret
            now = self._clock()
            live = await self._kube.get("Secret", ns, name)
            if live is None:
                keyring = tokens.KeyRing(active=tokens.generate_signing_key(now))
                try:
                    created = await self._kube.create(
                        render_signing_key_secret(keyring, self._settings)
                    )
                    logger.info("created signing key %s", keyring.active.kid)
                    await self._announce(created, tokens.key_changes(None, keyring))
                except KubeError as error:
                    if error.status != 409:
                        raise
                    live = await self._kube.get("Secret", ns, name)
            if live is not None:
                keyring = tokens.keyring_from_secret_data(_decode(live.get("data")))
            rotated = tokens.prune_keyring(keyring, now)
            # Two steps: the next key is published a while before it signs anything, so
            # verifiers holding a cached JWKS already know it when its first token arrives.
            step = tokens.rotation_due(
                rotated,
                now,
                max_age_seconds=self._settings.signing_key_max_age_seconds,
                publish_ahead_seconds=self._settings.signing_key_publish_ahead_seconds,
            )
            if step == "stage":
                rotated = tokens.stage(rotated, tokens.generate_signing_key(now))
                logger.info("staged next signing key %s", rotated.next.kid if rotated.next else "")
            elif step == "rotate":
                upcoming = rotated.next or tokens.generate_signing_key(now)
                rotated = tokens.rotate(rotated, upcoming, now, self._settings.token_ttl_seconds)
                logger.info("rotated signing key to %s", rotated.active.kid)
            if live is not None and rotated != keyring:
                secret = render_signing_key_secret(rotated, self._settings)
                secret["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                written = await self._kube.request(
                    "PUT",
                    f"/api/v1/namespaces/{ns}/secrets/{name}",
                    body=secret,
                )
                # Only after the write won (a conflicting replica raises above): one announcement.
                await self._announce(written or live, tokens.key_changes(keyring, rotated))
            self._keyring = rotated
            await self._publish(render_jwks_configmap(tokens.jwks(rotated, now), self._settings))
            await self._read_revocations()

    async def _read_revocations(self) -> None:
        """The stored revocation list (none stored: empty)."""
        live = await self._kube.get(
            "ConfigMap", self._settings.operator_namespace, self._settings.revocations_configmap
        )
        self._revocations = tokens.revocations_from_configmap_data((live or {}).get("data"))

    async def follow(self) -> None:
        """A standby's refresh: re-read the key ring and revocations the leader keeps, and
        write nothing (no rotation, no JWKS). The leader rotates; two replicas rotating the
        same ring would race, and a standby's write is one the leader did not make."""
        async with self._lock:
            live = await self._kube.get(
                "Secret", self._settings.operator_namespace, self._settings.signing_key_secret
            )
            if live is not None:
                self._keyring = tokens.keyring_from_secret_data(_decode(live.get("data")))
            await self._read_revocations()

    async def refresh(self, *, leading: bool) -> None:
        """The periodic refresh: the leader (or a standalone operator) loads, rotating when
        due; a standby only follows."""
        if leading:
            await self.load()
        else:
            await self.follow()

    async def start(self, *, leading: bool) -> None:
        """At start-up: a peered replica does not lead yet and only follows (it loads on
        taking the lead, ``Runtime.lead``), unless there is no key ring at all: on a first
        install someone must create it, and a racing create is settled by its 409."""
        await self.refresh(leading=leading)
        if self._keyring is None:
            await self.load()

    async def _announce(
        self, secret: Mapping[str, Any], changes: tuple[tokens.KeyChange, ...]
    ) -> None:
        """An Event (and so an audit record) per key-ring change; ids only, never the key."""
        if self._events is None:
            return
        meta = secret.get("metadata") or {}
        involved = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": meta.get("name", self._settings.signing_key_secret),
                "namespace": meta.get("namespace", self._settings.operator_namespace),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
        }
        for change in changes:
            reason, message = _describe(change)
            facts = {"kid": change.kid, "previous_kid": change.previous_kid}
            if change.retire_until is not None:
                facts["previous_verifies_until"] = tokens.format_rfc3339(change.retire_until)
            await self._events.normal(involved, reason, message, facts=facts)

    async def _publish(self, configmap: Mapping[str, Any]) -> None:
        desired = stamped(configmap)
        meta = desired["metadata"]
        live = await self._kube.get("ConfigMap", meta["namespace"], meta["name"])
        if needs_apply(desired, live):
            await self._kube.apply(desired, field_manager=self._settings.field_manager)

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        """List ``jti`` as revoked until it expires, and publish the list.

        Read, merge, write with the read's resourceVersion: the stored list may hold jtis this
        replica never saw (another replica revoked them before it died), and memory alone would
        drop them. A 409 means someone wrote in between: read and merge again.
        """
        async with self._lock:
            for attempt in range(1, REVOKE_ATTEMPTS + 1):
                try:
                    wrote = await self._merge_and_write(jti, expires_at)
                except KubeError as error:
                    if error.status != 409 or attempt == REVOKE_ATTEMPTS:
                        raise
                    logger.info("revocation list changed under us (409); merging again")
                    continue
                if wrote:
                    logger.info("revoked token %s", jti)
                return

    async def _merge_and_write(self, jti: str, expires_at: datetime) -> bool:
        """One read-merge-write round; False when the stored list already had it all."""
        ns, name = self._settings.operator_namespace, self._settings.revocations_configmap
        live = await self._kube.get("ConfigMap", ns, name)
        stored = tokens.revocations_from_configmap_data((live or {}).get("data"))
        merged = tokens.merge_revocations(self._revocations, stored)
        updated = tokens.prune_revocations(tokens.revoke(merged, jti, expires_at), self._clock())
        if live is not None and updated == stored:
            self._revocations = updated
            return False
        desired = stamped(render_revocations_configmap(updated, self._settings))
        if live is None:
            await self._kube.create(desired)  # 409 AlreadyExists: another writer was first
        else:
            # A merge patch carrying the resourceVersion read above is a compare-and-swap (409
            # when someone wrote in between), and needs only the "patch" verb the chart grants
            # on this ConfigMap (a PUT would need "update"). Keys no longer wanted are removed.
            data: dict[str, str | None] = dict.fromkeys(live.get("data") or {})
            data.update(desired.get("data") or {})
            meta = desired["metadata"]
            await self._kube.request(
                "PATCH",
                KINDS["ConfigMap"].path(ns, name),
                params={"fieldManager": self._settings.field_manager},
                body={
                    "metadata": {
                        "resourceVersion": live["metadata"]["resourceVersion"],
                        "labels": meta.get("labels") or {},
                        "annotations": meta.get("annotations") or {},
                    },
                    "data": data,
                },
                content_type=MERGE_PATCH_CONTENT_TYPE,
            )
        self._revocations = updated
        return True

    def mint(self, manifest: Any) -> tokens.MintedToken:
        s = self._settings
        return tokens.mint_plugin_token(
            self.keyring,
            manifest,
            issuer=s.token_issuer,
            audience=s.token_audience,
            ttl_seconds=s.token_ttl_seconds,
            now=self._clock(),
        )


def _describe(change: tokens.KeyChange) -> tuple[str, str]:
    """The Event reason and text of a key-ring change (``audit.lifecycle.KEY_EVENTS``)."""
    if change.step == "created":
        return "SigningKeyCreated", f"signing key {change.kid} created"
    if change.step == "staged":
        return "SigningKeyStaged", f"next signing key {change.kid} published in the JWKS"
    until = tokens.format_rfc3339(change.retire_until) if change.retire_until else "expiry"
    return (
        "SigningKeyRotated",
        f"signing key rotated from {change.previous_kid} to {change.kid}; "
        f"{change.previous_kid} verifies until {until}",
    )
