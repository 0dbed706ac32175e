/* #/sessions/ID: one session: live round, metrics per client, rounds (paged), model trail, events;
 * stop it, export its metrics. Rounds read from 1 ("Round 3 of 5"); the stored index is 0-based.
 * An async (FedBuff) session's rounds are its versions: its page adds their pace and staleness
 * (GET /sessions/ID/stats) and plots the metrics over versions or, with ?axis=time, over wall time. */

import { AuthRequired, api, apiPost, clientNames, fetchAll } from "../api.js";
import { card, definitions, h, idCell, pager, pill, progressBar, table, timeCell } from "../dom.js";
import { between, fmtDuration, fmtNumber, roundNumber, sessionDone, shortId } from "../format.js";
import { errorText, isCurrent, later, show, showError } from "../router.js";
import { BY_VERSION, BY_WALL_TIME, clientSeries, histogram, lineChart, meanSeries, metricNames } from "../chart.js";
import { eventsTable } from "./events.js";
import { NO_MODEL, downloadLink, modelsTable, saveBlob } from "./models.js";

const POLL_MS = 1000; // live round status, only while a session is Started
const REFRESH_MS = 5000; // tables and plots
const ROUNDS_PAGE = 20;

async function loadSession(id) {
  const [session, rounds, validations, models, events, names] = await Promise.all([
    api(`/api/v1/sessions/${encodeURIComponent(id)}`),
    fetchAll("/api/v1/rounds/", { session_id: id, sort_key: "index" }),
    fetchAll("/api/v1/validations/", { session_id: id, sort_key: "created_at" }),
    fetchAll("/api/v1/models/", { session_id: id, sort_key: "committed_at", sort_order: "desc" }),
    api("/api/v1/events/", { session_id: id, sort_key: "timestamp", sort_order: "desc", limit: 50 }),
    clientNames(),
  ]);
  const stats = isAsync(session) ? await api(`/api/v1/sessions/${encodeURIComponent(id)}/stats`) : null;
  return { session, rounds, validations, models, events, names, stats };
}

function isAsync(session) {
  return session.config.mode === "async";
}

export async function renderSession(gen, id, params) {
  const data = await loadSession(id);
  const live = h("div", { class: "live-slot" });
  const sections = h("div");
  let header = sessionHeader(data.session);
  const render = (d) => {
    sections.replaceChildren(...sessionSections(d, params));
    const fresh = sessionHeader(d.session);
    header.replaceWith(fresh);
    header = fresh;
  };
  sections.replaceChildren(...sessionSections(data, params));
  if (!show(gen, header, live, sections)) return;
  if (data.session.status !== "Started") return;
  // Poll the live round every second while the session runs; refresh tables and plots when a round
  // changes and every few seconds (validations arrive after their round ended).
  let lastRound = null;
  let lastRefresh = Date.now();
  const tick = async () => {
    try {
      const { progress } = await api(`/api/v1/sessions/${encodeURIComponent(id)}/progress`);
      if (!isCurrent(gen)) return;
      live.replaceChildren(isAsync(data.session) ? asyncLiveCard(progress) : liveCard(progress, data.session.config.rounds));
      const roundId = progress ? progress.round_id : null;
      if (roundId !== lastRound || Date.now() - lastRefresh >= REFRESH_MS) {
        lastRound = roundId;
        lastRefresh = Date.now();
        const fresh = await loadSession(id);
        if (!isCurrent(gen)) return;
        render(fresh);
        if (fresh.session.status !== "Started") {
          live.replaceChildren();
          return; // ended: stop polling
        }
      }
    } catch (error) {
      if (error instanceof AuthRequired) return showError(gen, error);
      live.replaceChildren(card("Live round", h("p", { class: "error" }, `status unavailable: ${error.message}`)));
    }
    later(gen, tick, POLL_MS);
  };
  tick();
}

function stopButton(session) {
  const error = h("span", { class: "error small", hidden: true });
  const button = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        button.disabled = true;
        try {
          await apiPost(`/api/v1/sessions/${encodeURIComponent(session.id)}/stop`);
          window.dispatchEvent(new HashChangeEvent("hashchange"));
        } catch (failure) {
          error.textContent = errorText(failure);
          error.hidden = false;
          button.disabled = false;
        }
      },
    },
    "Stop session",
  );
  return h("span", { class: "stop" }, button, " ", error);
}

function sessionHeader(session) {
  const done = sessionDone(session);
  return h(
    "div",
    { class: "session-header" },
    h("div", { class: "crumbs" }, h("a", { href: "#/sessions" }, "Sessions"), " / "),
    h("h1", null, session.name || shortId(session.id), " ", pill(session.status), session.status === "Started" ? [" ", stopButton(session)] : null),
    h(
      "div",
      { class: "session-meta" },
      h("span", { class: "rounds-cell" }, progressBar(done.done, done.total), `${done.text} ${done.unit} done`),
      h("span", null, "created ", timeCell(session.created_at)),
      session.started_at ? h("span", null, "ran ", fmtDuration(between(session.started_at, session.finished_at))) : null,
      h("span", { class: "mono muted", title: "session id" }, session.id),
    ),
    session.error ? h("p", { class: "error" }, session.error) : null,
  );
}

function liveCard(progress, total) {
  if (!progress) {
    return card("Live round", h("p", { class: "muted" }, "Between rounds: the controller is committing a model, validating, or about to start the next round."));
  }
  const combiners = Object.entries(progress.combiners || {});
  return h(
    "section",
    { class: "card live" },
    h("h2", null, h("span", { class: "pulse" }), `Round ${roundNumber(progress.index)} of ${total} is running`, progress.attempt > 1 ? ` (attempt ${progress.attempt})` : ""),
    h(
      "div",
      { class: "stats compact" },
      liveStat("Stage", progress.stage),
      liveStat("Selected", fmtNumber(progress.clients_selected)),
      liveStat("Reported", fmtNumber(progress.updates_received)),
      liveStat("Rejected", fmtNumber(progress.updates_rejected)),
      liveStat("Elapsed", fmtDuration(progress.elapsed)),
    ),
    progressBar(progress.updates_received, progress.clients_selected, "updates received / clients selected"),
    combiners.length > 1
      ? table(
          [
            { label: "Combiner", cell: ([cid]) => cid },
            { label: "Stage", cell: ([, c]) => c.stage },
            { label: "Selected", class: "num", cell: ([, c]) => String(c.clients_selected) },
            { label: "Reported", class: "num", cell: ([, c]) => String(c.updates_received) },
            { label: "Rejected", class: "num", cell: ([, c]) => String(c.updates_rejected) },
            { label: "Last", cell: ([, c]) => c.message || c.client_id || "–" },
          ],
          combiners,
        )
      : null,
  );
}

function asyncLiveCard(progress) {
  // The version being built: its buffer's fill out of buffer_size, the clients training now.
  if (!progress) {
    return card("Live version", h("p", { class: "muted" }, "No version is being built right now: the controller is committing one, or is about to resume the session."));
  }
  return h(
    "section",
    { class: "card live" },
    h("h2", null, h("span", { class: "pulse" }), `Version ${roundNumber(progress.version)} is being built`, progress.attempt > 1 ? ` (attempt ${progress.attempt})` : ""),
    h(
      "div",
      { class: "stats compact" },
      liveStat("Stage", progress.stage),
      liveStat("Buffer", `${fmtNumber(progress.buffer_fill)} / ${fmtNumber(progress.buffer_size)}`),
      liveStat("Training", fmtNumber(progress.in_flight)),
      liveStat("Rejected", fmtNumber(progress.updates_rejected)),
      liveStat("This version", fmtDuration(progress.elapsed)),
      liveStat("Session", fmtDuration(progress.session_elapsed)),
    ),
    progressBar(progress.buffer_fill, progress.buffer_size, "updates in the buffer / updates per version"),
  );
}

function liveStat(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value));
}

function sessionSections({ session, rounds, validations, models, events, names, stats }, params) {
  const roundIndex = new Map(rounds.map((r) => [r.id, r.index]));
  const metrics = stats
    ? [axisToggle(session, params), metricCharts(validations, roundIndex, names, asyncAxis(stats, params))]
    : [metricCharts(validations, roundIndex, names)];
  return [
    stats ? card("Asynchronous training", asyncStats(stats)) : null,
    h("div", { class: "two-columns" }, card("Configuration", configList(session)), card("Models", modelSummary(session, models))),
    card("Validation metrics", ...metrics, exportLinks(session, validations, roundIndex, names)),
    card(isAsync(session) ? "Versions" : "Rounds", roundsTable(rounds, params, session, names)),
    card("Model trail", modelTrail(models, roundIndex, isAsync(session) ? "version" : "round")),
    card(
      "Events",
      eventsTable(events.result, names),
      events.count > events.result.length ? h("p", null, h("a", { href: `#/events?session_id=${encodeURIComponent(session.id)}` }, `All ${events.count} events of this session`)) : null,
    ),
  ];
}

function asyncStats(stats) {
  // The pace of versions, over the session and its last few, and how stale the folded updates were.
  const perSecond = (rate) => (rate === null ? "–" : `${fmtNumber(rate)} /s`);
  const rejected = Object.entries(stats.rejected);
  const { staleness } = stats;
  return [
    h(
      "div",
      { class: "stats compact async-stats" },
      liveStat("Versions", fmtNumber(stats.versions)),
      liveStat("Versions/s", perSecond(stats.versions_per_second)),
      liveStat(`Last ${stats.window}`, perSecond(stats.recent_versions_per_second)),
      liveStat("Updates/version", stats.updates_per_version === null ? "–" : fmtNumber(stats.updates_per_version)),
      liveStat("Staleness mean", staleness.mean === null ? "–" : fmtNumber(staleness.mean)),
      liveStat("Staleness max", staleness.max === null ? "–" : String(staleness.max)),
      liveStat("Rejected", fmtNumber(rejected.reduce((sum, [, n]) => sum + n, 0))),
    ),
    rejected.length ? h("p", { class: "rejected-reasons muted" }, "Rejected by reason: ", rejected.map(([reason, n]) => `${reason} ${n}`).join(", ")) : null,
    staleness.updates
      ? h(
          "div",
          { class: "charts" },
          histogram("Staleness of the folded updates", staleness.counts, {
            xLabel: "staleness τ (versions behind)",
            barTitle: (tau, count) => `τ = ${tau}: ${count} update${count === 1 ? "" : "s"}`,
          }),
        )
      : h("p", { class: "empty" }, "No update folded yet."),
  ];
}

function asyncAxis(stats, params) {
  // x of a validated version: its number, or its commit's seconds since the session started
  if (params.get("axis") !== "time") return { axis: BY_VERSION, xOf: roundNumber };
  const seconds = new Map(stats.per_version.map((v) => [v.version - 1, v.seconds]));
  return { axis: BY_WALL_TIME, xOf: (index) => seconds.get(index) };
}

function axisToggle(session, params) {
  // links, so the choice is in the address and survives the page's refreshes
  const byTime = params.get("axis") === "time";
  const link = (label, axis, active) => {
    const next = new URLSearchParams(params);
    if (axis) next.set("axis", axis);
    else next.delete("axis");
    const query = next.toString();
    const href = `#/sessions/${encodeURIComponent(session.id)}${query ? `?${query}` : ""}`;
    return h("a", { href, class: active ? "active" : null, "aria-current": active ? "true" : null }, label);
  };
  return h("p", { class: "axis-toggle" }, "Plot over ", link("versions", null, !byTime), " · ", link("wall time", "time", byTime));
}

function metricCharts(validations, roundIndex, names, { axis, xOf } = {}) {
  const metrics = metricNames(validations);
  if (!metrics.length) {
    return h("p", { class: "empty" }, "No validation metrics yet: they appear after each round when the session validates (config validate: true).");
  }
  return h(
    "div",
    { class: "charts" },
    metrics.map((metric) => {
      const series = clientSeries(validations, roundIndex, metric, names, xOf);
      return lineChart(metric, [...series, meanSeries(series)], { axis });
    }),
  );
}

function metricRows(validations, roundIndex, names) {
  // One row per validation: round (1-based), client name and id, then each metric.
  return validations
    .filter((v) => roundIndex.has(v.round_id))
    .map((v) => ({ round: roundNumber(roundIndex.get(v.round_id)), client: names.get(v.client_id) || v.client_id, client_id: v.client_id, metrics: v.metrics || {} }))
    .sort((a, b) => a.round - b.round || a.client.localeCompare(b.client));
}

function csvCell(value) {
  const text = value === undefined || value === null ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function metricsCsv(rows) {
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
  const lines = [["round", "client", "client_id", ...metrics].join(",")];
  for (const r of rows) lines.push([r.round, r.client, r.client_id, ...metrics.map((m) => r.metrics[m])].map(csvCell).join(","));
  return lines.join("\n") + "\n";
}

function exportLinks(session, validations, roundIndex, names) {
  const base = `${session.name || session.id}-metrics`;
  const rows = () => metricRows(validations, roundIndex, names);
  return h(
    "p",
    { class: "export" },
    "Export metrics: ",
    h("button", { type: "button", class: "text-button", onclick: () => saveBlob(new Blob([metricsCsv(rows())], { type: "text/csv" }), `${base}.csv`) }, "CSV"),
    " · ",
    h("button", { type: "button", class: "text-button", onclick: () => saveBlob(new Blob([JSON.stringify({ session_id: session.id, name: session.name, validations: rows() }, null, 2)], { type: "application/json" }), `${base}.json`) }, "JSON"),
  );
}

function configList(session) {
  const c = session.config;
  const kwargs = Object.entries(c.aggregator_kwargs || {});
  const settings = Object.entries(c.client_settings || {});
  if (isAsync(session)) return definitions(asyncConfig(c));
  return definitions([
    ["Rounds", String(c.rounds)],
    ["Round timeout", `${fmtNumber(c.round_timeout)} s`],
    ["Min clients", String(c.min_clients)],
    ["Requested clients", c.requested_clients === null ? "all" : String(c.requested_clients)],
    ["Buffer size", c.buffer_size === null ? "–" : String(c.buffer_size)],
    ["Aggregator", [c.aggregator, kwargs.length ? h("span", { class: "muted" }, ` (${kwargs.map(([k, v]) => `${k}=${v}`).join(", ")})`) : null]],
    ["Validate", c.validate ? "yes" : "no"],
    ["Helper", c.helper],
    ["Round retries", String(c.round_retries)],
    ["Client settings", settings.length ? h("code", { class: "wrap" }, JSON.stringify(c.client_settings)) : "–"],
  ]);
}

function asyncConfig(c) {
  const orDash = (value, unit = "") => (value === null ? "–" : `${fmtNumber(value)}${unit}`);
  return [
    ["Mode", "async (FedBuff)"],
    ["Max versions", orDash(c.max_versions)],
    ["Max duration", orDash(c.max_duration, " s")],
    ["Updates per version", c.buffer_size === null ? "the server's default" : String(c.buffer_size)],
    ["Max concurrency", c.max_concurrency === null ? "all clients" : String(c.max_concurrency)],
    ["Staleness", c.staleness === "polynomial" ? `polynomial, (1 + τ)^−${fmtNumber(c.staleness_exponent)}` : "constant"],
    ["Max staleness", c.max_staleness === null ? "no bound" : String(c.max_staleness)],
    ["Server learning rate", fmtNumber(c.server_lr)],
    ["Aggregator", c.aggregator],
    ["Validate", c.validate ? `every ${c.validate_every} version${c.validate_every === 1 ? "" : "s"}` : "no"],
    ["Helper", c.helper],
  ];
}

function modelSummary(session, models) {
  const latest = models[0];
  return definitions([
    ["Seed model", session.seed_model_id ? idCell(session.seed_model_id) : h("span", { class: "muted" }, NO_MODEL.split(".")[0])],
    ["Latest model", latest ? [idCell(latest.id), " ", downloadLink(latest)] : "none committed yet"],
    ["Models committed", String(models.length)],
    ["Started", timeCell(session.started_at, false)],
    ["Finished", timeCell(session.finished_at, false)],
  ]);
}

function modelTrail(models, roundIndex, unit) {
  // A long session's trail is one model per round: the latest few open, the rest behind a click.
  const trail = modelsTable(models.slice(0, ROUNDS_PAGE), roundIndex, "No model committed in this session yet.", unit);
  if (models.length <= ROUNDS_PAGE) return trail;
  return [
    trail,
    h("details", { class: "older" }, h("summary", null, `${models.length - ROUNDS_PAGE} older models`), modelsTable(models.slice(ROUNDS_PAGE), roundIndex, undefined, unit)),
  ];
}

function roundsTable(rounds, params, session, names) {
  // Long sessions page their rounds, from round 1, where people start reading.
  const skip = Number(params.get("skip") || 0);
  const shown = rounds.slice(skip, skip + ROUNDS_PAGE);
  const name = (id) => names.get(id) || id;
  return [
    table(
      [
        { label: isAsync(session) ? "Version" : "Round", class: "num", cell: (r) => String(roundNumber(r.index)) },
        { label: "Status", cell: (r) => (r.error ? h("span", { title: r.error }, pill(r.status), " ", h("span", { class: "error small" }, r.error)) : pill(r.status)) },
        { label: "Updates", class: "num", cell: (r) => String(r.clients.length) },
        isAsync(session) ? { label: "Staleness min/mean/max", class: "num", cell: stalenessRange } : null,
        { label: "Examples", class: "num", cell: (r) => fmtNumber(r.clients.reduce((sum, c) => sum + c.num_examples, 0)) },
        { label: "Duration", class: "num", cell: (r) => fmtDuration(between(r.started_at, r.finished_at)) },
        {
          label: "Train (mean)",
          class: "num",
          cell: (r) => (r.clients.length ? fmtDuration(r.clients.reduce((sum, c) => sum + c.train_seconds, 0) / r.clients.length) : "–"),
        },
        { label: "Rejected", cell: (r) => rejectedCell(r, name) },
        { label: "Model", cell: (r) => idCell(r.model_id) },
      ].filter(Boolean),
      shown,
      "No round has started yet.",
    ),
    rounds.length > ROUNDS_PAGE ? pager(params, rounds.length, ROUNDS_PAGE, `sessions/${encodeURIComponent(session.id)}`, ["← Earlier rounds", "Later rounds →"]) : null,
  ];
}

function stalenessRange(round) {
  const taus = round.clients.map((c) => c.staleness).filter((tau) => tau !== null && tau !== undefined);
  if (!taus.length) return "–";
  const mean = taus.reduce((a, b) => a + b, 0) / taus.length;
  return `${Math.min(...taus)} / ${mean.toFixed(2)} / ${Math.max(...taus)}`;
}

function rejectedCell(round, name) {
  const rejected = round.rejected || [];
  if (!rejected.length) return "0";
  const lines = rejected.map((x) => `${name(x.client_id)}: ${x.reason}`);
  return h(
    "details",
    { class: "rejected" },
    h("summary", { title: lines.join("\n") }, `${rejected.length} rejected`),
    h("ul", null, rejected.map((x) => h("li", null, h("strong", null, name(x.client_id)), ": ", x.reason))),
  );
}
