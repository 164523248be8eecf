// The endpoint page: fetch the per-variant metrics table and redraw the charts every few seconds.
"use strict";

(function () {
  const section = document.getElementById("metrics");
  const endpoint = section.dataset.endpoint;
  const periodSelect = document.getElementById("period");
  const refreshed = document.getElementById("refreshed");
  const totalsBody = document.querySelector("#totals tbody");
  const { drawLineChart, PALETTE, formatValue } = window.loopwiseCharts;
  const REFRESH_MS = 5000;
  const colors = {};

  function colorOf(variant) {
    if (!(variant in colors)) colors[variant] = PALETTE[Object.keys(colors).length % PALETTE.length];
    return colors[variant];
  }

  // the same color for a variant everywhere on the page: the configuration's order first
  for (const row of document.querySelectorAll("#variants tbody tr")) colorOf(row.dataset.variant);
  // each variant's width in the traffic bar is its share (set here: the page's policy refuses style attributes)
  for (const share of document.querySelectorAll(".traffic .share")) {
    share.style.flexGrow = share.dataset.share;
    share.style.background = colorOf(share.dataset.variant);
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function showTotals(rows) {
    const totals = {};
    for (const row of rows) {
      const t = (totals[row.variant] ||= { n: 0, model: 0, overhead: 0, e4: 0, e5: 0 });
      t.n += row.Invocations;
      t.model += (row.ModelLatency || 0) * row.Invocations;
      t.overhead += (row.OverheadLatency || 0) * row.Invocations;
      t.e4 += row.Invocation4XXErrors;
      t.e5 += row.Invocation5XXErrors;
    }
    totalsBody.replaceChildren();
    for (const [variant, t] of Object.entries(totals).sort()) {
      const tr = document.createElement("tr");
      tr.dataset.variant = variant;
      tr.append(
        cell(variant), cell(String(t.n)),
        cell(t.n ? formatValue(t.model / t.n) : "-"), cell(t.n ? formatValue(t.overhead / t.n) : "-"),
        cell(String(t.e4)), cell(String(t.e5)),
      );
      totalsBody.appendChild(tr);
    }
  }

  async function refresh() {
    const period = Number(periodSelect.value);
    const window = period >= 60 ? 3600 : 900;
    try {
      const response = await fetch(`/api/v1/endpoints/${encodeURIComponent(endpoint)}/metrics?period=${period}&window=${window}`);
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        throw new Error((problem.error && problem.error.message) || `HTTP ${response.status}`);
      }
      const { rows } = await response.json();
      // "-" holds requests refused before routing: counted in the totals, not charted
      const variants = [...new Set(rows.map((r) => r.variant))].filter((v) => v !== "-").sort();
      variants.forEach(colorOf);
      for (const figure of section.querySelectorAll("figure.chart")) {
        const metric = figure.dataset.metric;
        const series = {};
        for (const variant of variants) {
          series[variant] = rows
            .filter((r) => r.variant === variant && r[metric] !== null && r[metric] !== undefined)
            .map((r) => [r.period_start, r[metric]]);
        }
        drawLineChart(figure.querySelector("svg"), series, colors);
      }
      showTotals(rows);
      section.dataset.loaded = String(Date.now());
      refreshed.textContent = `updated ${new Date().toLocaleTimeString()}`;
      refreshed.classList.remove("error");
    } catch (error) {
      refreshed.textContent = `could not load the metrics: ${error.message}`;
      refreshed.classList.add("error");
    }
  }

  periodSelect.addEventListener("change", refresh);
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
