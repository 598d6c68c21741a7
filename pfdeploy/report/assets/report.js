/* pfdeploy report: client-side filters of the History page. Reads the case index from the
   JSON in <script id="pfdeploy-data"> and only ever sets textContent / hidden (never HTML), so
   values from the store cannot inject markup. Filter state is kept in the URL fragment
   (history.html#model=pf_resnet50_max&backend=openvino) so a view can be linked. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function readHash() {
    var out = {};
    var h = window.location.hash.replace(/^#/, "");
    if (!h) { return out; }
    h.split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i > 0) {
        try { out[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1)); } catch (e) { /* ignore a malformed fragment */ }
      }
    });
    return out;
  }

  ready(function () {
    var dataEl = document.getElementById("pfdeploy-data");
    var form = document.getElementById("filters");
    if (!dataEl || !form) { return; }
    var data = JSON.parse(dataEl.textContent);
    var keys = data.filters;
    var selects = {};
    var initial = readHash();
    var count = document.getElementById("filter-count");

    keys.forEach(function (k) {
      var sel = form.querySelector('select[data-filter="' + k + '"]');
      if (!sel) { return; }
      var seen = {};
      data.cases.forEach(function (c) { seen[String(c[k])] = true; });
      Object.keys(seen).sort().forEach(function (v) {
        var opt = document.createElement("option");
        opt.value = v;
        opt.textContent = v;
        sel.appendChild(opt);
      });
      if (initial[k] !== undefined && seen[initial[k]]) { sel.value = initial[k]; }
      sel.addEventListener("change", apply);
      selects[k] = sel;
    });

    function apply() {
      var shown = 0;
      var state = [];
      keys.forEach(function (k) {
        if (selects[k] && selects[k].value) { state.push(encodeURIComponent(k) + "=" + encodeURIComponent(selects[k].value)); }
      });
      data.cases.forEach(function (c) {
        var el = document.getElementById(c.id);
        if (!el) { return; }
        var ok = keys.every(function (k) { return !selects[k] || !selects[k].value || selects[k].value === String(c[k]); });
        el.hidden = !ok;
        if (ok) { shown += 1; }
      });
      if (count) { count.textContent = shown + " of " + data.cases.length + " cases shown"; }
      try {
        window.history.replaceState(null, "", state.length ? "#" + state.join("&") : window.location.pathname);
      } catch (e) { /* some browsers refuse history updates on file:// pages; filtering still works */ }
    }

    form.addEventListener("reset", function () { window.setTimeout(apply, 0); });
    form.hidden = false;
    apply();
  });
})();
