// Live updates of a run's page while it runs: poll /ui/api/runs/{id}/live for the status, the
// progress, the steps and the tail of the latest logs; when a step's status changes, swap in the
// redrawn graph and timeline (/ui/api/runs/{id}/figures). The page works without it.
"use strict";
(function () {
  const root = document.getElementById("run");
  if (!root || root.dataset.status !== "running") return;
  const note = document.getElementById("live-status");
  // What the server drew the page with, in the form poll() compares: "step-id:status,...|run-status".
  let signature = Array.from(document.querySelectorAll("#steps tbody tr[data-step-id]"))
    .map((row) => row.dataset.stepId + ":" + row.querySelector("td.status .badge").textContent.trim())
    .join(",") + "|" + root.dataset.status;

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

  function badge(status) {
    const span = document.createElement("span");
    span.className = "badge status-" + status.replace(/ /g, "-");
    span.textContent = status;
    return span;
  }

  function stepRow(step) {
    const row = document.createElement("tr");
    row.dataset.stepId = step.id;
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = "/ui/steps/" + encodeURIComponent(step.id);
    link.textContent = step.name;
    name.appendChild(link);
    const status = document.createElement("td");
    status.className = "status";
    status.appendChild(badge(step.status));
    const cache = document.createElement("td");
    cache.textContent = step.status === "cached" ? "cached" : "";
    const started = document.createElement("td");
    const duration = document.createElement("td");
    duration.className = "num duration";
    duration.textContent = formatDuration(step.duration);
    row.append(name, status, cache, started, duration);
    return row;
  }

  function updateSteps(steps) {
    const body = document.querySelector("#steps tbody");
    if (!body) return;
    for (const step of steps) {
      let row = body.querySelector("tr[data-step-id='" + CSS.escape(step.id) + "']");
      if (!row) {
        const empty = body.querySelector("td.empty");
        if (empty) empty.parentElement.remove();
        body.appendChild(stepRow(step));
        continue;
      }
      const cell = row.querySelector("td.status");
      cell.replaceChildren(badge(step.status));
      row.querySelector("td.duration").textContent = formatDuration(step.duration);
    }
  }

  async function refreshFigures() {
    const response = await fetch(root.dataset.figuresUrl);
    if (!response.ok) return;
    const holder = document.getElementById("figures");
    // Server-rendered HTML of our own (every name escaped on the server).
    holder.innerHTML = await response.text();
  }

  async function poll() {
    let state;
    try {
      const response = await fetch(root.dataset.liveUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(String(response.status));
      state = await response.json();
    } catch (error) {
      if (note) note.textContent = "Live updates paused: the server did not answer.";
      window.setTimeout(poll, 3000);
      return;
    }
    root.dataset.status = state.status;
    const heading = document.querySelector("h1 .badge");
    if (heading) heading.replaceWith(badge(state.status));
    document.getElementById("run-duration").textContent = formatDuration(state.duration);
    const progress = document.getElementById("run-progress");
    progress.max = Math.max(state.steps_total, 1);
    progress.value = state.steps_done;
    document.getElementById("run-progress-text").textContent = state.steps_done + "/" + state.steps_total + " done";
    updateSteps(state.steps);
    if (state.log_tail !== null) {
      const tail = document.getElementById("log-tail");
      tail.hidden = false;
      tail.textContent = state.log_tail;
      const none = document.getElementById("log-step-none");
      if (none) none.textContent = "The end of the logs of step " + state.log_step + ".";
    }
    const now = state.steps.map((s) => s.id + ":" + s.status).join(",") + "|" + state.status;
    if (now !== signature) {
      signature = now;
      await refreshFigures();
    }
    if (state.status === "running") {
      window.setTimeout(poll, 1500);
    } else if (note) {
      note.textContent = "The run ended: " + state.status + ".";
    }
  }

  window.setTimeout(poll, 1000);
})();
