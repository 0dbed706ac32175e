/* DOM helpers: elements built with h()/s(), never from HTML strings (the page's CSP forbids inline script,
 * and names typed by users stay text). */

import { fmtAgo, fmtDuration, fmtTime, secondsSince, shortId } from "./format.js";

const STALE_SECONDS = 60; // "online" but silent for this long: probably gone

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
  }
}

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  return append(el, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  return append(el, children);
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", null, title) : null, children);
}

export function table(columns, rows, empty = "Nothing yet.") {
  if (!rows.length) return typeof empty === "string" ? hint(empty) : empty;
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      h("thead", null, h("tr", null, columns.map((c) => h("th", { class: c.class }, c.label)))),
      h("tbody", null, rows.map((row) => h("tr", null, columns.map((c) => h("td", { class: c.class }, c.cell(row)))))),
    ),
  );
}

export function definitions(pairs) {
  return h(
    "dl",
    { class: "definitions" },
    pairs.filter(([, value]) => value !== undefined).map(([term, value]) => [h("dt", null, term), h("dd", null, value)]),
  );
}

export function hint(...parts) {
  // An empty-state hint; strings in `...` become <code>, the rest stays text.
  return h("p", { class: "empty" }, parts.map((part) => String(part).split(/`([^`]*)`/).map((piece, i) => (i % 2 ? h("code", null, piece) : piece))));
}

export function idCell(id, href) {
  if (!id) return "–";
  return href ? h("a", { href, class: "mono", title: id }, shortId(id)) : h("span", { class: "mono", title: id }, shortId(id));
}

export function shaCell(sha) {
  return sha ? h("span", { class: "mono", title: sha }, sha.slice(0, 12)) : "–";
}

export function pill(text, kind, title) {
  return h("span", { class: `pill pill-${kind || String(text).toLowerCase()}`, title }, text);
}

export function nodeStatus(node) {
  // The stored status is what the combiner last wrote; a dead combiner cannot write "offline".
  const silent = secondsSince(node.last_seen);
  if (node.status === "online" && silent !== null && silent > STALE_SECONDS) {
    return pill("silent", "stale", `recorded online, but not seen for ${fmtDuration(silent)}`);
  }
  return pill(node.status);
}

export function sessionLink(session) {
  return h("a", { href: `#/sessions/${encodeURIComponent(session.id)}` }, session.name || shortId(session.id));
}

export function progressBar(done, total, title) {
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const bar = h("span", { class: "bar-fill" });
  bar.style.width = `${(fraction * 100).toFixed(1)}%`; // CSSOM, allowed by the page's CSP
  return h("span", { class: "bar", title: title || `${done} / ${total}` }, bar);
}

export function stat(label, value, note) {
  return h("div", { class: "stat card" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), h("div", { class: "stat-note" }, note));
}

export function pager(params, count, pageSize, base, labels = ["← Newer", "Older →"]) {
  const skip = Number(params.get("skip") || 0);
  const link = (newSkip) => {
    const next = new URLSearchParams(params);
    if (newSkip > 0) next.set("skip", String(newSkip));
    else next.delete("skip");
    const query = next.toString();
    return `#/${base}${query ? `?${query}` : ""}`;
  };
  return h(
    "div",
    { class: "pager" },
    skip > 0 ? h("a", { href: link(Math.max(0, skip - pageSize)) }, labels[0]) : h("span", { class: "muted" }, labels[0]),
    h("span", { class: "muted pager-range" }, count ? `${skip + 1}–${Math.min(count, skip + pageSize)} of ${count}` : "0"),
    skip + pageSize < count ? h("a", { href: link(skip + pageSize) }, labels[1]) : h("span", { class: "muted" }, labels[1]),
  );
}

export function timeCell(iso, relative = true) {
  // relative ("3 min ago") with the absolute time as its title
  if (!iso) return "–";
  return h("time", { datetime: iso, title: fmtTime(iso) }, relative ? fmtAgo(iso) : fmtTime(iso));
}
