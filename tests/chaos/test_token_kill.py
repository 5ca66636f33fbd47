"""Short chaos scenarios (``make test``): the operator killed with SIGKILL while it re-mints
tokens (a claims change: every old token must end up revoked) and while it rotates its signing
key. Every crash point of the same flows is covered without a cluster by
tests/unit/test_chaos_crash_points.py; this is the real process and the real API server."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from tests.chaos.harness import Operator, converge
from tests.e2e.kube import Cluster, plugin_body

pytestmark = pytest.mark.cluster

PLUGINS = 5


def test_kill_9_while_re_minting_for_new_claims_revokes_every_old_token(
    k8s_api: client.ApiClient, namespace: str, chaos_operator: Operator
) -> None:
    """A new version changes every token's claims: new tokens are minted and the old ones
    revoked. Killed 0.3 s into that, the restarted operator must leave each plugin with
    exactly one valid token and no old token unrevoked (invariant 7)."""
    cluster = Cluster(k8s_api)
    chaos_operator.start()
    names = [f"remint-{i}" for i in range(PLUGINS)]
    for name in names:
        cluster.apply_plugin(namespace, plugin_body(name))
    _, problems, before = converge(k8s_api, [namespace], chaos_operator.operator_namespace)
    assert problems == []
    for name in names:
        cluster.patch_spec(namespace, name, {"manifest": {"version": "1.1.0"}})
    time.sleep(0.3)
    chaos_operator.kill9()
    chaos_operator.start()
    seconds, problems, after = converge(
        k8s_api, [namespace], chaos_operator.operator_namespace, earlier=[before]
    )
    print(f"\nkill -9 0.3 s into re-minting {PLUGINS} tokens: converged in {seconds}s")
    assert problems == []
    old = {t.jti for t in before.tokens}
    assert old.isdisjoint({t.jti for t in after.tokens if t.valid}), "no token was re-minted"
    assert old <= set(after.revoked), "an old token is not on the revocation list"


def test_kill_9_during_a_key_rotation_keeps_keys_and_tokens_consistent(
    k8s_api: client.ApiClient, namespace: str, chaos_operator: Operator
) -> None:
    """With a maximum key age of 1 s every start rotates the signing key (load: key ring
    Secret, then the JWKS). Killed right as it logs the rotation, then started again (it
    rotates once more), the key ring and the JWKS must agree, every token must still verify
    (the retired keys stay published) and no revocation may be lost."""
    cluster = Cluster(k8s_api)
    chaos_operator.start()
    for i in range(3):
        cluster.apply_plugin(namespace, plugin_body(f"rotate-{i}"))
    _, problems, before = converge(k8s_api, [namespace], chaos_operator.operator_namespace)
    assert problems == []
    chaos_operator.stop()
    time.sleep(1.1)  # the active key is now older than the maximum age below
    chaos_operator.settings.update(
        {"signing_key_max_age_seconds": "1", "signing_key_publish_ahead_seconds": "0"}
    )
    chaos_operator.start(until="rotated signing key")
    chaos_operator.kill9()
    time.sleep(1.1)
    chaos_operator.start()
    seconds, problems, after = converge(
        k8s_api, [namespace], chaos_operator.operator_namespace, earlier=[before]
    )
    print(f"\nkill -9 during a key rotation: converged in {seconds}s")
    assert problems == []
    assert set(before.keyring_keys) != set(after.keyring_keys), "no key was rotated"
