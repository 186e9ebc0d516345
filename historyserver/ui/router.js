// Hash routing: the page on screen, its lifetime (requests aborted, cleanups run) and navigation.

// The views import navigate from here: the entry module hands in the routes (start) so that this
// module need not import the views back.
let route = null; // (parts, params, ctx) => the page element for a hash
let current = null; // { controller: AbortController, cleanup: [fn] } of the page on screen

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(qs || "") };
}

function render() {
  if (current) {
    current.controller.abort();
    current.cleanup.forEach((fn) => fn());
  }
  current = { controller: new AbortController(), cleanup: [] };
  const main = document.getElementById("main");
  // Filters re-render the page: keep the focus (and caret) in the field being typed in.
  const active = document.activeElement;
  const keep = active && active.id && main.contains(active)
    ? { id: active.id, caret: typeof active.selectionStart === "number" ? active.selectionStart : null }
    : null;
  const { parts, params } = parseHash();
  const ctx = { signal: current.controller.signal, onCleanup: (fn) => current.cleanup.push(fn) };
  main.replaceChildren(route(parts, params, ctx));
  const again = keep && document.getElementById(keep.id);
  if (again) {
    again.focus();
    if (keep.caret !== null && typeof again.setSelectionRange === "function") again.setSelectionRange(keep.caret, keep.caret);
  }
}

export function navigate(hash, { replace = false } = {}) {
  if (replace) {
    history.replaceState(null, "", hash);
    render();
  } else {
    location.hash = hash;
  }
}

/** Shows the page `routes` picks for the hash, now and on every hash change. */
export function start(routes) {
  route = routes;
  window.addEventListener("hashchange", render);
  render();
}
