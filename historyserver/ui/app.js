// Entry module of the Ray History UI: the routes, keyboard and click handling for every page, boot.
// Plain ES modules, no build step. Every URL is relative so the UI also works behind a path prefix.
import { navigate, start } from "./router.js";
import { TABS, sessionPage } from "./views/session.js";
import { sessionsPage } from "./views/sessions.js";

function isTyping(el) {
  return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA" || el.isContentEditable);
}

document.addEventListener("keydown", (e) => {
  const el = e.target;
  if (e.defaultPrevented) return;
  if (e.key === "/" && !isTyping(el) && !e.ctrlKey && !e.metaKey && !e.altKey) {
    const targets = [...document.querySelectorAll("[data-search]")];
    const target = targets[targets.length - 1];
    if (target) { e.preventDefault(); target.focus(); target.select(); }
    return;
  }
  if (e.key === "Escape" && isTyping(el)) { el.blur(); return; }
  if (el && el.matches && el.matches("tr[data-href]")) {
    if (e.key === "Enter") { e.preventDefault(); navigate(el.dataset.href); }
    const step = e.key === "ArrowDown" || e.key === "j" ? "nextElementSibling" : e.key === "ArrowUp" || e.key === "k" ? "previousElementSibling" : null;
    if (step && el[step]) { e.preventDefault(); el[step].focus(); }
  }
});

document.addEventListener("click", (e) => {
  const row = e.target.closest && e.target.closest("tr[data-href]");
  if (!row || e.target.closest("a, button, input, select") || window.getSelection().toString()) return;
  navigate(row.dataset.href);
});

// Pages are hash routes so links can be shared:
//   #/?q=&namespace=&cluster=&state=      sessions
//   #/s/<ns>/<cluster>/<session>[/<tab>]  one session (tab: overview|jobs|tasks|actors|events|logs)
//   .../logs?node=<id>&file=<name>         a log file
start((parts, params, ctx) => {
  if (parts[0] === "s" && parts.length >= 4) {
    const tab = TABS.includes(parts[4]) ? parts[4] : "overview";
    return sessionPage({ ns: parts[1], cluster: parts[2], session: parts[3] }, tab, params, ctx);
  }
  return sessionsPage(params, ctx);
});
