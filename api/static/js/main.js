/* scaleout-edge dashboard: ES modules, no dependencies, no build step (it must work offline).
 *
 * Hash routes: #/ (overview), #/sessions, #/sessions/ID, #/compare, #/clients, #/clients/ID,
 * #/combiners, #/models, #/events. One module per page under pages/.
 */

import { ApiError, TOKEN_KEY, api } from "./api.js";
import { route, setViews } from "./router.js";
import { renderCompare } from "./pages/compare.js";
import { renderEvents } from "./pages/events.js";
import { renderModels } from "./pages/models.js";
import { renderClients, renderCombiners } from "./pages/nodes.js";
import { renderOverview } from "./pages/overview.js";
import { renderSession } from "./pages/session.js";
import { renderSessions } from "./pages/sessions.js";

const HEALTH_MS = 10000;

async function refreshHealth() {
  const badge = document.getElementById("health");
  try {
    const health = await api("/api/v1/health");
    badge.textContent = "API ok";
    badge.className = "pill pill-ok";
    badge.title = `statestore: ${health.statestore}`;
  } catch (error) {
    badge.textContent = error instanceof ApiError && error.status === 0 ? "API unreachable" : "API error";
    badge.className = "pill pill-failed";
    badge.title = error instanceof ApiError ? error.detail : String(error);
  }
  setTimeout(refreshHealth, HEALTH_MS);
}

setViews({
  "": renderOverview,
  sessions: (gen, parts, params) => (parts.length > 1 ? renderSession(gen, parts[1], params) : renderSessions(gen, parts, params)),
  compare: renderCompare,
  clients: renderClients,
  combiners: renderCombiners,
  models: renderModels,
  events: renderEvents,
});
document.getElementById("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
});
window.addEventListener("hashchange", route);
refreshHealth();
route();
