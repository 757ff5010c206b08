// weir UI: keeps pages current without a reload (re-fetches the page and swaps the sections
// marked data-refresh), streams a running attempt's log, and small conveniences. Plain JS.
// The Content-Security-Policy allows no inline style: bar widths and offsets arrive as
// data-width / data-left (percent) and are applied here through the CSSOM.
(function () {
  "use strict";
  var body = document.body;
  var timer = null;

  // A notice shown once after a form post should not come back on reload.
  var url = new URL(window.location.href);
  if (url.searchParams.has("notice")) {
    url.searchParams.delete("notice");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }

  function applyGeometry(root) {
    root.querySelectorAll("[data-width], [data-left]").forEach(function (element) {
      var width = parseFloat(element.dataset.width);
      var left = parseFloat(element.dataset.left);
      if (isFinite(width)) element.style.width = width + "%";
      if (isFinite(left)) element.style.left = left + "%";
    });
  }
  applyGeometry(document);

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, body.dataset.live === "true" ? 2000 : 10000);
  }

  function refresh() {
    if (document.hidden) { schedule(); return; }
    fetch(window.location.href, { headers: { "X-Weir-Refresh": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-refresh]").forEach(function (section) {
          var replacement = fresh.getElementById(section.id);
          if (!replacement || replacement.innerHTML === section.innerHTML) return;
          // Do not pull the rug from under a keyboard user.
          if (section.contains(document.activeElement) && document.activeElement !== document.body) return;
          section.innerHTML = replacement.innerHTML;
          applyGeometry(section);
        });
        body.dataset.live = fresh.body.dataset.live || "false";
      })
      .catch(function () {})
      .then(schedule);
  }

  if (document.querySelector("[data-refresh]")) schedule();
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  // Graph nodes open the task instance of the shown run.
  document.addEventListener("click", function (event) {
    var node = event.target.closest && event.target.closest(".graph g.node[data-task-id]");
    if (!node) return;
    var graph = node.closest(".graph");
    if (graph && graph.dataset.taskBase) window.location.href = graph.dataset.taskBase + encodeURIComponent(node.dataset.taskId);
  });

  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Live log: the page holds the file up to the stream's start; new lines arrive as events.
  var log = document.getElementById("log");
  if (log && log.dataset.stream && window.EventSource) {
    var live = document.getElementById("log-live");
    var stick = true;
    log.scrollTop = log.scrollHeight;
    log.addEventListener("scroll", function () {
      stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
    });
    var source = new EventSource(log.dataset.stream);
    source.addEventListener("log", function (event) {
      var data = JSON.parse(event.data);
      log.appendChild(document.createTextNode(data.text));
      if (stick) log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("end", function () {
      source.close();
      if (live) { live.textContent = "ended"; live.classList.add("ended"); }
      log.dataset.ended = "true";
      refresh();
    });
  } else if (log) {
    log.scrollTop = log.scrollHeight;
  }
})();
