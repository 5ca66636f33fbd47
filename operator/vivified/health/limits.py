"""Limits on what plugins send us, and the names every part of health shares."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from vivified.status import Health

if TYPE_CHECKING:
    pass


HEALTH_ENDPOINT_NAME = "health"

#: A probe response or heartbeat body larger than this is not parsed.
MAX_BODY_BYTES = 64 * 1024
#: At most this many metrics are kept (the first ones by key order).
MAX_METRICS = 16
MAX_METRIC_KEY_LENGTH = 64
MAX_METRIC_STRING_LENGTH = 128
#: Nested objects are flattened to ``outer.inner`` keys down to this depth.
MAX_METRIC_DEPTH = 2
#: Integers beyond this magnitude lose precision in JSON consumers; they are dropped.
MAX_METRIC_INT = 2**53
#: Heartbeat messages and probe errors are cut to this length.
MAX_MESSAGE_LENGTH = 256
#: A status write that only refreshes ``lastProbeTime``/``lastHeartbeatTime`` waits this many
#: times ``health_status_refresh_seconds`` (5 minutes by default).
TIMESTAMP_REFRESH_FACTOR = 5

MetricValue = int | float | str

_METRIC_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_PATH_CHARS = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*(\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$")
_SEVERITY = {Health.HEALTHY: 1, Health.DEGRADED: 2, Health.UNHEALTHY: 3}
