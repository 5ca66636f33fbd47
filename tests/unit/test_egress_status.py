"""EgressEnforced is True only when the NetworkPolicy forces egress through the core and the
core reports the plugin's allowlist loaded (issue 9)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.unit.egress_fixtures import egress_record

from vivified.dataplane.directory import StaticDirectory
from vivified.dataplane.proxy import allowlist_report
from vivified.policy.egress_status import (
    EgressReport,
    egress_condition,
    forces_egress_through_core,
)
from vivified.status import PluginFacts, WorkloadFacts, derive_status

DOMAINS = ("api.partner.test", "b.partner.test")
DNS_AND_CORE = {
    "spec": {
        "policyTypes": ["Ingress", "Egress"],
        "egress": [
            {"to": [{"namespaceSelector": {}, "podSelector": {}}], "ports": [{"port": 53}]},
            {"to": [{"namespaceSelector": {}, "podSelector": {}}], "ports": [{"port": 3128}]},
        ],
    }
}
WITH_IPBLOCK = {
    "spec": {
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}],
    }
}


@pytest.mark.parametrize(
    ("policy", "forces"),
    [
        (DNS_AND_CORE, True),
        (WITH_IPBLOCK, False),
        ({"spec": {"policyTypes": ["Ingress"]}}, False),
        ({"spec": {"policyTypes": ["Egress"], "egress": [{"ports": [{"port": 443}]}]}}, False),
        ({"spec": {"policyTypes": ["Egress"]}}, True),  # deny all
        (None, False),
    ],
)
def test_forces_egress_through_core(policy: dict[str, object] | None, forces: bool) -> None:
    assert forces_egress_through_core(policy) is forces


LOADED = EgressReport(generation=3, domains=DOMAINS)


@pytest.mark.parametrize(
    ("domains", "through_core", "report", "status", "reason"),
    [
        (DOMAINS, True, LOADED, True, "Enforced"),
        (DOMAINS, True, EgressReport(4, DOMAINS), True, "Enforced"),
        (DOMAINS, False, LOADED, False, "PortLevel"),
        ((), False, None, False, "NotRestricted"),
        ((), True, None, True, "PlatformOnly"),
        (DOMAINS, True, None, False, "AllowlistNotLoaded"),
        (DOMAINS, True, EgressReport(2, DOMAINS), False, "AllowlistNotLoaded"),
        (DOMAINS, True, EgressReport(3, DOMAINS[:1]), False, "AllowlistMismatch"),
        (DOMAINS, True, EgressReport(3, DOMAINS, "report"), False, "ReportOnly"),
    ],
)
def test_egress_condition(
    domains: tuple[str, ...],
    through_core: bool,
    report: EgressReport | None,
    status: bool,
    reason: str,
) -> None:
    ok, why, message = egress_condition(
        domains=domains, generation=3, through_core=through_core, report=report
    )
    assert (ok, why) == (status, reason)
    if ok and domains:
        assert "api.partner.test, b.partner.test" in message
    if reason == "ReportOnly":
        assert "report mode" in message


def test_the_core_report_round_trips_into_the_condition() -> None:
    directory = StaticDirectory([egress_record("billing", domains=DOMAINS, generation=3)])
    document = allowlist_report(directory)
    report = EgressReport.from_document(document, "billing")
    assert report == LOADED
    assert EgressReport.from_document(document, "nobody") is None
    assert EgressReport.from_document(allowlist_report(directory, "report"), "billing") == (
        EgressReport(3, DOMAINS, "report")
    )


def test_derive_status_shows_the_domains_when_enforced() -> None:
    facts = PluginFacts(
        generation=3,
        workload=WorkloadFacts(exists=True, desired_replicas=1, ready_replicas=1, available=True),
        egress_domains=DOMAINS,
        egress_through_core=True,
        egress_report=LOADED,
    )
    status = derive_status(facts, {}, datetime.now(UTC))
    (egress,) = [c for c in status["conditions"] if c["type"] == "EgressEnforced"]
    assert (egress["status"], egress["reason"]) == ("True", "Enforced")
    assert "api.partner.test" in egress["message"]


async def test_the_core_serves_the_allowlist_state_to_the_operator_only() -> None:
    from aiohttp import web  # noqa: PLC0415
    from aiohttp.test_utils import TestClient, TestServer  # noqa: PLC0415
    from tests.unit.core_fakes import World, manifest  # noqa: PLC0415

    from vivified.dataplane.proxy.http import ALLOWLISTS_PATH, routes  # noqa: PLC0415

    world = World(
        directory=StaticDirectory([egress_record("billing", domains=DOMAINS, generation=3)])
    )
    plugin = manifest("nosy")
    world.add(plugin)
    app = web.Application()
    app.add_routes(routes(world.directory, "enforce", world.ctx.authenticator))
    async with TestClient(TestServer(app)) as client:
        response = await client.get(ALLOWLISTS_PATH, headers=world.operator_bearer())
        document = await response.json()
        # Another plugin must not learn billing's domains; nobody without a token either.
        nosy = await client.get(ALLOWLISTS_PATH, headers=world.bearer(plugin))
        anonymous = await client.get(ALLOWLISTS_PATH)
        refusals = [(r.status, (await r.json())["reason"]) for r in (nosy, anonymous)]
    assert EgressReport.from_document(document, "billing") == LOADED
    assert refusals == [(403, "operator_only"), (401, "missing_credentials")]
