// newsbot desk: refresh the queue table every 5 s (the page works without this script).
"use strict";
(function () {
  var rows = document.getElementById("queue-rows");
  if (!rows || !window.fetch) { return; }
  var url = rows.getAttribute("data-refresh");
  function refresh() {
    if (document.hidden) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { rows.innerHTML = html; } })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  setInterval(refresh, 5000);
})();
