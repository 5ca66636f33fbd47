"""The Vivified core (``vivified core``): the data plane every plugin talks to.

This subpackage is I/O: HTTP servers, the API-server watch that feeds the plugin directory,
NATS clients, audit sinks. Every decision it enforces is a pure function elsewhere in
``vivified`` (``vivified.policy``, ``vivified.audit``, ``vivified.tokens``); modules here fetch,
ask, and act.
"""
