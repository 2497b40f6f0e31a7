// Progressive enhancement only: every page works without this file.
// Elements with data-poll="URL" are refreshed from that URL (same origin, a JSON fragment
// {"html": "..."} is NOT used: the server answers a partial page) every data-every seconds.
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = Math.max(1, parseInt(el.getAttribute("data-every") || "2", 10)) * 1000;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (text === null) { return; }
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById(el.id);
          if (fresh) { el.replaceWith(fresh); el = fresh; }
          if (el.getAttribute("data-poll")) { setTimeout(tick, every); }
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("input[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        document.querySelectorAll("input[name='" + box.getAttribute("data-select-all") + "']").forEach(function (b) { b.checked = box.checked; });
      });
    });
  });
})();
