// Compute page: one chart per pool, workers vs demand over the last hour (data from the page).
(() => {
  "use strict";

  const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12, color: "#1d2433" };

  function draw(el) {
    const data = JSON.parse(el.nextElementSibling.textContent);
    const traces = [
      { name: "demand (tasks)", x: data.at, y: data.demand, type: "scatter", mode: "lines", line: { color: "#b54708", width: 1.8, shape: "hv" }, yaxis: "y2" },
      { name: "running", x: data.at, y: data.running, type: "scatter", mode: "lines", line: { color: "#98a2b3", width: 1.2, dash: "dot", shape: "hv" }, yaxis: "y2" },
      { name: "workers", x: data.at, y: data.workers, type: "scatter", mode: "lines+markers", line: { color: "#5b3df5", width: 2.2, shape: "hv" }, marker: { size: 4 } },
    ];
    const layout = {
      font: FONT,
      margin: { t: 8, r: 56, b: 36, l: 48 },
      xaxis: { type: "date", range: [data.since, data.until], zeroline: false },
      yaxis: { title: { text: "workers" }, range: [0, 1.1 * Math.max(1, ...data.workers)], dtick: 1, zeroline: false },
      yaxis2: { title: { text: "tasks" }, overlaying: "y", side: "right", range: [0, 1.1 * Math.max(1, ...data.demand)], zeroline: false },
      legend: { orientation: "h", y: 1.12 },
      hovermode: "x unified",
    };
    return Plotly.newPlot(el, traces, layout, { displayModeBar: false, responsive: true }).then(() => {
      el.dataset.rendered = "true";
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!window.Plotly) return;
    document.querySelectorAll("[data-chart='scaling']").forEach(draw);
  });
})();
