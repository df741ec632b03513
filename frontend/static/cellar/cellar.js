// Small behaviours shared by every page: copy buttons and Plotly charts.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  input.select();
  navigator.clipboard?.writeText(input.value);
  button.textContent = "Copied";
});

const DAY_MS = 864e5;

// A chart with data-bucket="day" has one bar per calendar day ("YYYY-MM-DD").
// Plotly cannot infer a bar's width from a single date, so without this a
// one-day series spans the whole axis with sub-millisecond ticks.
function dayAxis(days) {
  const times = days.map((d) => Date.parse(d));
  const lo = Math.min(...times);
  const hi = Math.max(...times);
  const axis = { type: "date", tickformat: "%b %-d" };
  const minSpan = 7 * DAY_MS;
  if (hi - lo < minSpan) {
    const pad = (minSpan - (hi - lo)) / 2;
    const iso = (ms) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");
    axis.range = [iso(lo - pad), iso(hi + pad)];
    axis.dtick = DAY_MS;
  }
  return axis;
}

function drawCharts() {
  if (!window.Plotly) return;
  document.querySelectorAll(".chart[data-chart]").forEach((el) => {
    const data = JSON.parse(el.dataset.chart);
    if (!data.x.length) {
      el.innerHTML = '<p class="muted">No activity in this range.</p>';
      return;
    }
    const byDay = el.dataset.bucket === "day";
    const trace = { type: "bar", x: data.x, y: data.y, marker: { color: "#5b3df5" } };
    if (byDay) trace.width = 0.8 * DAY_MS;
    const yaxis = { title: { text: "events" }, rangemode: "tozero" };
    if (Math.max(...data.y) <= 5) yaxis.dtick = 1; // counts are whole numbers
    Plotly.newPlot(el, [trace], {
      margin: { t: 10, r: 10, b: 40, l: 50 }, yaxis, xaxis: byDay ? dayAxis(data.x) : { type: "date" },
    }, { displayModeBar: false, responsive: true });
    el.dataset.rendered = "true";
  });
}
window.addEventListener("load", drawCharts);
