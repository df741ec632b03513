// Registry pages: the model page's "metrics across versions" chart (Plotly), from the page's JSON.
(function () {
  function draw() {
    const el = document.getElementById("metrics-chart");
    const script = document.getElementById("metrics-data");
    if (!el || !script || !window.Plotly) return;
    const series = JSON.parse(script.textContent);
    const traces = Object.entries(series).map(([name, s]) => ({
      type: "scatter",
      mode: "lines+markers",
      name,
      x: s.x.map((v) => "v" + v),
      y: s.y,
    }));
    const layout = {
      margin: { t: 30, r: 10, b: 40, l: 50 },
      font: { family: "system-ui, sans-serif", size: 12 },
      xaxis: { title: { text: "version" }, type: "category" },
      legend: { orientation: "h", x: 0, y: 1.15 },
      hovermode: "x unified",
    };
    Plotly.newPlot(el, traces, layout, { displaylogo: false, responsive: true });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
