// Small behaviours shared by every page: copy buttons and Plotly charts.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  input.select();
  navigator.clipboard?.writeText(input.value);
  button.textContent = "Copied";
});

function drawCharts() {
  if (!window.Plotly) return;
  document.querySelectorAll(".chart[data-chart]").forEach((el) => {
    const data = JSON.parse(el.dataset.chart);
    if (!data.x.length) {
      el.innerHTML = '<p class="muted">No activity in this range.</p>';
      return;
    }
    Plotly.newPlot(el, [{ type: "bar", x: data.x, y: data.y, marker: { color: "#5b3df5" } }], {
      margin: { t: 10, r: 10, b: 40, l: 40 }, yaxis: { title: "events", rangemode: "tozero" }, xaxis: { type: "date" },
    }, { displayModeBar: false, responsive: true });
    el.dataset.rendered = "true";
  });
}
window.addEventListener("load", drawCharts);
