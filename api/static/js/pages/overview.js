/* #/ : the federation at a glance: API, sessions, models, combiners, clients and the active package. */

import { MAX_LIMIT, api, orNull } from "../api.js";
import { card, definitions, h, hint, pill, sessionLink, stat } from "../dom.js";
import { fmtBytes } from "../format.js";
import { every, show } from "../router.js";
import { clientsTable, combinersTable } from "./nodes.js";

const REFRESH_MS = 5000;
const CLIENTS_SHOWN = 500;

export const NO_PACKAGE = "No compute package is active. Upload one with `scaleout package upload PATH` (or APIClient.set_active_package).";

function packageDefinitions(active) {
  return definitions([
    ["Name", active.name],
    ["File", active.file_name],
    ["Helper", active.helper],
    ["Size", fmtBytes(active.size)],
    ["sha256", h("code", { class: "mono wrap" }, active.sha256)],
    ["Description", active.description || undefined],
  ]);
}

export async function renderOverview(gen) {
  const [health, sessions, models, combiners, clients, onlineClients, active] = await Promise.all([
    orNull(api("/api/v1/health"), 503),
    api("/api/v1/sessions/", { sort_key: "created_at", sort_order: "desc", limit: 1 }),
    api("/api/v1/models/count"),
    api("/api/v1/combiners/", { sort_key: "name", limit: MAX_LIMIT }),
    api("/api/v1/clients/", { sort_key: "last_seen", sort_order: "desc", limit: CLIENTS_SHOWN }),
    api("/api/v1/clients/count", { status: "online" }),
    orNull(api("/api/v1/packages/active")),
  ]);
  const latest = sessions.result[0];
  const onlineCombiners = combiners.result.filter((c) => c.status === "online").length;

  const stats = h(
    "div",
    { class: "stats" },
    stat("API", health ? pill("ok") : pill("error", "failed"), health ? "statestore reachable" : "statestore not answering"),
    stat("Sessions", String(sessions.count), latest ? [sessionLink(latest), " ", pill(latest.status)] : "none yet"),
    stat("Models", String(models.count), h("a", { href: "#/models" }, "model trail")),
    stat("Combiners", `${onlineCombiners} / ${combiners.count}`, h("a", { href: "#/combiners" }, "online / known")),
    stat("Clients", `${onlineClients.count} / ${clients.count}`, h("a", { href: "#/clients" }, "online / known")),
  );
  show(
    gen,
    stats,
    card("Active compute package", active ? packageDefinitions(active) : hint(NO_PACKAGE)),
    card("Combiners", combinersTable(combiners.result)),
    card(
      clients.count > clients.result.length ? `Clients (the ${clients.result.length} seen most recently of ${clients.count})` : "Clients",
      clientsTable(clients.result, combiners.result, active),
    ),
  );
  every(gen, () => renderOverview(gen), REFRESH_MS);
}
