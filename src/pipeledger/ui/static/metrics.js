// The metric chart's interactions: the value under the pointer (or the focused point) is shown in
// a read-out line, and the series checkboxes hide or show panels without a reload (their form
// still works without this script: it reloads the page with the chosen metrics).
"use strict";
(function () {
  var chart = document.querySelector("svg.metric-chart");
  var readout = document.getElementById("metric-readout");
  if (chart === null) return;

  function show(point) {
    if (readout === null) return;
    readout.textContent = point.getAttribute("data-run") + ": " + point.getAttribute("data-series") +
      " = " + point.getAttribute("data-value") + (point.classList.contains("failed") ? " (failed run)" : "");
  }

  chart.querySelectorAll(".point").forEach(function (point) {
    point.setAttribute("tabindex", "0");
    point.addEventListener("mouseenter", function () { show(point); point.classList.add("hover"); });
    point.addEventListener("mouseleave", function () { point.classList.remove("hover"); });
    point.addEventListener("focus", function () { show(point); });
  });

  document.querySelectorAll("input.series-toggle").forEach(function (box) {
    box.addEventListener("change", function () {
      chart.querySelectorAll("g.series").forEach(function (group) {
        if (group.getAttribute("data-series") === box.value) {
          group.classList.toggle("hidden", !box.checked);
        }
      });
    });
  });
  var apply = document.getElementById("series-apply");
  if (apply !== null) apply.classList.add("with-script");
})();
