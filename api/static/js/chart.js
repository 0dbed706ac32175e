/* SVG line charts of validation metrics, drawn by hand (no library, so the page works offline).
 *
 * A chart has series: each a name, a colour and points {x, y}. The session page draws one series per
 * client, selectable in the legend, plus the mean over clients; the compare page one series per session.
 * Every point's hover names its series and round, never a 32-hex id.
 */

import { h, s } from "./dom.js";
import { fmtNumber, roundNumber } from "./format.js";

const W = 560;
const H = 280;
const M = { top: 16, right: 18, bottom: 40, left: 64 };
const MAX_MARKED_POINTS = 60; // per series: beyond it a line without dots reads better
const PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9333ea", "#ea580c"];

export function colour(i) {
  return PALETTE[i % PALETTE.length];
}

export function metricNames(validations) {
  const names = new Set();
  for (const v of validations) {
    for (const [name, value] of Object.entries(v.metrics || {})) if (typeof value === "number" && Number.isFinite(value)) names.add(name);
  }
  return [...names].sort();
}

export function clientSeries(validations, roundIndex, metric, names, xOf = roundNumber) {
  // one series per client: its value of `metric` in each round (x = 1-based round number, or what
  // xOf makes of the round's 0-based index, e.g. its commit's seconds since the session started)
  const byClient = new Map();
  for (const v of validations) {
    const index = roundIndex.get(v.round_id);
    const value = (v.metrics || {})[metric];
    if (index === undefined || typeof value !== "number" || !Number.isFinite(value)) continue;
    if (!byClient.has(v.client_id)) byClient.set(v.client_id, []);
    const x = xOf(index);
    if (x === null || x === undefined) continue;
    byClient.get(v.client_id).push({ x, y: value });
  }
  return [...byClient.entries()]
    .map(([id, points]) => ({ key: id, name: names.get(id) || id, points: points.sort((a, b) => a.x - b.x) }))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((serie, i) => ({ ...serie, colour: colour(i) }));
}

export function meanSeries(series, name = "mean over clients") {
  const byRound = new Map();
  for (const serie of series) for (const p of serie.points) byRound.set(p.x, [...(byRound.get(p.x) || []), p.y]);
  const points = [...byRound.entries()].sort((a, b) => a[0] - b[0]).map(([x, ys]) => ({ x, y: ys.reduce((a, b) => a + b, 0) / ys.length }));
  return { key: "mean", name, colour: "#111827", points, mean: true };
}

function niceStep(range, target) {
  const raw = range / Math.max(1, target);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const fraction = raw / power;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

function niceDomain(lo, hi, target) {
  if (lo === hi) {
    const spread = Math.abs(lo) * 0.1 || 1;
    lo -= spread;
    hi += spread;
  }
  const step = niceStep(hi - lo, target);
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let t = start; t <= end + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return { lo: start, hi: end, step, ticks };
}

function tickLabel(value, step) {
  // As many decimals as the step has, so 0.25-steps read 0.25, 0.50, 0.75.
  const stepText = String(Number(step.toPrecision(6)));
  if (stepText.includes("e") || Math.abs(value) >= 1e6) return Number(value.toPrecision(3)).toExponential();
  const decimals = stepText.includes(".") ? stepText.split(".")[1].length : 0;
  return value.toFixed(decimals);
}

function axes(metric, xs, ys, xLabel, firstTick) {
  let xLo = Math.min(...xs);
  let xHi = Math.max(...xs);
  if (xLo === xHi) {
    xLo -= 1;
    xHi += 1;
  }
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const y = niceDomain(Math.min(...ys), Math.max(...ys), 5);
  const px = (x) => M.left + ((x - xLo) / (xHi - xLo)) * plotW;
  const py = (v) => M.top + plotH - ((v - y.lo) / (y.hi - y.lo)) * plotH;
  const grid = s("g", { class: "grid" });
  for (const t of y.ticks) {
    grid.append(
      s("line", { x1: M.left, x2: W - M.right, y1: py(t).toFixed(1), y2: py(t).toFixed(1) }),
      s("text", { x: M.left - 8, y: py(t).toFixed(1), class: "tick tick-y", "dominant-baseline": "middle", "text-anchor": "end" }, tickLabel(t, y.step)),
    );
  }
  const xStep = Math.max(1, Math.round(niceStep(xHi - xLo, 8)));
  for (let t = Math.ceil(xLo / xStep) * xStep; t <= xHi; t += xStep) {
    if (t < firstTick) continue; // rounds and versions start at 1, wall time at 0
    grid.append(s("text", { x: px(t).toFixed(1), y: M.top + plotH + 18, class: "tick", "text-anchor": "middle" }, String(t)));
  }
  grid.append(
    s("line", { class: "axis", x1: M.left, x2: W - M.right, y1: M.top + plotH, y2: M.top + plotH }),
    s("line", { class: "axis", x1: M.left, x2: M.left, y1: M.top, y2: M.top + plotH }),
    s("text", { x: M.left + plotW / 2, y: H - 6, class: "axis-label", "text-anchor": "middle" }, xLabel),
    s("text", { x: 12, y: M.top + plotH / 2, class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 12 ${M.top + plotH / 2})` }, metric),
  );
  return { grid, px, py };
}

const BY_ROUND = { xLabel: "round", firstTick: 1, at: (x) => `round ${x}` };
export const BY_VERSION = { xLabel: "version", firstTick: 1, at: (x) => `version ${x}` };
export const BY_WALL_TIME = { xLabel: "seconds since the session started", firstTick: 0, at: (x) => `${fmtNumber(x)} s` };

export function lineChart(metric, series, { selectable = true, axis = BY_ROUND } = {}) {
  // A figure: the SVG and a legend naming each series; unticking a series hides it. `axis` says what x
  // is: rounds (default), async versions or wall time, in the axis label and every point's hover.
  const drawn = series.filter((x) => x.points.length);
  const all = drawn.flatMap((x) => x.points);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": metric, preserveAspectRatio: "xMidYMid meet" });
  if (!all.length) return h("figure", { class: "chart" }, h("figcaption", null, metric), h("p", { class: "empty" }, "No values."));
  const { grid, px, py } = axes(metric, all.map((p) => p.x), all.map((p) => p.y), axis.xLabel, axis.firstTick);
  svg.append(grid);
  const groups = new Map();
  for (const serie of drawn) {
    const g = s("g", { class: serie.mean ? "series series-mean" : "series", "data-series": serie.name, stroke: serie.colour, fill: serie.colour });
    g.append(s("polyline", { class: "line", points: serie.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ") }));
    if (serie.points.length <= MAX_MARKED_POINTS) {
      for (const p of serie.points) {
        g.append(s("circle", { class: "point", cx: px(p.x).toFixed(1), cy: py(p.y).toFixed(1), r: serie.mean ? 3.4 : 2.6 }, s("title", null, `${serie.name}, ${axis.at(p.x)}: ${fmtNumber(p.y)}`)));
      }
    }
    groups.set(serie.key, g);
    svg.append(g);
  }
  const legend = h(
    "div",
    { class: "legend" },
    drawn.map((serie) => {
      const box = h("input", {
        type: "checkbox",
        checked: true,
        disabled: !selectable,
        onchange: (event) => groups.get(serie.key).classList.toggle("hidden", !event.target.checked),
      });
      const swatch = h("span", { class: "swatch" });
      swatch.style.background = serie.colour;
      const last = serie.points[serie.points.length - 1];
      return h("label", { class: "legend-item", title: `latest: ${fmtNumber(last.y)} at ${axis.at(last.x)}` }, box, swatch, serie.name);
    }),
  );
  return h("figure", { class: "chart" }, h("figcaption", null, metric), svg, legend);
}

export function histogram(title, counts, { xLabel, barTitle }) {
  // A bar per position of `counts` (e.g. updates per staleness tau), its count in the bar's hover.
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const y = niceDomain(0, Math.max(1, ...counts), 5);
  const py = (v) => M.top + plotH - ((v - y.lo) / (y.hi - y.lo)) * plotH;
  const slot = plotW / Math.max(1, counts.length);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": title, preserveAspectRatio: "xMidYMid meet" });
  const grid = s("g", { class: "grid" });
  for (const t of y.ticks) {
    grid.append(
      s("line", { x1: M.left, x2: W - M.right, y1: py(t).toFixed(1), y2: py(t).toFixed(1) }),
      s("text", { x: M.left - 8, y: py(t).toFixed(1), class: "tick tick-y", "dominant-baseline": "middle", "text-anchor": "end" }, tickLabel(t, y.step)),
    );
  }
  const labelEvery = Math.max(1, Math.ceil(counts.length / 20));
  const bars = s("g", { class: "hist-bars", fill: colour(0) });
  counts.forEach((count, i) => {
    const x = M.left + i * slot;
    bars.append(s("rect", { class: "hist-bar", x: (x + slot * 0.1).toFixed(1), y: py(count).toFixed(1), width: (slot * 0.8).toFixed(1), height: (py(0) - py(count)).toFixed(1) }, s("title", null, barTitle(i, count))));
    if (i % labelEvery === 0) grid.append(s("text", { x: (x + slot / 2).toFixed(1), y: M.top + plotH + 18, class: "tick", "text-anchor": "middle" }, String(i)));
  });
  grid.append(
    s("line", { class: "axis", x1: M.left, x2: W - M.right, y1: M.top + plotH, y2: M.top + plotH }),
    s("text", { x: M.left + plotW / 2, y: H - 6, class: "axis-label", "text-anchor": "middle" }, xLabel),
  );
  svg.append(grid, bars);
  return h("figure", { class: "chart histogram" }, h("figcaption", null, title), svg);
}
