/* #/compare?ids=A,B&metric=M: one metric's mean over clients, per round, of several sessions overlaid. */

import { api, fetchAll } from "../api.js";
import { card, h, hint } from "../dom.js";
import { clientSeries, colour, lineChart, meanSeries, metricNames } from "../chart.js";
import { show } from "../router.js";

async function loadSession(id) {
  const [session, rounds, validations] = await Promise.all([
    api(`/api/v1/sessions/${encodeURIComponent(id)}`),
    fetchAll("/api/v1/rounds/", { session_id: id, sort_key: "index" }),
    fetchAll("/api/v1/validations/", { session_id: id, sort_key: "created_at" }),
  ]);
  return { session, roundIndex: new Map(rounds.map((r) => [r.id, r.index])), validations };
}

export async function renderCompare(gen, parts, params) {
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  if (ids.length < 2) {
    show(gen, h("h1", null, "Compare sessions"), card(null, hint("Tick two or more sessions on the Sessions page and press Compare selected.")));
    return;
  }
  const sessions = await Promise.all(ids.map(loadSession));
  const metrics = [...new Set(sessions.flatMap((x) => metricNames(x.validations)))].sort();
  const metric = metrics.includes(params.get("metric")) ? params.get("metric") : metrics[0];
  const picker = h(
    "select",
    {
      "aria-label": "metric",
      onchange: (event) => {
        const next = new URLSearchParams(params);
        next.set("metric", event.target.value);
        location.hash = `#/compare?${next}`;
      },
    },
    metrics.map((m) => h("option", { value: m, selected: m === metric }, m)),
  );
  const series = sessions.map((x, i) => {
    const mean = meanSeries(clientSeries(x.validations, x.roundIndex, metric, new Map()), x.session.name || x.session.id);
    return { ...mean, key: x.session.id, colour: colour(i), mean: false };
  });
  show(
    gen,
    h("h1", null, "Compare sessions"),
    card(null, metrics.length ? [h("div", { class: "toolbar" }, h("label", null, "Metric ", picker)), lineChart(`${metric} (mean over clients)`, series)] : hint("These sessions have no validation metrics.")),
  );
}
