// Vivified Admin UI: live phase/health by short polling. Progressive enhancement only: every
// page is complete without this script; it refreshes the cells marked data-field in place.
// Polling (not server-sent events) because each poll is one ordinary, user-authorised API read
// that ends, so RBAC and session expiry apply at once, and no long-lived connection has to
// survive proxies or pin a core replica.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-poll-url");
  var seconds = parseInt(body.getAttribute("data-poll-seconds") || "0", 10);
  if (!url || !seconds || !window.fetch) { return; }

  function setField(container, field, value) {
    var nodes = container.querySelectorAll('[data-field="' + field + '"]');
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (node.textContent === value) { continue; }
      node.textContent = value;
      if (field === "phase" || field === "health") {
        node.className = field + " " + field + "-" + value;
      }
    }
  }

  function apply(plugins) {
    var rows = document.querySelectorAll("[data-key]");
    var reload = false;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var state = plugins[row.getAttribute("data-key")];
      if (!state) { continue; }
      setField(row, "phase", state.phase);
      setField(row, "health", state.health);
      setField(row, "ready", state.ready);
      setField(row, "failures", state.failures ? "(" + state.failures + " failed)" : "");
      setField(row, "lastError", state.lastError || "");
      var shown = row.querySelector('[data-field="enabled"]');
      if (shown && shown.textContent !== (state.enabled ? "yes" : "no")) { reload = true; }
    }
    // Someone else enabled or disabled a plugin: the buttons' forms are stale, reload them.
    if (reload) { window.location.reload(); }
  }

  function poll() {
    if (document.visibilityState === "hidden") { return; }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { window.location.assign("/ui/login?reason=expired"); }
        return response.ok ? response.json() : null;
      })
      .then(function (data) { if (data && data.plugins) { apply(data.plugins); } })
      .catch(function () { /* the next poll tries again */ });
  }

  window.setInterval(poll, seconds * 1000);
})();
