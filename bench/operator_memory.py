"""Where the operator's memory goes at N plugins: its own caches on the in-memory fake cluster.

    python bench/operator_memory.py [--plugins 1000] [--top 15]

The real bench (``operator_scale.py``) measures the process on a real API server, kopf included;
this one runs the same shell (index, informer cache, reconciler, identity, queue) against
``tests/fake_cluster.py`` under tracemalloc, and prints the bytes held per plugin once all N are
Active, by source line. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from tests.fake_operator import NAMESPACE, FakeOperator, plugin_body  # noqa: E402


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=1000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    operator = FakeOperator()
    await operator.start()
    gc.collect()
    rss_before = rss_kib()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    for i in range(args.plugins):
        operator.create(plugin_body(f"p{i}"))
    await operator.settle()
    for i in range(args.plugins):
        operator.cluster.make_available(NAMESPACE, f"p{i}")
    await operator.settle()
    active = sum(
        1 for o in operator.cluster.of_kind("VivifiedPlugin") if o["status"]["phase"] == "Active"
    )
    # The fake cluster's own store is not the operator's: drop it before measuring.
    operator.cluster.objects.clear()
    operator.cluster.log.clear()
    gc.collect()
    after = tracemalloc.take_snapshot()
    stats = after.compare_to(before, "lineno")
    held = sum(s.size_diff for s in stats)
    top = [
        {
            "where": f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno}",
            "bytes_per_plugin": round(s.size_diff / args.plugins),
        }
        for s in stats[: args.top]
    ]
    await operator.stop()
    print(
        json.dumps(
            {
                "plugins": args.plugins,
                "active": active,
                "held_bytes_per_plugin": round(held / args.plugins),
                "held_mib": round(held / 2**20, 1),
                "rss_growth_mib": round((rss_kib() - rss_before) / 1024, 1),
                "top": top,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
