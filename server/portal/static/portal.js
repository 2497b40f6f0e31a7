// Progressive enhancement only: every page works without this file.
// An element with an id and data-poll="URL" is replaced, every data-every seconds, by the element
// with the same id in the page the server draws at URL (same origin); polling stops when the fresh
// element has no data-poll (a finished job).
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
