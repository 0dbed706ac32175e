/* #/models: the model trail, newest first, each model naming its parent back to a seed. */

import { TOKEN_KEY, api, apiUrl, authHeaders, fetchAll } from "../api.js";
import { card, h, idCell, pager, shaCell, table, timeCell } from "../dom.js";
import { fmtBytes, roundNumber, shortId } from "../format.js";
import { show } from "../router.js";

const PAGE_SIZE = 100;
export const NO_MODEL = "No model yet. Upload a seed model with `scaleout model upload PATH` (or APIClient.set_active_model).";

export function downloadLink(model) {
  const href = apiUrl(`/api/v1/models/${encodeURIComponent(model.id)}/download`).href;
  return h("a", { href, class: "download", download: `${model.id}.npz`, onclick: (event) => downloadWithToken(event, href, `${model.id}.npz`) }, "download");
}

async function downloadWithToken(event, href, fileName) {
  // A plain link cannot send the bearer token; with one, fetch the bytes and hand them over as a blob.
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  event.preventDefault();
  const response = await fetch(href, { headers: authHeaders() });
  if (!response.ok) {
    alert(`Download failed: ${response.status} ${response.statusText}`);
    return;
  }
  saveBlob(await response.blob(), fileName);
}

export function saveBlob(blob, fileName) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: fileName });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function modelsTable(models, roundIndex, empty = NO_MODEL, unit = "round") {
  // unit: "version" in an async session's trail, whose rounds are its versions
  const roundCell = (m) => (roundIndex && roundIndex.has(m.round_id) ? `${unit} ${roundNumber(roundIndex.get(m.round_id))}` : idCell(m.round_id));
  return table(
    [
      { label: "Model", cell: (m) => idCell(m.id) },
      { label: "Name", cell: (m) => m.name || "–" },
      { label: "Parent", cell: (m) => idCell(m.parent_id) },
      {
        label: "Session / round",
        cell: (m) =>
          m.session_id
            ? [h("a", { href: `#/sessions/${encodeURIComponent(m.session_id)}`, class: "mono", title: m.session_id }, shortId(m.session_id)), " / ", roundCell(m)]
            : h("span", { class: "muted" }, "seed"),
      },
      { label: "Size", class: "num", cell: (m) => fmtBytes(m.size) },
      { label: "sha256", cell: (m) => shaCell(m.sha256) },
      { label: "Committed", cell: (m) => timeCell(m.committed_at) },
      { label: "", cell: downloadLink },
    ],
    models,
    empty,
  );
}

export async function renderModels(gen, parts, params) {
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
