"""The Vivified core (``vivified core``): the data plane every plugin talks to.

This subpackage is I/O: HTTP servers, the API-server watch that feeds the plugin directory,
NATS clients, audit sinks. Every decision it enforces is a pure function elsewhere in
``vivified`` (``vivified.policy``, ``vivified.audit``, ``vivified.tokens``); modules here fetch,
ask, and act.

Modules (issue 16): ``settings`` (``VIVIFIED_CORE_*``), ``context`` (``CoreContext``, shared by
every lane), ``app`` (``build_app``), ``auth`` (plugin-token checks on every request),
``problem`` (problem+json), ``metrics``, ``probes`` (healthz/readyz/metrics), ``plugin_api``
(heartbeat, JWKS, revocations, plugin list), ``gateway`` + ``forward`` (the operator lane),
``trust`` (JWKS, revocations, the core's call-token key), ``records`` + ``watch`` (the
watch-fed :class:`~vivified.dataplane.directory.PluginDirectory`), ``heartbeats`` (Leases),
``logsafe`` (no credential in any log line), ``server`` (run it).

How a lane mounts itself (issues 9, 10, 11, 12)
-----------------------------------------------
A lane module exposes one function::

    def setup(app: web.Application, ctx: CoreContext) -> None:
        app.router.add_post("/v1/events", handler)          # routes on the main app, or
        app.add_subapp("/ui/", ui_app)                       # a sub-app with its own middlewares
        app.on_startup.append(start_consumers)               # and lifecycle hooks
        app.on_cleanup.append(stop_consumers)

and :func:`vivified.dataplane.app.build_app` calls it: ``build_app(ctx, lanes=(events.setup,))``
(``server.serve(..., lanes=...)`` in production). Inside handlers,
``ctx = request.app[CONTEXT]`` (``vivified.dataplane.context.CONTEXT``; in a sub-app use
``request.config_dict[CONTEXT]``). A lane:

* authenticates with ``ctx.authenticator.authenticate(request.headers)`` → ``Caller`` or
  ``AuthFailure(status, reason, detail)`` (``plugin_api.authenticated`` wraps it into a
  problem response);
* reads plugins only through ``ctx.directory`` (``PluginRecord``);
* answers refusals with ``vivified.dataplane.problem.problem(status, reason, detail)``;
* records each decision exactly once with ``await ctx.auditor.record(AuditEntry(...))`` and
  counts it in ``ctx.metrics.decisions.inc(lane, outcome, reason)`` (``ctx.metrics.counter``
  / ``histogram`` add lane-specific metrics);
* listens on another port (the proxy's 3128) with its own ``web.AppRunner``/server started
  from an ``on_startup`` hook, sharing ``ctx``.

Tests build a context from fakes: ``CoreContext(settings=CoreSettings(), directory=
StaticDirectory([...]), trust=TrustState(CoreKey(generate_signing_key(now))), auditor=
MemoryAuditor())``, then ``trust.set_jwks(...)``/``trust.set_revocations(...)`` and serve
``build_app(ctx, lanes)`` with aiohttp's test client (see ``tests/unit/core_fakes.py``).
"""
