"""Fuzz bench: the long variant of tests/unit/test_chaos_fuzz.py.

    python bench/fuzz.py [--cases 10000] [--seed 0] [--only heartbeat,invoke,admission]

For each entry point (the core's heartbeat and invoke through the real aiohttp app on a
``tests.unit.core_fakes.World``; the admission webhook's registered kopf handler), draws
``--cases`` inputs from the strategies of tests/chaos/fuzz.py with hypothesis and checks each
answer: never a 500, never a traceback, JSON when it says JSON (the webhook: allow or
``AdmissionError``, nothing else). Prints cases, failures (first three shown), cases/s, and
the status codes seen, and the peak RSS of this process (bounded memory). Not a test.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import seed as hseed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tests.chaos import fuzz  # noqa: E402


def run(name: str, cases: int, seed: int, driver: fuzz.Driver) -> dict[str, Any]:
    failures: list[str] = []
    count = 0
    statuses: Counter[str] = Counter()
    original = fuzz.check_answer

    async def counting(response: Any) -> str | None:
        statuses[str(response.status)] += 1
        return await original(response)

    fuzz.check_answer = counting  # type: ignore[assignment]

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
        "admission": st.fixed_dictionaries(
            {
                "obj": fuzz.admission_objects,
                "old": st.one_of(st.none(), fuzz.admission_objects),
                "operation": fuzz.operations,
                "namespace": st.one_of(st.none(), st.text(max_size=20)),
            }
        ),
    }

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=["generate"],  # no shrinking: count every failure, keep going
    )
    @given(case=strategies[name])
    def one(case: dict[str, Any]) -> None:
        if name == "heartbeat":
            record(driver.run(fuzz.heartbeat_case(driver.client, driver.valid, **case)))
        elif name == "invoke":
            record(driver.run(fuzz.invoke_case(driver.client, driver.valid, **case)))
        else:
            statuses["handled"] += 1
            record(driver.run(fuzz.admission_case(driver.admission, **case)))

    started = time.monotonic()
    hseed(seed)(one)()
    elapsed = time.monotonic() - started
    fuzz.check_answer = original  # type: ignore[assignment]
    return {
        "entry": name,
        "cases": count,
        "failures": len(failures),
        "first": failures[:3],
        "per_s": count / elapsed if elapsed else 0.0,
        "statuses": dict(statuses.most_common(6)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="heartbeat,invoke,admission")
    args = parser.parse_args()
    driver = fuzz.Driver()
    try:
        print(f"{'entry':<10} {'cases':>7} {'fail':>5} {'cases/s':>8}  statuses")
        for name in args.only.split(","):
            row = run(name, args.cases, args.seed, driver)
            print(
                f"{row['entry']:<10} {row['cases']:>7} {row['failures']:>5} "
                f"{row['per_s']:>8.0f}  {row['statuses']}",
                flush=True,
            )
            for failure in row["first"]:
                print(f"    {failure}")
    finally:
        driver.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
