"""The Admin UI: VivifiedPlugins, their health and traits, and Enable/Disable, in a browser.

Mount it on the core's HTTP port::

    from vivified.dataplane.ui import create_ui_app, from_kubeconfig, in_cluster
    app.add_subapp("/ui", create_ui_app(in_cluster(), auditor=auditor))

``create_ui_app(config, auditor=None, audit_reader=None) -> web.Application``:

- ``config`` (:class:`UIConfig`): the API server's URL and CA, the 32-byte session key (shared
  by all replicas), session lifetime, poll interval;
- ``auditor`` (:class:`vivified.audit.hook.Auditor`): receives ``ui.enable`` / ``ui.disable``
  entries with ``agent="user:<kubernetes username>"``;
- ``audit_reader`` (:class:`AuditReader`): recent audit records for the detail page (the seam for
  issue 11's store; without one the page says the records are not available here).

Security model: the UI has no Kubernetes rights of its own. A user signs in with a Kubernetes
bearer token, which the API server identifies (SelfSubjectReview, as the user); every read and
every Enable/Disable is then a request to the API server *with that token*, so RBAC decides and
the API server's audit log names the user. The token lives only in an AES-256-GCM sealed,
HttpOnly, Secure, SameSite=Strict cookie that expires (30 minutes by default); nothing is
stored server-side. Live updates are short polling (``static/ui.js``), see docs/ui.md.

Standalone (development and the browser tests): ``python -m vivified.dataplane.ui --kubeconfig
PATH --port 8080``.
"""

from vivified.dataplane.ui.app import create_ui_app
from vivified.dataplane.ui.audit_seam import AuditReader
from vivified.dataplane.ui.config import Options, UIConfig, from_kubeconfig, in_cluster

__all__ = ["AuditReader", "Options", "UIConfig", "create_ui_app", "from_kubeconfig", "in_cluster"]
