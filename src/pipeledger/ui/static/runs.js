// Live updates of the runs table: while some rows are running, poll /ui/api/runs/live for
// their status, duration and step counts and update those cells. The page works without it.
"use strict";
(function () {
  const table = document.getElementById("runs");
  if (!table) return;
  const note = document.getElementById("live-note");
  const url = table.dataset.liveUrl;
  const labels = { completed: "completed", failed: "failed", running: "running", crashed: "crashed", cached: "cached" };

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    const minutes = Math.floor(seconds / 60);
    const secs = Math.floor(seconds % 60);
    if (minutes < 60) return minutes + " min " + String(secs).padStart(2, "0") + " s";
    return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }

  function running() {
    return Array.from(table.querySelectorAll("tbody tr[data-status='running']"));
  }

  function update(row, run) {
    row.dataset.status = run.status;
    const badge = row.querySelector("td.status .badge");
    if (badge) {
      badge.textContent = labels[run.status] || run.status;
      badge.className = "badge status-" + run.status;
    }
    row.querySelector("td.duration").textContent = formatDuration(run.duration);
    const steps = row.querySelector("td.steps");
    steps.textContent = run.steps_done + "/" + run.steps_total + (run.steps_cached ? " · " + run.steps_cached + " cached" : "");
  }

  async function poll() {
    const rows = running();
    if (rows.length === 0) {
      if (note) note.textContent = "";
      return;
    }
    const query = rows.map((r) => "ids=" + encodeURIComponent(r.dataset.runId)).join("&");
    try {
      const response = await fetch(url + "?" + query, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const body = await response.json();
        for (const run of body.runs) {
          const row = table.querySelector("tbody tr[data-run-id='" + CSS.escape(run.id) + "']");
          if (row) update(row, run);
        }
      }
    } catch (error) {
      if (note) note.textContent = "Live updates paused: the server did not answer.";
    }
    window.setTimeout(poll, 1500);
  }

  if (running().length > 0) window.setTimeout(poll, 1000);
})();
