// Tracking dashboards: metric charts, compare plots, run selection, pickers.
// Data arrives from the server already downsampled; this file only draws it.
(() => {
  "use strict";

  const PLOT_CONFIG = { displayModeBar: false, responsive: true };
  const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12, color: "#1d2433" };

  const FEW_POINTS = 20;
  const PARALLEL_AXES = 8; // parameters and the metric: more and their labels cannot be read in a card
  const LABEL_CHARS = 14;

  function shorten(text) {
    const s = String(text);
    return s.length > LABEL_CHARS ? `${s.slice(0, LABEL_CHARS - 1)}…` : s;
  }

  function markRendered(el) {
    el.dataset.rendered = "true";
  }

  // --- metric history: one chart per metric, one curve per run ------------------------------------------
  function drawLines(el) {
    const data = JSON.parse(el.nextElementSibling.textContent);
    const many = data.traces.length > 12;
    // A curve of one step (a final score logged once, or twice at step 0) would be an invisible
    // zero-length line: draw it as a point; a short curve gets markers on its line.
    const mode = (t) => (new Set(t.x).size === 1 ? "markers" : t.x.length <= FEW_POINTS ? "lines+markers" : "lines");
    const traces = data.traces.map((t) => ({
      type: "scatter",
      mode: mode(t),
      x: t.x,
      y: t.y,
      name: t.name,
      line: { color: t.color, width: many ? 1 : 1.8 },
      marker: { color: t.color, size: 6 },
      opacity: many ? 0.75 : 1,
      hovertemplate: `${escapeHtml(t.name)}<br>step %{x}<br>%{y}<extra></extra>`,
    }));
    const layout = {
      font: FONT,
      margin: { t: 8, r: 12, b: 40, l: 56 },
      xaxis: { title: { text: "step" }, zeroline: false },
      yaxis: { zeroline: false, automargin: true },
      // The page names each run's colour once; per-chart legends would crowd the plots.
      showlegend: false,
      hovermode: many ? "closest" : "x unified",
    };
    return Plotly.newPlot(el, traces, layout, PLOT_CONFIG);
  }

  // --- compare: parallel coordinates and scatter from the page's data -----------------------------------
  function compareData() {
    const script = document.getElementById("compare-data");
    return script ? JSON.parse(script.textContent) : null;
  }

  function control(name) {
    return document.querySelector(`[data-plot-control="${name}"]`);
  }

  function isNumber(v) {
    return typeof v === "number" && Number.isFinite(v);
  }

  function distinct(values) {
    return [...new Set(values.map((v) => (v === null ? "—" : String(v))))];
  }

  // A parameter axis: numeric when every run has a number, else one tick per distinct value.
  function dimension(label, values) {
    if (values.every(isNumber)) return { label: shorten(label), values };
    const text = values.map((v) => (v === null ? "—" : String(v)));
    const ticks = distinct(values).sort();
    return {
      label: shorten(label),
      values: text.map((v) => ticks.indexOf(v)),
      tickvals: ticks.map((_, i) => i),
      ticktext: ticks.map(shorten),
    };
  }

  function drawParallel(el) {
    const data = compareData();
    const metric = control("color").value;
    const metricValues = data.metrics[metric] || [];
    const keep = metricValues.map((v, i) => (isNumber(v) ? i : -1)).filter((i) => i >= 0);
    if (!keep.length) {
      el.innerHTML = `<p class="muted">No run has a numeric value for ${escapeHtml(metric)}.</p>`;
      markRendered(el);
      return null;
    }
    const pick = (values) => keep.map((i) => values[i]);
    // Parameters that vary come first; only the first few get an axis (the table below lists them all).
    const keys = Object.keys(data.params).sort((a, b) => {
      const va = distinct(pick(data.params[a])).length > 1 ? 0 : 1;
      const vb = distinct(pick(data.params[b])).length > 1 ? 0 : 1;
      return va - vb || a.localeCompare(b);
    });
    // A parameter every run shares draws a flat axis that says nothing: leave those out once two vary.
    const varying = keys.filter((k) => distinct(pick(data.params[k])).length > 1);
    const shown = varying.length >= 2 ? varying : keys;
    const dims = shown.slice(0, PARALLEL_AXES - 1).map((k) => dimension(k, pick(data.params[k])));
    const colors = pick(metricValues);
    dims.push({ label: shorten(metric), values: colors });
    const trace = {
      type: "parcoords",
      // The last axis is the metric itself, so the colour needs no separate scale.
      line: { color: colors, colorscale: "Viridis", showscale: false },
      dimensions: dims,
      // Slanted names do not run into each other when the axes stand close together.
      labelangle: dims.length > 4 ? -30 : 0,
      labelfont: { ...FONT, size: 11 },
      tickfont: { ...FONT, size: 10 },
    };
    const layout = { font: FONT, margin: { t: dims.length > 4 ? 84 : 40, r: 50, b: 20, l: 90 } };
    return Plotly.newPlot(el, [trace], layout, PLOT_CONFIG);
  }

  function drawScatter(el) {
    const data = compareData();
    const xKey = control("x").value;
    const yKey = control("y").value;
    const [kind, ...rest] = xKey.split(".");
    const xName = rest.join(".");
    const xs = (kind === "params" ? data.params[xName] : data.metrics[xName]) || [];
    const ys = data.metrics[yKey] || [];
    const numeric = xs.every((v) => v === null || isNumber(v));
    const points = data.runs
      .map((run, i) => ({ run, x: xs[i], y: ys[i] }))
      .filter((p) => p.x !== null && p.x !== undefined && isNumber(p.y));
    const trace = {
      type: "scatter",
      mode: "markers",
      x: points.map((p) => (numeric ? p.x : String(p.x))),
      y: points.map((p) => p.y),
      text: points.map((p) => p.run.name),
      marker: { color: points.map((p) => p.run.color), size: 10, line: { color: "#fff", width: 1 } },
      hovertemplate: `%{text}<br>${escapeHtml(xName)} %{x}<br>${escapeHtml(yKey)} %{y}<extra></extra>`,
    };
    const layout = {
      font: FONT,
      margin: { t: 10, r: 12, b: 48, l: 60 },
      xaxis: { title: { text: xName }, type: numeric ? "-" : "category", zeroline: false },
      yaxis: { title: { text: yKey }, zeroline: false },
    };
    return Plotly.newPlot(el, [trace], layout, PLOT_CONFIG);
  }

  const DRAW = { lines: drawLines, parallel: drawParallel, scatter: drawScatter };

  function drawAll(root = document) {
    if (!window.Plotly) return;
    root.querySelectorAll(".tchart[data-plot]:not([data-rendered])").forEach((el) => {
      const drawn = DRAW[el.dataset.plot](el);
      if (drawn && drawn.then) drawn.then(() => markRendered(el));
    });
  }

  function redraw(el) {
    if (!el || !window.Plotly) return;
    delete el.dataset.rendered;
    Plotly.purge(el);
    drawAll();
  }

  // The selects persist in the URL, so a reload or a shared link shows the same plots.
  document.addEventListener("change", (event) => {
    const select = event.target.closest("[data-plot-control]");
    if (!select) return;
    const url = new URL(window.location.href);
    url.searchParams.set(select.name, select.value);
    history.replaceState(history.state, "", url);
    redraw(document.getElementById(select.dataset.plotControl === "color" ? "parallel-chart" : "scatter-chart"));
  });

  // --- runs table: a selection that survives sorting, filtering, paging and back/forward -------------
  // Elements are looked up on each use: htmx's history restore replaces the page's body.
  const compareForm = () => document.querySelector("[data-compare-form]");
  const runBoxes = () => document.querySelectorAll('input[name="run"][form="compare-form"]');

  function loadSelection() {
    const form = compareForm();
    return new Set(form ? JSON.parse(sessionStorage.getItem(form.dataset.selectionKey) || "[]") : []);
  }

  function saveSelection(selected) {
    sessionStorage.setItem(compareForm().dataset.selectionKey, JSON.stringify([...selected]));
  }

  function syncSelection() {
    const form = compareForm();
    if (!form) return;
    const selected = loadSelection();
    const max = Number(form.dataset.max);
    const button = form.querySelector("[data-compare-button]");
    const counter = form.querySelector("[data-selection-count]");
    counter.dataset.hint ??= counter.textContent;
    runBoxes().forEach((box) => {
      box.checked = selected.has(box.value);
    });
    const all = document.querySelector("[data-select-page]");
    if (all) all.checked = runBoxes().length > 0 && [...runBoxes()].every((box) => box.checked);
    const n = selected.size;
    button.disabled = n === 0;
    button.textContent = "Compare selected";
    form.querySelector("[data-clear-selection]").hidden = n === 0;
    counter.textContent =
      n === 0 ? counter.dataset.hint : `${n} run${n === 1 ? "" : "s"} selected${n > max ? ` (over the limit of ${max})` : ""}`;
    counter.classList.toggle("warn", n > max);
  }

  document.addEventListener("change", (event) => {
    const box = event.target;
    if (!compareForm()) return;
    const selected = loadSelection();
    if (box.matches('input[name="run"][form="compare-form"]')) {
      box.checked ? selected.add(box.value) : selected.delete(box.value);
    } else if (box.matches("[data-select-page]")) {
      runBoxes().forEach((b) => (box.checked ? selected.add(b.value) : selected.delete(b.value)));
    } else {
      return;
    }
    saveSelection(selected);
    syncSelection();
  });

  document.addEventListener("click", (event) => {
    if (!event.target.closest("[data-clear-selection]")) return;
    saveSelection(new Set());
    syncSelection();
  });

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("[data-compare-form]");
    if (!form) return;
    event.preventDefault();
    const selected = loadSelection();
    if (!selected.size) return;
    const url = new URL(form.action, window.location.href);
    url.searchParams.set("runs", [...selected].join(","));
    const button = form.querySelector("[data-compare-button]");
    button.setAttribute("aria-busy", "true");
    button.textContent = "Opening…";
    window.location.assign(url);
  });

  document.addEventListener("htmx:afterSettle", syncSelection);
  document.addEventListener("htmx:historyRestore", syncSelection);
  window.addEventListener("pageshow", syncSelection); // also when the browser's back button shows a cached page
  document.addEventListener("DOMContentLoaded", syncSelection);

  // --- pickers: narrow long key lists as you type -------------------------------------------------------
  document.addEventListener("input", (event) => {
    const search = event.target.closest("[data-picker-search]");
    if (!search) return;
    const needle = search.value.trim().toLowerCase();
    search.closest(".picker-panel").querySelectorAll("label.check").forEach((label) => {
      label.hidden = needle !== "" && !label.textContent.toLowerCase().includes(needle);
    });
  });

  // --- compare: show only the rows that differ ---------------------------------------------------------
  document.addEventListener("change", (event) => {
    const toggle = event.target.closest("[data-only-differences]");
    if (!toggle) return;
    document.querySelector('[data-testid="diff-table"]').classList.toggle("only-differences", toggle.checked);
  });

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  document.addEventListener("DOMContentLoaded", () => drawAll());
  document.addEventListener("htmx:afterSettle", () => drawAll());
  // Back/forward through htmx history restores a snapshot of the page: its plots are dead SVG, so draw them anew.
  document.addEventListener("htmx:historyRestore", () => {
    document.querySelectorAll(".tchart[data-rendered]").forEach((el) => {
      delete el.dataset.rendered;
      el.replaceChildren();
    });
    drawAll();
  });
})();
