/* #/events: the federation's event log, newest first, by level and session. */

import { api, clientNames } from "../api.js";
import { card, h, idCell, pager, pill, table, timeCell } from "../dom.js";
import { route, show } from "../router.js";

const PAGE_SIZE = 100;
const LEVELS = ["debug", "info", "warning", "error"];

export function eventsTable(events, names) {
  const client = (id) => (id ? h("a", { href: `#/clients/${encodeURIComponent(id)}`, title: id }, names.get(id) || id) : "–");
  return table(
    [
      { label: "Time", cell: (e) => timeCell(e.timestamp, false) },
      { label: "Level", cell: (e) => pill(e.level, `level-${e.level}`) },
      { label: "Type", cell: (e) => h("span", { class: "mono" }, e.type) },
      { label: "Message", class: "message", cell: (e) => e.message },
      { label: "Session", cell: (e) => idCell(e.session_id, e.session_id ? `#/sessions/${encodeURIComponent(e.session_id)}` : null) },
      { label: "Client", cell: (e) => client(e.client_id) },
      { label: "Combiner", cell: (e) => e.combiner_id || "–" },
    ],
    events,
    "No events.",
  );
}

export async function renderEvents(gen, parts, params) {
  const skip = Number(params.get("skip") || 0);
  const level = params.get("level") || "";
  const sessionId = params.get("session_id") || "";
  const events = await api("/api/v1/events/", { level: level, session_id: sessionId, sort_key: "timestamp", sort_order: "desc", limit: PAGE_SIZE, skip: skip });
  const names = await clientNames(events.result.map((e) => e.client_id));
  const select = h(
    "select",
    {
      "aria-label": "level",
      onchange: (event) => {
        const next = new URLSearchParams(params);
        next.delete("skip");
        if (event.target.value) next.set("level", event.target.value);
        else next.delete("level");
        location.hash = `#/events${next.toString() ? `?${next}` : ""}`;
      },
    },
    h("option", { value: "" }, "all levels"),
    LEVELS.map((l) => h("option", { value: l, selected: l === level }, l)),
  );
  show(
    gen,
    h("h1", null, "Events"),
    card(
      null,
      h(
        "div",
        { class: "toolbar" },
        select,
        sessionId ? h("span", null, "session ", idCell(sessionId, `#/sessions/${encodeURIComponent(sessionId)}`), " ", h("a", { href: "#/events" }, "(all sessions)")) : null,
        h("button", { type: "button", onclick: route }, "Refresh"),
      ),
      eventsTable(events.result, names),
      pager(params, events.count, PAGE_SIZE, "events"),
    ),
  );
}
