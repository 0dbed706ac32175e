/* Hash routing: each route renders into #view; a route change cancels the old view's timers, and a stale
 * render (its generation passed) never touches the page. */

import { ApiError, AuthRequired, TOKEN_KEY } from "./api.js";
import { card, h } from "./dom.js";

let generation = 0;
let timers = [];
let views = {};

export function isCurrent(gen) {
  return gen === generation;
}

export function later(gen, fn, ms) {
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

export function setViews(table) {
  views = table;
}

export function route() {
  generation += 1;
  timers.forEach(clearTimeout);
  timers = [];
  const gen = generation;
  const { parts, params } = parseHash();
  const name = parts[0] || "";
  const render = views[name];
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

export function show(gen, ...children) {
  if (!isCurrent(gen)) return false;
  document.getElementById("view").replaceChildren(...children.flat());
  return true;
}

export function errorText(error) {
  if (error instanceof AuthRequired) return "The API refused the token: reload the page to enter it again.";
  return error instanceof ApiError ? error.detail : String(error);
}

export function showError(gen, error) {
  if (!isCurrent(gen)) return;
  if (error instanceof AuthRequired) {
    showTokenForm(gen);
    return;
  }
  const title = error instanceof ApiError && error.status ? `Error ${error.status}` : "Error";
  show(gen, card(title, h("p", { class: "error" }, errorText(error)), h("button", { type: "button", onclick: route }, "Retry")));
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

export function every(gen, render, ms) {
  // Re-render the view after `ms`, for as long as it is the current one.
  later(gen, () => render().catch((error) => showError(gen, error)), ms);
}
