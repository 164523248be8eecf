// Small SVG line charts: one line per series over time. No library, no build step.
"use strict";

const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563"];
const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes || {})) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// Rounded tick values covering [0, top].
function niceTicks(top, count) {
  if (!(top > 0)) return [0, 1];
  const raw = top / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let value = 0; value <= top + step * 1e-9; value += step) ticks.push(value);
  if (ticks[ticks.length - 1] < top) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

function clock(seconds) {
  return new Date(seconds * 1000).toISOString().slice(11, 19);
}

function formatValue(value) {
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return value.toFixed(Math.abs(value) >= 10 ? 1 : 2);
}

// Draw series ({name: [[t, value], ...]}) into svg; colors keyed by name so every chart agrees.
function drawLineChart(svg, series, colors) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = 460, height = 220, left = 46, right = 10, top = 26, bottom = 28;
  const names = Object.keys(series).filter((name) => series[name].length > 0);
  const points = names.flatMap((name) => series[name]);
  if (points.length === 0) {
    svg.appendChild(svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, "no data yet"));
    return;
  }
  let t0 = Math.min(...points.map((p) => p[0]));
  let t1 = Math.max(...points.map((p) => p[0]));
  if (t1 === t0) { t0 -= 30; t1 += 30; }
  const ticks = niceTicks(Math.max(...points.map((p) => p[1])), 4);
  const yTop = ticks[ticks.length - 1] || 1;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => height - bottom - (v / yTop) * (height - top - bottom);
  for (const tick of ticks) {
    svg.appendChild(svgElement("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }));
    svg.appendChild(svgElement("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, formatValue(tick)));
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + ((t1 - t0) * i) / 3;
    const anchor = i === 0 ? "start" : i === 3 ? "end" : "middle";
    svg.appendChild(svgElement("text", { x: x(t), y: height - 8, "text-anchor": anchor, class: "tick" }, clock(t)));
  }
  let legendX = left;
  for (const name of names) {
    const color = colors[name];
    const line = series[name].map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svg.appendChild(svgElement("polyline", { points: line, stroke: color, class: "series", "data-variant": name, "data-points": series[name].length }));
    for (const [t, value] of series[name]) {
      const dot = svgElement("circle", { cx: x(t), cy: y(value), r: 2.5, fill: color });
      dot.appendChild(svgElement("title", {}, `${name} ${clock(t)}: ${formatValue(value)}`));
      svg.appendChild(dot);
    }
    svg.appendChild(svgElement("rect", { x: legendX, y: 8, width: 10, height: 10, fill: color }));
    const label = svgElement("text", { x: legendX + 14, y: 17, class: "legend" }, name);
    svg.appendChild(label);
    legendX += 24 + 7 * name.length;
  }
}

window.loopwiseCharts = { drawLineChart, PALETTE, formatValue };
