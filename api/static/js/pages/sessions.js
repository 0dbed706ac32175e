/* #/sessions: every session with its final metrics; start one from the page; pick sessions to compare. */

import { api, apiPost, orNull } from "../api.js";
import { card, definitions, h, hint, pager, pill, progressBar, sessionLink, table, timeCell } from "../dom.js";
import { between, fmtDuration, fmtNumber, sessionDone } from "../format.js";
import { errorText, every, show } from "../router.js";
import { NO_PACKAGE } from "./overview.js";

const REFRESH_MS = 5000;
const PAGE_SIZE = 50;
// The start form offers the latest models, one page of the API's; an older one is given by its id.
const MODELS_SHOWN = 100;
const NO_SESSION = "No session yet. Start one below, with `scaleout session start`, or APIClient.start_session.";

function finalMetrics(summary) {
  if (!summary || !Object.keys(summary.metrics).length) return "–";
  return h("span", { class: "metrics" }, Object.entries(summary.metrics).map(([name, value]) => h("span", { class: "metric" }, `${name} ${fmtNumber(value)}`)));
}

export async function renderSessions(gen, parts, params) {
  const skip = Number(params.get("skip") || 0);
  const [sessions, active, models] = await Promise.all([
    api("/api/v1/sessions/", { sort_key: "created_at", sort_order: "desc", limit: PAGE_SIZE, skip: skip }),
    orNull(api("/api/v1/packages/active")),
    api("/api/v1/models/", { sort_key: "committed_at", sort_order: "desc", limit: MODELS_SHOWN }),
  ]);
  const summaries = await Promise.all(sessions.result.map((x) => orNull(api(`/api/v1/sessions/${encodeURIComponent(x.id)}/final-metrics`))));
  const finals = new Map(sessions.result.map((x, i) => [x.id, summaries[i]]));
  const chosen = new Set();
  const compare = h("button", { type: "button", disabled: true, onclick: () => (location.hash = `#/compare?ids=${[...chosen].map(encodeURIComponent).join(",")}`) }, "Compare selected");
  const pick = (x) =>
    h("input", {
      type: "checkbox",
      "aria-label": `compare ${x.name}`,
      onchange: (event) => {
        if (event.target.checked) chosen.add(x.id);
        else chosen.delete(x.id);
        compare.disabled = chosen.size < 2;
      },
    });
  const running = sessions.result.some((x) => x.status === "Started");
  show(
    gen,
    h("h1", null, "Sessions"),
    card(
      null,
      h("div", { class: "toolbar" }, compare),
      table(
        [
          { label: "", cell: pick },
          { label: "Name", cell: sessionLink },
          { label: "Status", cell: (x) => pill(x.status) },
          { label: "Rounds", cell: roundsCell },
          { label: "Final metrics", cell: (x) => finalMetrics(finals.get(x.id)) },
          { label: "Aggregator", cell: (x) => x.config.aggregator },
          { label: "Created", cell: (x) => timeCell(x.created_at) },
          { label: "Duration", class: "num", cell: (x) => fmtDuration(between(x.started_at, x.finished_at)) },
        ],
        sessions.result,
        NO_SESSION,
      ),
      pager(params, sessions.count, PAGE_SIZE, "sessions"),
    ),
    card("Start a session", running ? hint("A session is running; stop it on its page before starting another.") : startForm(active, models)),
  );
  if (running) every(gen, () => renderSessions(gen, parts, params), REFRESH_MS);
}

function roundsCell(session) {
  // "2 / 5"; an async session's versions say so: "3 / 40 versions"
  const d = sessionDone(session);
  return h("span", { class: "rounds-cell" }, progressBar(d.done, d.total), d.unit === "versions" ? `${d.text} versions` : d.text);
}

function field(label, input, note) {
  return h("label", { class: "field" }, h("span", null, label), input, note ? h("small", { class: "muted" }, note) : null);
}

function otherModel(models) {
  // With more models than the list shows: any model, by its id.
  if (models.count <= models.result.length) return null;
  const note = `the list has the latest ${models.result.length} of ${models.count} models; an id here wins`;
  return field("Or a model id", h("input", { name: "other_model_id", placeholder: "any model's id" }), note);
}

function startForm(active, models) {
  if (!active) return hint(NO_PACKAGE);
  if (!models.count) return hint("No model to start from. Upload a seed model with `scaleout model upload PATH`.");
  const error = h("p", { class: "error", hidden: true });
  const seed = h(
    "select",
    { name: "model_id" },
    models.result.map((m, i) => h("option", { value: m.id, selected: i === 0 }, `${m.name || m.id}${m.session_id ? "" : " (seed)"}`)),
  );
  const form = h(
    "form",
    { class: "start-form" },
    definitions([["Compute package", `${active.name || active.file_name} (${active.sha256.slice(0, 12)}, the active one)`]]),
    field("Name", h("input", { name: "name", placeholder: "generated when empty" })),
    field("Start from model", seed, "the latest model is the default"),
    otherModel(models),
    field("Rounds", h("input", { name: "rounds", type: "number", min: 1, value: 5, required: true })),
    field("Min clients", h("input", { name: "min_clients", type: "number", min: 1, value: 1, required: true })),
    field("Round timeout (s)", h("input", { name: "round_timeout", type: "number", min: 1, step: "any", value: 180, required: true })),
    field("Validate", h("input", { name: "validate", type: "checkbox", checked: true })),
    h("button", { type: "submit" }, "Start session"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    const body = {
      name: f.name.value.trim(),
      model_id: f.other_model_id?.value.trim() || f.model_id.value,
      config: { rounds: Number(f.rounds.value), min_clients: Number(f.min_clients.value), round_timeout: Number(f.round_timeout.value), validate: f.validate.checked },
    };
    // The API validates (the same SessionConfig as every other caller); its message is shown as it is.
    try {
      const session = await apiPost("/api/v1/sessions/start", body);
      location.hash = `#/sessions/${encodeURIComponent(session.id)}`;
    } catch (failure) {
      error.textContent = errorText(failure);
      error.hidden = false;
    }
  });
  return form;
}
