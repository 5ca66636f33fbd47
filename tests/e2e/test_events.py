"""Event lane on a real API server: a subscription the plugin may not hold is Invalid."""

from __future__ import annotations

import pytest
import yaml
from tests.e2e.conftest import StartOperator
from tests.e2e.kube import EXAMPLES, Cluster

pytestmark = pytest.mark.cluster


def test_pii_subscription_without_handles_pii_is_invalid_naming_the_field(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    body = yaml.safe_load((EXAMPLES / "invalid" / "events-pii-without-trait.yaml").read_text())
    cluster.apply_plugin(namespace, body)
    status = cluster.wait_phase(namespace, body["metadata"]["name"], "Invalid")
    errors = {e["field"]: e["message"] for e in status["validationErrors"]}
    assert "'handles_pii' trait to subscribe" in errors["spec.manifest.events.subscribes[0]"]
    assert "spec.manifest.endpoints.events" in errors
