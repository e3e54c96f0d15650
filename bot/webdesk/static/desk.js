// newsbot desk: refresh every live part of a page (an element with data-refresh="URL" is
// replaced by that URL's fragment) every 5 s. The pages work without this script.
"use strict";
(function () {
  if (!window.fetch) { return; }
  var parts = document.querySelectorAll("[data-refresh]");
  if (!parts.length) { return; }
  function refresh(part) {
    fetch(part.getAttribute("data-refresh"), {
      credentials: "same-origin", headers: { "Accept": "text/html" }
    })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { part.innerHTML = html; } })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  setInterval(function () {
    if (document.hidden) { return; }
    // Not while an editor types in a form inside the part: the refresh would wipe it.
    var active = document.activeElement;
    Array.prototype.forEach.call(parts, function (part) {
      if (!(active && part.contains(active) && active.form)) { refresh(part); }
    });
  }, 5000);
})();
