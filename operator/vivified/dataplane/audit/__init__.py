"""Where audit records are stored: the chained auditor the lanes call, and its sinks.

:class:`~vivified.dataplane.audit.auditor.ChainAuditor` implements the
:class:`~vivified.audit.hook.Auditor` seam over a :class:`~vivified.dataplane.audit.sink.Sink`
(a local file for development, a JetStream stream in a cluster).
"""
