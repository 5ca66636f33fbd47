"""Fuzz bench: the long variant of tests/unit/test_chaos_fuzz.py and test_chaos_fuzz_proxy.py.

    python bench/fuzz.py [--cases 10000] [--seed 0] [--only heartbeat,invoke,events,...]

Entry points (``--only``, comma-separated; default all):

* ``heartbeat``, ``invoke``, ``events`` (publish, on an in-memory JetStream), ``allowlists``
  (the proxy lane's route): through the core's real aiohttp app on a
  ``tests.unit.core_fakes.World``;
* ``admission``: the webhook's registered kopf handler, called directly;
* ``webhook``: bodies POSTed to the operator's HTTPS webhook server (kopf's admission path);
* ``proxy``: raw byte streams to the proxy lane's listener on a loopback socket.

Each draws ``--cases`` inputs from the strategies of tests/chaos/fuzz.py and fuzz_proxy.py
with hypothesis (no shrinking: every failure counted) and checks each answer: never a 500,
never a traceback, JSON when it says JSON (the handler: allow or ``AdmissionError``; the
proxy: also no escaped exception, no stray dial, nothing left open at the end). Prints cases,
failures (first three shown), cases/s and the status codes seen, the RSS growth over the
entry point's run (bounded memory) and the process's peak RSS. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hseed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tests.chaos import fuzz, fuzz_proxy  # noqa: E402

ENTRIES = ("heartbeat", "invoke", "events", "allowlists", "admission", "webhook", "proxy")
_STATUS = re.compile(rb"^HTTP/1\.[01] ([0-9]{3})")


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(
    name: str, cases: int, seed: int, driver: fuzz.Driver, proxy: fuzz_proxy.ProxyDriver | None
) -> dict[str, Any]:
    failures: list[str] = []
    count = 0
    statuses: Counter[str] = Counter()
    original = fuzz.check_answer

    async def counting(response: Any) -> str | None:
        statuses[str(response.status)] += 1
        return await original(response)

    fuzz.check_answer = counting

    def record(problem: str | None) -> None:
        nonlocal count
        count += 1
        if problem is not None:
            failures.append(problem)

    strategies: dict[str, Any] = {
        "heartbeat": st.fixed_dictionaries(
            {"bearer": fuzz.bearers, "body": fuzz.bodies, "headers": fuzz.extra_headers}
        ),
        "invoke": st.fixed_dictionaries(
            {
                "method": fuzz.methods,
                "path": fuzz.paths,
                "bearer": fuzz.bearers,
                "body": fuzz.bodies,
                "headers": fuzz.extra_headers,
            }
        ),
        "events": st.fixed_dictionaries(
            {
                "bearer": fuzz.event_bearers,
                "body": fuzz.event_bodies,
                "content_type": fuzz.event_content_types,
                "headers": fuzz.extra_headers,
            }
        ),
        "allowlists": st.fixed_dictionaries(
            {"method": fuzz.methods, "bearer": fuzz.bearers, "headers": fuzz.extra_headers}
        ),
        "admission": st.fixed_dictionaries(
            {
                "obj": fuzz.admission_objects,
                "old": st.one_of(st.none(), fuzz.admission_objects),
                "operation": fuzz.operations,
                "namespace": st.one_of(st.none(), st.text(max_size=20)),
            }
        ),
        "webhook": st.fixed_dictionaries({"body": st.one_of(fuzz.review_bodies, fuzz.deep_json)}),
        "proxy": st.fixed_dictionaries({"data": fuzz_proxy.raw_inputs}),
    }

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],  # no shrinking: count every failure, keep going
    )
    @given(case=strategies[name])
    def one(case: dict[str, Any]) -> None:
        if name == "heartbeat":
            record(driver.run(fuzz.heartbeat_case(driver.client, driver.valid, **case)))
        elif name == "invoke":
            record(driver.run(fuzz.invoke_case(driver.client, driver.valid, **case)))
        elif name == "events":
            record(driver.run(fuzz.events_case(driver.client, driver.publisher, **case)))
        elif name == "allowlists":
            record(driver.run(fuzz.allowlists_case(driver.client, driver.valid, **case)))
        elif name == "webhook":
            record(driver.run(fuzz.webhook_case(driver.webhook, **case)))
        elif name == "proxy":
            assert proxy is not None
            answer = proxy.case(case["data"])
            record(answer)
        else:
            statuses["handled"] += 1
            record(driver.run(fuzz.admission_case(driver.admission, **case)))

    rss_before = rss_mib()
    if name == "proxy":
        assert proxy is not None
        original_judge = fuzz_proxy.judge

        def judging(sent: bytes, answer: bytes) -> str | None:
            status = _STATUS.match(answer)
            statuses[status.group(1).decode() if status else "none" if not answer else "?"] += 1
            return original_judge(sent, answer)

        fuzz_proxy.judge = judging
    started = time.monotonic()
    hseed(seed)(one)()
    elapsed = time.monotonic() - started
    fuzz.check_answer = original
    if name == "proxy":
        assert proxy is not None
        fuzz_proxy.judge = original_judge
        failures.extend(proxy.run(fuzz_proxy.settle(proxy.ground)))
    return {
        "entry": name,
        "cases": count,
        "failures": len(failures),
        "first": failures[:3],
        "per_s": count / elapsed if elapsed else 0.0,
        "statuses": dict(statuses.most_common(6)),
        "rss_growth": rss_mib() - rss_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(ENTRIES))
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ENTRIES))
    if unknown:
        parser.error(f"unknown entry point(s) {unknown}; choose from {', '.join(ENTRIES)}")
    driver = fuzz.Driver()
    proxy = fuzz_proxy.ProxyDriver() if "proxy" in names else None
    print(f"load average {os.getloadavg()[0]:.2f}")
    try:
        print(f"{'entry':<10} {'cases':>7} {'fail':>5} {'cases/s':>8} {'+RSS MiB':>8}  statuses")
        for name in names:
            row = run(name, args.cases, args.seed, driver, proxy)
            print(
                f"{row['entry']:<10} {row['cases']:>7} {row['failures']:>5} "
                f"{row['per_s']:>8.0f} {row['rss_growth']:>8.1f}  {row['statuses']}",
                flush=True,
            )
            for failure in row["first"]:
                print(f"    {failure}")
    finally:
        if proxy is not None:
            proxy.close()
        driver.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
