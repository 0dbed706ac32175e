/* scaleout-edge dashboard: vanilla JS, no dependencies, no build step (it must work offline).
 *
 * Hash routes: #/ (overview), #/sessions, #/sessions/ID, #/models, #/events.
 * Every API path is written out in full, as a string literal starting with /api/v1/, and resolved
 * against the page, so the dashboard also works behind a reverse proxy that serves the API under a
 * prefix. tests/api/test_dashboard.py parses these literals (and the object literal of query keys
 * that follows one) and checks each against the app's OpenAPI schema: keep calls in that form.
 */
"use strict";

(() => {
  const TOKEN_KEY = "scaleout.api.token";
  const POLL_MS = 1000; // live round status, only while a session is Started
  const REFRESH_MS = 5000; // tables and plots
  const HEALTH_MS = 10000;
  const MAX_LIMIT = 10000; // the API's largest page
  const STALE_SECONDS = 60; // "online" but silent for this long: probably gone
  // Beyond these a plot would be a smudge: it draws the band without dots, the line without markers.
  const MAX_DOT_ROUNDS = 60;
  const MAX_DOTS = 2000;
  const MAX_MARKED_ROUNDS = 40;
  const PAGE_SIZE = 100;

  class AuthRequired extends Error {}

  class ApiError extends Error {
    constructor(status, detail) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  // ---------------------------------------------------------------- API access

  function apiUrl(path, query) {
    // "../api/v1/..." from /dashboard/: the API next to the page, whatever prefix a proxy adds.
    const url = new URL(".." + path, document.baseURI);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
    }
    return url;
  }

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async function api(path, query) {
    let response;
    try {
      response = await fetch(apiUrl(path, query), { headers: { Accept: "application/json", ...authHeaders() } });
    } catch (error) {
      throw new ApiError(0, `the API did not answer (${error.message})`);
    }
    if (response.status === 401) throw new AuthRequired();
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (_) {
        /* not JSON: keep the status text */
      }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  async function orNull(promise, status = 404) {
    try {
      return await promise;
    } catch (error) {
      if (error instanceof ApiError && error.status === status) return null;
      throw error;
    }
  }

  // ---------------------------------------------------------------- DOM helpers

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

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttributes(el, attrs);
    return append(el, children);
  }

  const SVG_NS = "http://www.w3.org/2000/svg";

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttributes(el, attrs);
    return append(el, children);
  }

  function card(title, ...children) {
    return h("section", { class: "card" }, title ? h("h2", null, title) : null, children);
  }

  function table(columns, rows, empty = "Nothing yet.") {
    if (!rows.length) return h("p", { class: "empty" }, empty);
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        null,
        h("thead", null, h("tr", null, columns.map((c) => h("th", { class: c.class }, c.label)))),
        h(
          "tbody",
          null,
          rows.map((row) => h("tr", null, columns.map((c) => h("td", { class: c.class }, c.cell(row))))),
        ),
      ),
    );
  }

  function definitions(pairs) {
    return h(
      "dl",
      { class: "definitions" },
      pairs.filter(([, value]) => value !== undefined).map(([term, value]) => [h("dt", null, term), h("dd", null, value)]),
    );
  }

  // ---------------------------------------------------------------- formatting

  function parseTime(iso) {
    if (!iso) return null;
    let text = String(iso).replace(/(\.\d{3})\d+/, "$1"); // microseconds: not every engine parses them
    if (!/(Z|[+-]\d\d:?\d\d)$/.test(text)) text += "Z"; // the statestore stores UTC
    const time = Date.parse(text);
    return Number.isNaN(time) ? null : new Date(time);
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function fmtTime(iso) {
    const t = parseTime(iso);
    if (!t) return "–";
    return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  }

  function secondsSince(iso) {
    const t = parseTime(iso);
    return t ? (Date.now() - t.getTime()) / 1000 : null;
  }

  function fmtAgo(iso) {
    const seconds = secondsSince(iso);
    if (seconds === null) return "–";
    if (seconds < 5) return "just now";
    if (seconds < 90) return `${Math.round(seconds)} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function timeCell(iso, relative = true) {
    if (!iso) return "–";
    return h("time", { datetime: iso, title: fmtTime(iso) }, relative ? fmtAgo(iso) : fmtTime(iso));
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function between(startIso, endIso) {
    const start = parseTime(startIso);
    if (!start) return null;
    const end = endIso ? parseTime(endIso) : new Date();
    return end ? (end.getTime() - start.getTime()) / 1000 : null;
  }

  function fmtBytes(bytes) {
    if (!Number.isFinite(bytes)) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
  }

  function fmtNumber(value) {
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    const magnitude = Math.abs(value);
    if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(3);
    return String(Number(value.toPrecision(4)));
  }

  function shortId(id) {
    // Ids start with a millisecond timestamp: ids made together share a prefix, so show the random tail.
    return id ? id.slice(-8) : "–";
  }

  function idCell(id, href) {
    if (!id) return "–";
    return href
      ? h("a", { href, class: "mono", title: id }, shortId(id))
      : h("span", { class: "mono", title: id }, shortId(id));
  }

  function shaCell(sha) {
    return sha ? h("span", { class: "mono", title: sha }, sha.slice(0, 12)) : "–";
  }

  function pill(text, kind, title) {
    return h("span", { class: `pill pill-${kind || String(text).toLowerCase()}`, title }, text);
  }

  function nodeStatus(node) {
    // The stored status is what the combiner last wrote; a dead combiner cannot write "offline".
    const silent = secondsSince(node.last_seen);
    if (node.status === "online" && silent !== null && silent > STALE_SECONDS) {
      return pill("silent", "stale", `recorded online, but not seen for ${fmtDuration(silent)}`);
    }
    return pill(node.status);
  }

  function sessionLink(session) {
    return h("a", { href: `#/sessions/${encodeURIComponent(session.id)}` }, session.name || shortId(session.id));
  }

  function progressBar(done, total, title) {
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const bar = h("span", { class: "bar-fill" });
    bar.style.width = `${(fraction * 100).toFixed(1)}%`; // CSSOM, allowed by the page's CSP
    return h("span", { class: "bar", title: title || `${done} / ${total}` }, bar);
  }

  // ---------------------------------------------------------------- routing

  let generation = 0;
  let timers = [];

  function isCurrent(gen) {
    return gen === generation;
  }

  function later(gen, fn, ms) {
    // Route-scoped timer: leaving the view cancels it, and a stale render never touches the page.
    const timer = setTimeout(() => {
      timers = timers.filter((t) => t !== timer);
      if (isCurrent(gen)) fn();
    }, ms);
    timers.push(timer);
  }

  function parseHash() {
    const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(search || "") };
  }

  const VIEWS = {
    "": renderOverview,
    sessions: (gen, parts) => (parts.length > 1 ? renderSession(gen, parts[1]) : renderSessions(gen)),
    models: renderModels,
    events: renderEvents,
  };

  function route() {
    generation += 1;
    timers.forEach(clearTimeout);
    timers = [];
    const gen = generation;
    const { parts, params } = parseHash();
    const name = parts[0] || "";
    const render = VIEWS[name];
    for (const link of document.querySelectorAll("#nav a")) {
      link.classList.toggle("active", link.dataset.view === (name || "overview"));
    }
    document.getElementById("forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
    if (!render) {
      show(gen, card("Not found", h("p", null, "No such page. "), h("a", { href: "#/" }, "Back to the overview")));
      return;
    }
    render(gen, parts, params).catch((error) => showError(gen, error));
  }

  function show(gen, ...children) {
    if (!isCurrent(gen)) return false;
    document.getElementById("view").replaceChildren(...children.flat());
    return true;
  }

  function showError(gen, error) {
    if (!isCurrent(gen)) return;
    if (error instanceof AuthRequired) {
      showTokenForm(gen);
      return;
    }
    const detail = error instanceof ApiError ? error.detail : String(error);
    const title = error instanceof ApiError && error.status ? `Error ${error.status}` : "Error";
    show(gen, card(title, h("p", { class: "error" }, detail), h("button", { type: "button", onclick: route }, "Retry")));
  }

  function showTokenForm(gen) {
    const node = document.getElementById("token-form").content.cloneNode(true);
    const form = node.querySelector("form");
    const message = node.querySelector(".error");
    if (sessionStorage.getItem(TOKEN_KEY)) {
      message.textContent = "The API refused the token in use; enter the one it was started with.";
      message.hidden = false;
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, form.elements.token.value.trim());
      route();
    });
    if (show(gen, node)) form.elements.token.focus();
  }

  async function refreshHealth() {
    const badge = document.getElementById("health");
    try {
      const health = await api("/api/v1/health");
      badge.textContent = "API ok";
      badge.className = "pill pill-ok";
      badge.title = `statestore: ${health.statestore}`;
    } catch (error) {
      const detail = error instanceof ApiError ? error.detail : String(error);
      badge.textContent = error instanceof ApiError && error.status === 0 ? "API unreachable" : "API error";
      badge.className = "pill pill-failed";
      badge.title = detail;
    }
    setTimeout(refreshHealth, HEALTH_MS);
  }

  // ---------------------------------------------------------------- overview

  async function renderOverview(gen) {
    const [health, sessions, models, combiners, clients, onlineClients, active] = await Promise.all([
      orNull(api("/api/v1/health"), 503),
      api("/api/v1/sessions/", { sort_key: "created_at", sort_order: "desc", limit: 1 }),
      api("/api/v1/models/count"),
      api("/api/v1/combiners/", { sort_key: "name", limit: MAX_LIMIT }),
      api("/api/v1/clients/", { sort_key: "last_seen", sort_order: "desc", limit: 500 }),
      api("/api/v1/clients/count", { status: "online" }),
      orNull(api("/api/v1/packages/active")),
    ]);
    const combinerNames = new Map(combiners.result.map((c) => [c.id, c.name || c.id]));
    const latest = sessions.result[0];
    const onlineCombiners = combiners.result.filter((c) => c.status === "online").length;

    const stats = h(
      "div",
      { class: "stats" },
      stat("API", health ? pill("ok") : pill("error", "failed"), health ? "statestore reachable" : "statestore not answering"),
      stat(
        "Sessions",
        String(sessions.count),
        latest ? [sessionLink(latest), " ", pill(latest.status)] : "none yet",
      ),
      stat("Models", String(models.count), h("a", { href: "#/models" }, "model trail")),
      stat("Combiners", `${onlineCombiners} / ${combiners.count}`, "online / known"),
      stat("Clients", `${onlineClients.count} / ${clients.count}`, "online / known"),
    );

    const pkg = active
      ? definitions([
          ["Name", active.name],
          ["File", active.file_name],
          ["Helper", active.helper],
          ["Size", fmtBytes(active.size)],
          ["sha256", h("code", { class: "mono wrap" }, active.sha256)],
          ["Uploaded", timeCell(active.committed_at, false)],
          ["Description", active.description || undefined],
        ])
      : h("p", { class: "empty" }, "No compute package is active. Upload one with `scaleout package set` or APIClient.set_active_package.");

    const activeSha = active ? active.sha256 : null;
    show(
      gen,
      stats,
      card("Active compute package", pkg),
      card(
        "Combiners",
        table(
          [
            { label: "Name", cell: (c) => h("span", { title: c.id }, c.name || c.id) },
            { label: "Address", cell: (c) => h("span", { class: "mono" }, `${c.address}:${c.port}`) },
            { label: "Status", cell: nodeStatus },
            { label: "Last seen", cell: (c) => timeCell(c.last_seen) },
            { label: "Clients", class: "num", cell: (c) => String(c.client_count) },
          ],
          combiners.result,
          "No combiner has registered. Start one with `scaleout combiner start`.",
        ),
      ),
      card(
        clients.count > clients.result.length
          ? `Clients (the ${clients.result.length} seen most recently of ${clients.count})`
          : "Clients",
        table(
          [
            { label: "Name", cell: (c) => h("span", { title: c.id }, c.name || c.id) },
            { label: "Status", cell: nodeStatus },
            { label: "Combiner", cell: (c) => (c.combiner_id ? combinerNames.get(c.combiner_id) || c.combiner_id : "–") },
            { label: "Last seen", cell: (c) => timeCell(c.last_seen) },
            {
              label: "Package",
              cell: (c) =>
                c.package_checksum
                  ? [shaCell(c.package_checksum), c.package_checksum === activeSha ? pill("active", "ok") : pill("other", "stale")]
                  : "–",
            },
          ],
          clients.result,
          "No client has connected yet.",
        ),
      ),
    );
    later(gen, () => renderOverview(gen).catch((error) => showError(gen, error)), REFRESH_MS);
  }

  function stat(label, value, note) {
    return h("div", { class: "stat card" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), h("div", { class: "stat-note" }, note));
  }

  // ---------------------------------------------------------------- sessions

  async function renderSessions(gen) {
    const sessions = await api("/api/v1/sessions/", { sort_key: "created_at", sort_order: "desc", limit: MAX_LIMIT });
    show(
      gen,
      h("h1", null, "Sessions"),
      card(
        null,
        table(
          [
            { label: "Name", cell: sessionLink },
            { label: "Status", cell: (x) => pill(x.status) },
            {
              label: "Rounds",
              cell: (x) => h("span", { class: "rounds-cell" }, progressBar(x.rounds_done, x.config.rounds), `${x.rounds_done} / ${x.config.rounds}`),
            },
            { label: "Aggregator", cell: (x) => x.config.aggregator },
            { label: "Created", cell: (x) => timeCell(x.created_at) },
            { label: "Duration", class: "num", cell: (x) => fmtDuration(between(x.started_at, x.finished_at)) },
            { label: "Id", cell: (x) => idCell(x.id) },
          ],
          sessions.result,
          "No session yet. Start one with `scaleout session start` or APIClient.start_session.",
        ),
      ),
    );
    if (sessions.result.some((x) => x.status === "Started")) {
      later(gen, () => renderSessions(gen).catch((error) => showError(gen, error)), REFRESH_MS);
    }
  }

  async function fetchAll(path, query) {
    // Validations of a long session can pass one page: read pages until the count is reached.
    const first = await api(path, { ...query, limit: MAX_LIMIT, skip: 0 });
    const items = first.result;
    while (items.length < first.count) {
      const page = await api(path, { ...query, limit: MAX_LIMIT, skip: items.length });
      if (!page.result.length) break;
      items.push(...page.result);
    }
    return items;
  }

  async function loadSession(id) {
    const [session, rounds, validations, models, events] = await Promise.all([
      api(`/api/v1/sessions/${encodeURIComponent(id)}`),
      fetchAll("/api/v1/rounds/", { session_id: id, sort_key: "index" }),
      fetchAll("/api/v1/validations/", { session_id: id, sort_key: "created_at" }),
      api("/api/v1/models/", { session_id: id, sort_key: "committed_at", sort_order: "desc", limit: MAX_LIMIT }),
      api("/api/v1/events/", { session_id: id, sort_key: "timestamp", sort_order: "desc", limit: 50 }),
    ]);
    return { session, rounds, validations, models: models.result, events };
  }

  async function renderSession(gen, id) {
    const data = await loadSession(id);
    const live = h("div", { class: "live-slot" });
    const sections = h("div");
    const render = (d) => sections.replaceChildren(...sessionSections(d));
    render(data);
    if (!show(gen, sessionHeader(data.session), live, sections)) return;

    if (data.session.status !== "Started") return;
    // Poll the live round every second while the session runs; refresh tables and plots when a round
    // changes and every few seconds (validations arrive after their round ended).
    let lastRound = null;
    let lastRefresh = Date.now();
    const tick = async () => {
      try {
        const { progress } = await api(`/api/v1/sessions/${encodeURIComponent(id)}/progress`);
        if (!isCurrent(gen)) return;
        live.replaceChildren(liveCard(progress));
        const roundId = progress ? progress.round_id : null;
        if (roundId !== lastRound || Date.now() - lastRefresh >= REFRESH_MS) {
          lastRound = roundId;
          lastRefresh = Date.now();
          const fresh = await loadSession(id);
          if (!isCurrent(gen)) return;
          render(fresh);
          const header = document.querySelector(".session-header");
          if (header) header.replaceWith(sessionHeader(fresh.session));
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

  function sessionHeader(session) {
    const total = session.config.rounds;
    return h(
      "div",
      { class: "session-header" },
      h("div", { class: "crumbs" }, h("a", { href: "#/sessions" }, "Sessions"), " / "),
      h("h1", null, session.name || shortId(session.id), " ", pill(session.status)),
      h(
        "div",
        { class: "session-meta" },
        h("span", { class: "rounds-cell" }, progressBar(session.rounds_done, total), `${session.rounds_done} / ${total} rounds`),
        h("span", null, "created ", timeCell(session.created_at)),
        session.started_at ? h("span", null, "ran ", fmtDuration(between(session.started_at, session.finished_at))) : null,
        h("span", { class: "mono muted", title: "session id" }, session.id),
      ),
      session.error ? h("p", { class: "error" }, session.error) : null,
    );
  }

  function liveCard(progress) {
    if (!progress) {
      return card("Live round", h("p", { class: "muted" }, "Between rounds: the controller is committing a model, validating, or about to start the next round."));
    }
    const combiners = Object.entries(progress.combiners || {});
    return h(
      "section",
      { class: "card live" },
      h("h2", null, h("span", { class: "pulse" }), `Round ${progress.index} is running`, progress.attempt > 1 ? ` (attempt ${progress.attempt})` : ""),
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

  function liveStat(label, value) {
    return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value));
  }

  function sessionSections({ session, rounds, validations, models, events }) {
    const roundIndex = new Map(rounds.map((r) => [r.id, r.index]));
    return [
      h(
        "div",
        { class: "two-columns" },
        card("Configuration", configList(session)),
        card("Models", modelSummary(session, models)),
      ),
      card("Validation metrics", metricCharts(validations, roundIndex)),
      card("Rounds", roundsTable(rounds)),
      card("Model trail", modelsTable(models, roundIndex)),
      card("Events", eventsTable(events.result), events.count > events.result.length ? h("p", null, h("a", { href: `#/events?session_id=${encodeURIComponent(session.id)}` }, `All ${events.count} events of this session`)) : null),
    ];
  }

  function configList(session) {
    const c = session.config;
    const kwargs = Object.entries(c.aggregator_kwargs || {});
    const settings = Object.entries(c.client_settings || {});
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

  function modelSummary(session, models) {
    const latest = models[0];
    return definitions([
      ["Seed model", session.seed_model_id ? idCell(session.seed_model_id) : "–"],
      ["Latest model", latest ? [idCell(latest.id), " ", downloadLink(latest)] : "none committed yet"],
      ["Models committed", String(models.length)],
      ["Started", timeCell(session.started_at, false)],
      ["Finished", timeCell(session.finished_at, false)],
    ]);
  }

  function roundsTable(rounds) {
    return table(
      [
        { label: "Round", class: "num", cell: (r) => String(r.index) },
        { label: "Status", cell: (r) => (r.error ? h("span", { title: r.error }, pill(r.status), " ", h("span", { class: "error small" }, r.error)) : pill(r.status)) },
        { label: "Updates", class: "num", cell: (r) => String(r.clients.length) },
        { label: "Examples", class: "num", cell: (r) => fmtNumber(r.clients.reduce((sum, c) => sum + c.num_examples, 0)) },
        { label: "Duration", class: "num", cell: (r) => fmtDuration(between(r.started_at, r.finished_at)) },
        {
          label: "Train (mean)",
          class: "num",
          cell: (r) => (r.clients.length ? fmtDuration(r.clients.reduce((sum, c) => sum + c.train_seconds, 0) / r.clients.length) : "–"),
        },
        { label: "Rejected", cell: rejectedCell },
        { label: "Model", cell: (r) => idCell(r.model_id) },
        { label: "ε (DP)", class: "num", cell: (r) => (r.epsilon == null ? "–" : r.epsilon.toPrecision(3)) },
      ],
      rounds,
      "No round has started yet.",
    );
  }

  function rejectedCell(round) {
    const rejected = round.rejected || [];
    if (!rejected.length) return "0";
    const lines = rejected.map((x) => `${x.client_id}: ${x.reason}`);
    return h(
      "details",
      { class: "rejected" },
      h("summary", { title: lines.join("\n") }, `${rejected.length} rejected`),
      h("ul", null, rejected.map((x) => h("li", null, h("strong", null, x.client_id), ": ", x.reason))),
    );
  }

  function downloadLink(model) {
    const href = apiUrl(`/api/v1/models/${encodeURIComponent(model.id)}/download`).href;
    return h("a", { href, class: "download", download: `${model.id}.npz`, onclick: (event) => downloadWithToken(event, href, model.id) }, "download");
  }

  async function downloadWithToken(event, href, id) {
    // A plain link cannot send the bearer token; with one, fetch the bytes and hand them over as a blob.
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    event.preventDefault();
    const response = await fetch(href, { headers: authHeaders() });
    if (!response.ok) {
      alert(`Download failed: ${response.status} ${response.statusText}`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const link = h("a", { href: url, download: `${id}.npz` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  function modelsTable(models, roundIndex) {
    return table(
      [
        { label: "Model", cell: (m) => idCell(m.id) },
        { label: "Name", cell: (m) => m.name || "–" },
        { label: "Parent", cell: (m) => idCell(m.parent_id) },
        {
          label: "Session / round",
          cell: (m) =>
            m.session_id
              ? [h("a", { href: `#/sessions/${encodeURIComponent(m.session_id)}`, class: "mono", title: m.session_id }, shortId(m.session_id)), " / ", roundIndex && roundIndex.has(m.round_id) ? String(roundIndex.get(m.round_id)) : idCell(m.round_id)]
              : h("span", { class: "muted" }, "seed"),
        },
        { label: "Size", class: "num", cell: (m) => fmtBytes(m.size) },
        { label: "sha256", cell: (m) => shaCell(m.sha256) },
        { label: "Committed", cell: (m) => timeCell(m.committed_at) },
        { label: "", cell: downloadLink },
      ],
      models,
      "No model yet. Upload a seed model with `scaleout model set` or APIClient.set_active_model.",
    );
  }

  // ---------------------------------------------------------------- plots

  function metricSeries(validations, roundIndex) {
    // metric name -> round index -> [{client, value}], scalar (finite number) metrics only
    const byMetric = new Map();
    for (const v of validations) {
      const x = roundIndex.get(v.round_id);
      if (x === undefined) continue;
      for (const [name, value] of Object.entries(v.metrics || {})) {
        if (typeof value !== "number" || !Number.isFinite(value)) continue;
        if (!byMetric.has(name)) byMetric.set(name, new Map());
        const rounds = byMetric.get(name);
        if (!rounds.has(x)) rounds.set(x, []);
        rounds.get(x).push({ client: v.client_id, value });
      }
    }
    return [...byMetric.keys()].sort().map((name) => ({
      name,
      points: [...byMetric.get(name).entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([x, values]) => {
          const numbers = values.map((v) => v.value);
          return {
            x,
            values,
            mean: numbers.reduce((a, b) => a + b, 0) / numbers.length,
            min: Math.min(...numbers),
            max: Math.max(...numbers),
          };
        }),
    }));
  }

  function metricCharts(validations, roundIndex) {
    const series = metricSeries(validations, roundIndex);
    if (!series.length) {
      return h("p", { class: "empty" }, "No validation metrics yet: they appear after each round when the session validates (config validate: true).");
    }
    return h(
      "div",
      { class: "charts" },
      series.map((serie) => h("figure", { class: "chart" }, h("figcaption", null, serie.name), lineChart(serie))),
    );
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

  function lineChart({ name, points }) {
    const W = 560;
    const H = 280;
    const M = { top: 34, right: 18, bottom: 40, left: 64 };
    const plotW = W - M.left - M.right;
    const plotH = H - M.top - M.bottom;

    const xs = points.map((p) => p.x);
    let xLo = Math.min(...xs);
    let xHi = Math.max(...xs);
    if (xLo === xHi) {
      xLo -= 1;
      xHi += 1;
    }
    const xStep = Math.max(1, Math.round(niceStep(xHi - xLo, 8)));
    const xTicks = [];
    for (let t = Math.ceil(xLo / xStep) * xStep; t <= xHi; t += xStep) xTicks.push(t);
    const y = niceDomain(Math.min(...points.map((p) => p.min)), Math.max(...points.map((p) => p.max)), 5);

    const px = (x) => M.left + ((x - xLo) / (xHi - xLo)) * plotW;
    const py = (v) => M.top + plotH - ((v - y.lo) / (y.hi - y.lo)) * plotH;
    const f = (n) => n.toFixed(1);

    const svg = s("svg", {
      viewBox: `0 0 ${W} ${H}`,
      class: "chart-svg",
      role: "img",
      "aria-label": `${name}: mean over clients per round`,
      preserveAspectRatio: "xMidYMid meet",
    });

    // grid and axes
    const grid = s("g", { class: "grid" });
    for (const t of y.ticks) {
      grid.append(
        s("line", { x1: M.left, x2: W - M.right, y1: f(py(t)), y2: f(py(t)) }),
        s("text", { x: M.left - 8, y: f(py(t)), class: "tick tick-y", "dominant-baseline": "middle", "text-anchor": "end" }, tickLabel(t, y.step)),
      );
    }
    for (const t of xTicks) {
      grid.append(
        s("line", { class: "tick-mark", x1: f(px(t)), x2: f(px(t)), y1: M.top + plotH, y2: M.top + plotH + 5 }),
        s("text", { x: f(px(t)), y: M.top + plotH + 18, class: "tick", "text-anchor": "middle" }, String(t)),
      );
    }
    grid.append(
      s("line", { class: "axis", x1: M.left, x2: W - M.right, y1: M.top + plotH, y2: M.top + plotH }),
      s("line", { class: "axis", x1: M.left, x2: M.left, y1: M.top, y2: M.top + plotH }),
      s("text", { x: M.left + plotW / 2, y: H - 6, class: "axis-label", "text-anchor": "middle" }, "round"),
      s("text", { x: 12, y: M.top + plotH / 2, class: "axis-label", "text-anchor": "middle", "dominant-baseline": "middle", transform: `rotate(-90 12 ${M.top + plotH / 2})` }, name),
    );
    svg.append(grid);

    // min–max band over clients
    if (points.length > 1) {
      const upper = points.map((p) => `${f(px(p.x))},${f(py(p.max))}`);
      const lower = points.map((p) => `${f(px(p.x))},${f(py(p.min))}`).reverse();
      svg.append(s("polygon", { class: "band", points: [...upper, ...lower].join(" ") }));
    } else {
      const p = points[0];
      svg.append(s("rect", { class: "band", x: f(px(p.x) - 4), y: f(py(p.max)), width: 8, height: f(Math.max(1, py(p.min) - py(p.max))) }));
    }

    // one dot per client per round
    const total = points.reduce((n, p) => n + p.values.length, 0);
    const dotted = points.length <= MAX_DOT_ROUNDS && total <= MAX_DOTS;
    if (dotted) {
      const dots = s("g", { class: "clients" });
      for (const p of points) {
        for (const v of p.values) {
          dots.append(s("circle", { cx: f(px(p.x)), cy: f(py(v.value)), r: 2.4 }, s("title", null, `${v.client}, round ${p.x}: ${fmtNumber(v.value)}`)));
        }
      }
      svg.append(dots);
    }

    // the mean line
    svg.append(s("polyline", { class: "mean", points: points.map((p) => `${f(px(p.x))},${f(py(p.mean))}`).join(" ") }));
    if (points.length <= MAX_MARKED_ROUNDS) {
      const marks = s("g", { class: "mean-points" });
      for (const p of points) marks.append(s("circle", { cx: f(px(p.x)), cy: f(py(p.mean)), r: 3.2 }));
      svg.append(marks);
    }

    // hover columns: a tooltip with the round's numbers, and a highlight
    const hover = s("g", { class: "hover" });
    const half = points.length > 1 ? (px(points[1].x) - px(points[0].x)) / 2 : plotW / 2;
    for (const p of points) {
      const detail = [
        `round ${p.x}`,
        `mean ${fmtNumber(p.mean)} over ${p.values.length} client${p.values.length === 1 ? "" : "s"}`,
        `min ${fmtNumber(p.min)}  max ${fmtNumber(p.max)}`,
        ...p.values.slice(0, 12).map((v) => `  ${v.client}: ${fmtNumber(v.value)}`),
        p.values.length > 12 ? `  … ${p.values.length - 12} more` : null,
      ].filter(Boolean);
      const x0 = Math.max(M.left, px(p.x) - half);
      const x1 = Math.min(W - M.right, px(p.x) + half);
      hover.append(s("rect", { x: f(x0), y: M.top, width: f(Math.max(1, x1 - x0)), height: plotH }, s("title", null, detail.join("\n"))));
    }
    svg.append(hover);

    // legend, above the plot area
    const legend = s("g", { class: "legend", transform: `translate(${M.left}, 14)` });
    legend.append(
      s("line", { class: "mean", x1: 0, x2: 18, y1: 0, y2: 0 }),
      s("text", { x: 24, y: 0, "dominant-baseline": "middle" }, "mean over clients"),
      s("rect", { class: "band", x: 150, y: -6, width: 18, height: 12 }),
      s("text", { x: 174, y: 0, "dominant-baseline": "middle" }, "min–max"),
    );
    if (dotted) {
      legend.append(s("circle", { class: "client-dot", cx: 250, cy: 0, r: 3 }), s("text", { x: 258, y: 0, "dominant-baseline": "middle" }, "one client"));
    }
    const last = points[points.length - 1];
    legend.append(s("text", { x: plotW, y: 0, "dominant-baseline": "middle", "text-anchor": "end", class: "latest" }, `latest ${fmtNumber(last.mean)}`));
    svg.append(legend);
    return svg;
  }

  // ---------------------------------------------------------------- models and events

  function pager(params, count, pageSize, base) {
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
      skip > 0 ? h("a", { href: link(Math.max(0, skip - pageSize)) }, "← Newer") : h("span", { class: "muted" }, "← Newer"),
      h("span", { class: "muted" }, count ? `${skip + 1}–${Math.min(count, skip + pageSize)} of ${count}` : "0"),
      skip + pageSize < count ? h("a", { href: link(skip + pageSize) }, "Older →") : h("span", { class: "muted" }, "Older →"),
    );
  }

  async function renderModels(gen, parts, params) {
    const skip = Number(params.get("skip") || 0);
    const models = await api("/api/v1/models/", { sort_key: "committed_at", sort_order: "desc", limit: PAGE_SIZE, skip: skip });
    // Round indexes for the sessions on this page (usually one or two), so the trail reads "round 3".
    const sessionIds = [...new Set(models.result.map((m) => m.session_id).filter(Boolean))].slice(0, 10);
    const rounds = await Promise.all(sessionIds.map((id) => fetchAll("/api/v1/rounds/", { session_id: id, sort_key: "index" })));
    const roundIndex = new Map(rounds.flat().map((r) => [r.id, r.index]));
    show(
      gen,
      h("h1", null, "Model trail"),
      card(
        null,
        h("p", { class: "muted" }, "Every committed model, newest first; each names its parent, back to a seed model."),
        modelsTable(models.result, roundIndex),
        pager(params, models.count, PAGE_SIZE, "models"),
      ),
    );
  }

  const LEVELS = ["debug", "info", "warning", "error"];

  async function renderEvents(gen, parts, params) {
    const skip = Number(params.get("skip") || 0);
    const level = params.get("level") || "";
    const sessionId = params.get("session_id") || "";
    const events = await api("/api/v1/events/", {
      level: level,
      session_id: sessionId,
      sort_key: "timestamp",
      sort_order: "desc",
      limit: PAGE_SIZE,
      skip,
    });
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
        eventsTable(events.result),
        pager(params, events.count, PAGE_SIZE, "events"),
      ),
    );
  }

  function eventsTable(events) {
    return table(
      [
        { label: "Time", cell: (e) => timeCell(e.timestamp, false) },
        { label: "Level", cell: (e) => pill(e.level, `level-${e.level}`) },
        { label: "Type", cell: (e) => h("span", { class: "mono" }, e.type) },
        { label: "Message", class: "message", cell: (e) => e.message },
        { label: "Session", cell: (e) => idCell(e.session_id, e.session_id ? `#/sessions/${encodeURIComponent(e.session_id)}` : null) },
        { label: "Client", cell: (e) => e.client_id || "–" },
        { label: "Combiner", cell: (e) => e.combiner_id || "–" },
      ],
      events,
      "No events.",
    );
  }

  // ---------------------------------------------------------------- start

  document.getElementById("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  window.addEventListener("hashchange", route);
  refreshHealth();
  route();
})();
