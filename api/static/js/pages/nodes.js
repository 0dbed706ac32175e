/* #/clients and #/combiners: every node of the federation, and one client's history. */

import { MAX_LIMIT, api, fetchAll, orNull } from "../api.js";
import { card, definitions, h, idCell, nodeStatus, pager, pill, shaCell, table, timeCell } from "../dom.js";
import { fmtNumber, roundNumber } from "../format.js";
import { every, show } from "../router.js";
import { clientSeries, colour, lineChart, metricNames } from "../chart.js";
import { eventsTable } from "./events.js";

const REFRESH_MS = 5000;
const PAGE_SIZE = 100;

export function combinersTable(combiners) {
  return table(
    [
      { label: "Name", cell: (c) => h("span", { title: c.id }, c.name || c.id) },
      { label: "Address", cell: (c) => h("span", { class: "mono" }, `${c.address}:${c.port}`) },
      { label: "Status", cell: nodeStatus },
      { label: "TLS", cell: (c) => (c.tls ? "yes" : "no") },
      { label: "Last seen", cell: (c) => timeCell(c.last_seen) },
      { label: "Clients", class: "num", cell: (c) => String(c.client_count) },
    ],
    combiners,
    "No combiner has registered. Start one with `scaleout combiner start`.",
  );
}

function packageCell(checksum, active) {
  if (!checksum) return "–";
  const current = active && checksum === active.sha256;
  return [shaCell(checksum), " ", current ? pill("active", "ok") : pill("other", "stale", "not the active package's sha256")];
}

export function clientsTable(clients, combiners, active) {
  const combinerNames = new Map(combiners.map((c) => [c.id, c.name || c.id]));
  return table(
    [
      { label: "Name", cell: (c) => h("a", { href: `#/clients/${encodeURIComponent(c.id)}`, title: c.id }, c.name || c.id) },
      { label: "Status", cell: nodeStatus },
      { label: "Combiner", cell: (c) => (c.combiner_id ? combinerNames.get(c.combiner_id) || c.combiner_id : "–") },
      { label: "Last seen", cell: (c) => timeCell(c.last_seen) },
      { label: "Package", cell: (c) => packageCell(c.package_checksum, active) },
    ],
    clients,
    "No client has connected yet. Start one with `scaleout client start --api-url URL`.",
  );
}

export async function renderCombiners(gen) {
  const combiners = await api("/api/v1/combiners/", { sort_key: "name", limit: MAX_LIMIT });
  show(gen, h("h1", null, "Combiners"), card(null, combinersTable(combiners.result)));
  every(gen, () => renderCombiners(gen), REFRESH_MS);
}

export async function renderClients(gen, parts, params) {
  if (parts.length > 1) return renderClient(gen, parts[1]);
  const skip = Number(params.get("skip") || 0);
  const [clients, combiners, active] = await Promise.all([
    api("/api/v1/clients/", { sort_key: "name", limit: PAGE_SIZE, skip: skip }),
    api("/api/v1/combiners/", { sort_key: "name", limit: MAX_LIMIT }),
    orNull(api("/api/v1/packages/active")),
  ]);
  show(
    gen,
    h("h1", null, "Clients"),
    card(null, clientsTable(clients.result, combiners.result, active), pager(params, clients.count, PAGE_SIZE, "clients", ["← Previous", "Next →"])),
  );
  every(gen, () => renderClients(gen, parts, params), REFRESH_MS);
}

async function renderClient(gen, id) {
  const [client, activity, validations, events, active, sessions] = await Promise.all([
    api(`/api/v1/clients/${encodeURIComponent(id)}`),
    api(`/api/v1/clients/${encodeURIComponent(id)}/activity`),
    fetchAll("/api/v1/validations/", { client_id: id, sort_key: "created_at" }),
    api("/api/v1/events/", { client_id: id, sort_key: "timestamp", sort_order: "desc", limit: 50 }),
    orNull(api("/api/v1/packages/active")),
    api("/api/v1/sessions/", { sort_key: "created_at", sort_order: "desc", limit: MAX_LIMIT }),
  ]);
  const names = new Map([[client.id, client.name || client.id]]); // its events are all its own
  const sessionNames = new Map(sessions.result.map((x) => [x.id, x.name || x.id]));
  const combiner = client.combiner_id ? await orNull(api(`/api/v1/combiners/${encodeURIComponent(client.combiner_id)}`)) : null;
  show(
    gen,
    h("div", { class: "crumbs" }, h("a", { href: "#/clients" }, "Clients"), " / "),
    h("h1", null, client.name || client.id, " ", nodeStatus(client)),
    card(
      null,
      definitions([
        ["Id", h("span", { class: "mono" }, client.id)],
        ["Combiner", combiner ? combiner.name || combiner.id : client.combiner_id || "–"],
        ["Package", packageCell(client.package_checksum, active)],
        ["Last seen", timeCell(client.last_seen)],
        ["Rounds joined", String(activity.rounds_joined)],
        ["Last error", activity.last_error ? h("span", { class: "error" }, activity.last_error) : "none"],
      ]),
    ),
    card("Metrics history", historyCharts(validations, activity.round_numbers, sessionNames), validationsTable(validations, activity.round_numbers)),
    card("Events", eventsTable(events.result, names)),
  );
}

function historyCharts(validations, roundNumbers, sessionNames) {
  // One plot per metric, one series per session: how this client's numbers moved, round by round.
  const known = validations.filter((v) => v.round_id in roundNumbers);
  if (!known.length) return null;
  const roundIndex = new Map(Object.entries(roundNumbers));
  const bySession = [...new Set(known.map((v) => v.session_id))];
  return h(
    "div",
    { class: "charts" },
    metricNames(known).map((metric) =>
      lineChart(
        metric,
        bySession.map((id, i) => {
          const [serie] = clientSeries(known.filter((v) => v.session_id === id), roundIndex, metric, new Map());
          return { ...(serie || { points: [] }), key: id, name: sessionNames.get(id) || id, colour: colour(i) };
        }),
      ),
    ),
  );
}

function validationsTable(validations, roundNumbers) {
  const names = [...new Set(validations.flatMap((v) => Object.keys(v.metrics || {})))].sort();
  return table(
    [
      { label: "Session", cell: (v) => idCell(v.session_id, v.session_id ? `#/sessions/${encodeURIComponent(v.session_id)}` : null) },
      { label: "Round", class: "num", cell: (v) => (v.round_id in roundNumbers ? String(roundNumber(roundNumbers[v.round_id])) : "–") },
      ...names.map((name) => ({ label: name, class: "num", cell: (v) => (name in (v.metrics || {}) ? fmtNumber(v.metrics[name]) : "–") })),
      { label: "Time", cell: (v) => timeCell(v.created_at) },
    ],
    validations,
    "No validation from this client yet.",
  );
}

