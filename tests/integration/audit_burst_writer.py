"""A core stand-in for the kill-during-burst test: writes audited entries to JetStream.

``python audit_burst_writer.py URL KEYFILE START COUNT`` records entries START..START+COUNT-1
through a ChainAuditor and prints ``ACK n`` after each ``record()`` returned, i.e. after the
point where a lane would answer its caller.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from vivified.audit import AuditEntry
from vivified.audit.checkpoint import Signer
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.jetstream import JetStreamSink, StreamSettings


async def main(url: str, key: Path, start: int, count: int) -> None:
    sink = await JetStreamSink.open(StreamSettings(url=url, timeout=5.0))
    auditor = ChainAuditor(
        sink, "core-burst", signer=Signer.from_pem(key.read_bytes()), checkpoint_every=100
    )
    await auditor.start()
    for n in range(start, start + count):
        await auditor.record(
            AuditEntry(
                action="invoke",
                agent="billing",
                outcome="allowed",
                entity={"target": "user-management", "operation": "user_info", "n": str(n)},
                details={"method": "GET", "status": 200, "duration_ms": 1.5},
                audit_level="detailed",
            )
        )
        sys.stdout.write(f"ACK {n}\n")
        sys.stdout.flush()
    await auditor.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
