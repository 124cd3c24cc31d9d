// The report's filters and fold buttons; live refresh under `llm-audit ui`. Reads only data-*
// attributes and form values (no recorded string is ever turned into markup here).
(function () {
  "use strict";
  var FIELDS = ["q", "status", "user", "model", "node", "since", "until", "mincost"];
  function el(name) { return document.getElementById("lat-" + name); }
  function value(name) { var e = el(name); return e ? e.value.trim() : ""; }

  function matches(row) {
    var d = row.dataset, q = value("q").toLowerCase(), status = value("status");
    if (q && d.text.indexOf(q) < 0 && d.thread.toLowerCase().indexOf(q) < 0) return false;
    if (status === "errors" ? d.errors !== "1" : status && d.status !== status) return false;
    if (value("user") && d.user !== value("user")) return false;
    if (value("model") && (", " + d.models + ", ").indexOf(", " + value("model") + ", ") < 0) return false;
    if (value("node") && (" " + d.nodes + " ").indexOf(" " + value("node") + " ") < 0) return false;
    if (value("since") && d.start.slice(0, 16) < value("since").slice(0, 16)) return false;
    if (value("until") && d.start.slice(0, 16) >= value("until").slice(0, 16)) return false;
    var min = parseFloat(value("mincost"));
    if (!isNaN(min) && (d.cost === "" || parseFloat(d.cost) < min)) return false;
    return true;
  }

  function apply() {
    var shown = 0;
    document.querySelectorAll("tbody.lat-thread").forEach(function (group) {
      var visible = 0;
      group.querySelectorAll("tr.lat-tr").forEach(function (row) {
        var ok = matches(row);
        row.hidden = !ok;
        if (ok) visible += 1;
      });
      group.hidden = visible === 0;
      shown += visible;
    });
    var count = el("count");
    if (count) count.textContent = String(shown);
    try {
      var saved = {};
      FIELDS.forEach(function (f) { saved[f] = value(f); });
      sessionStorage.setItem("lat-filters", JSON.stringify(saved));
    } catch (e) { /* storage may be disabled for file:// pages */ }
  }

  function restore() {
    try {
      var saved = JSON.parse(sessionStorage.getItem("lat-filters") || "{}");
      FIELDS.forEach(function (f) { if (el(f) && saved[f]) el(f).value = saved[f]; });
    } catch (e) { /* nothing saved */ }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-lat-fold]") : null;
    if (!button) return;
    var open = button.getAttribute("data-lat-fold") === "open";
    var scope = button.closest(".lat-page") || document;
    scope.querySelectorAll("details").forEach(function (d) { d.open = open; });
  });

  FIELDS.forEach(function (f) {
    var e = el(f);
    if (e) { e.addEventListener("input", apply); e.addEventListener("change", apply); }
  });
  restore();
  apply();

  var live = document.body.getAttribute("data-live-version");
  if (live !== null) {
    setInterval(function () {
      fetch("version", { cache: "no-store" }).then(function (r) { return r.text(); })
        .then(function (version) { if (version.trim() !== live) location.reload(); })
        .catch(function () { /* the server stopped: keep the page as it is */ });
    }, 2000);
  }
})();
