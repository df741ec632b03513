// Deployment page: requests/errors per minute and latency p50/p99 (data from the page).
(() => {
  "use strict";

  const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12, color: "#1d2433" };
  const CONFIG = { displayModeBar: false, responsive: true };

  function layout(title) {
    return {
      font: FONT,
      margin: { t: 30, r: 16, b: 36, l: 52 },
      title: { text: title, font: { size: 13 }, x: 0 },
      xaxis: { type: "date", zeroline: false },
      yaxis: { rangemode: "tozero", zeroline: false },
      legend: { orientation: "h", y: -0.2 },
      hovermode: "x unified",
    };
  }

  function drawAll() {
    const source = document.getElementById("traffic-data");
    if (!source || !window.Plotly) return;
    const series = JSON.parse(source.textContent);
    const x = series.map((s) => s.minute);
    const traffic = document.querySelector("[data-chart='traffic']");
    const latency = document.querySelector("[data-chart='latency']");
    const done = (el) => () => { el.dataset.rendered = "true"; };
    Plotly.newPlot(traffic, [
      { name: "requests/s", x, y: series.map((s) => s.rate), type: "bar", marker: { color: "#5b3df5" } },
      { name: "errors", x, y: series.map((s) => s.errors), type: "scatter", mode: "lines+markers", line: { color: "#d92d20" }, yaxis: "y2" },
    ], { ...layout("Request rate and errors per minute"), margin: { t: 30, r: 44, b: 36, l: 52 }, yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false } }, CONFIG).then(done(traffic));
    Plotly.newPlot(latency, [
      { name: "p50 (ms)", x, y: series.map((s) => s.p50_ms), type: "scatter", mode: "lines+markers", line: { color: "#5b3df5" } },
      { name: "p99 (ms)", x, y: series.map((s) => s.p99_ms), type: "scatter", mode: "lines+markers", line: { color: "#b54708", dash: "dot" } },
    ], layout("Latency in serve, per minute"), CONFIG).then(done(latency));
  }

  document.addEventListener("DOMContentLoaded", drawAll);
})();
