/* Formatting of times, durations, sizes and numbers for people. Rounds are numbered from 1 on the page:
 * the stored index is 0-based, roundNumber() is the one place that turns one into the other. */

export function roundNumber(index) {
  return index + 1;
}

export function sessionDone(session) {
  // Rounds done out of the session's rounds; an async session counts versions, out of max_versions when
  // it ends by count (by time only: no total).
  const versions = session.config.mode === "async";
  const total = versions ? session.config.max_versions : session.config.rounds;
  const done = session.rounds_done;
  return { done, total: total || done, text: total ? `${done} / ${total}` : String(done), unit: versions ? "versions" : "rounds" };
}

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

export function fmtTime(iso) {
  const t = parseTime(iso);
  if (!t) return "–";
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

export function secondsSince(iso) {
  const t = parseTime(iso);
  return t ? (Date.now() - t.getTime()) / 1000 : null;
}

export function fmtAgo(iso) {
  const seconds = secondsSince(iso);
  if (seconds === null) return "–";
  if (seconds < 5) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function between(startIso, endIso) {
  const start = parseTime(startIso);
  if (!start) return null;
  const end = endIso ? parseTime(endIso) : new Date();
  return end ? (end.getTime() - start.getTime()) / 1000 : null;
}

export function fmtBytes(bytes) {
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

export function fmtNumber(value) {
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

export function shortId(id) {
  // Ids start with a millisecond timestamp: ids made together share a prefix, so show the random tail.
  return id ? id.slice(-8) : "–";
}
