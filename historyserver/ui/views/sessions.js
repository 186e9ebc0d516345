// The sessions list: filters, the table of sessions and paging through them.
import { enc, fetchJson, query } from "../api.js";
import { badge, errorBox, h, setCrumbs, table } from "../dom.js";
import { between, fmtDuration, fmtTime } from "../format.js";
import { navigate } from "../router.js";

const PAGE_SIZE = 50;

// Cursors are opaque and only go forward: the cursors of the pages before the current one are
// kept here to go back; the page number in the URL keeps the row numbers right on reload.
const sessionsPaging = { key: "", stack: [] };

function sessionHref(s) {
  return `#/s/${enc(s.namespace)}/${enc(s.clusterName)}/${enc(s.sessionName)}`;
}

function sessionDuration(s) {
  const end = s.endTime || (s.state === "running" ? new Date().toISOString() : s.lastHeartbeat);
  return fmtDuration(between(s.startTime, end));
}

export function sessionsPage(params, { signal }) {
  setCrumbs([["Sessions"]]);
  document.title = "Sessions · Ray History";
  const filters = {
    q: params.get("q") || "",
    namespace: params.get("namespace") || "",
    cluster: params.get("cluster") || "",
    state: params.get("state") || "",
  };
  const cursor = params.get("cursor") || "";
  const pageNo = cursor ? Math.max(2, Number(params.get("page")) || 2) : 1;
  const filterKey = JSON.stringify(filters);
  if (sessionsPaging.key !== filterKey || !cursor || sessionsPaging.stack.length !== pageNo - 1) sessionsPaging.stack = [];
  sessionsPaging.key = filterKey;

  const apply = (changes) => {
    const next = { ...filters, ...changes };
    navigate(`#/${query(next)}`, { replace: true });
  };
  let debounce;
  const search = h("input", {
    type: "search", id: "search", "data-search": true, value: filters.q,
    placeholder: "Search cluster, namespace, session…", "aria-label": "Search sessions",
    oninput: (e) => { clearTimeout(debounce); debounce = setTimeout(() => apply({ q: e.target.value }), 250); },
    onkeydown: (e) => {
      if (e.key === "Enter") { clearTimeout(debounce); apply({ q: e.target.value }); }
      if (e.key === "ArrowDown") { const row = document.querySelector("tbody tr[data-href]"); if (row) { e.preventDefault(); row.focus(); } }
    },
  });
  const textFilter = (name, label, list) => h("label", {}, label,
    h("input", {
      type: "text", id: `filter-${name}`, name, value: filters[name], list, size: 16, autocomplete: "off",
      onchange: (e) => apply({ [name]: e.target.value.trim() }),
      onkeydown: (e) => { if (e.key === "Enter") apply({ [name]: e.target.value.trim() }); },
    }));
  const stateSelect = h("select", { id: "filter-state", name: "state", onchange: (e) => apply({ state: e.target.value }) },
    [["", "any"], ["running", "live"], ["finished", "finished"], ["lost", "lost"]].map(([v, l]) =>
      h("option", { value: v, selected: filters.state === v }, l)));
  const nsList = h("datalist", { id: "ns-list" });
  const clusterList = h("datalist", { id: "cluster-list" });
  const hasFilters = Object.values(filters).some(Boolean);

  const status = h("p", { class: "muted", "aria-live": "polite" }, "Loading sessions…");
  const results = h("div", {});
  const pager = h("div", { class: "row pager" });
  const page = h("section", {},
    h("h1", {}, "Sessions"),
    h("form", { class: "row filters", role: "search", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "Search", search),
      textFilter("namespace", "Namespace", "ns-list"),
      textFilter("cluster", "Cluster", "cluster-list"),
      h("label", {}, "State", stateSelect),
      hasFilters && h("button", { type: "button", onclick: () => navigate("#/", { replace: true }) }, "Clear filters"),
      nsList, clusterList),
    status, results, pager);

  fetchJson(`api/sessions${query({ ...filters, limit: PAGE_SIZE, cursor })}`, signal).then((data) => {
    const sessions = data.sessions || [];
    const first = (pageNo - 1) * PAGE_SIZE;
    status.textContent = sessions.length
      ? `Sessions ${first + 1}–${first + sessions.length} of ${data.total ?? "?"}, newest first.`
      : "";
    const uniq = (f) => [...new Set(sessions.map(f))].sort();
    nsList.replaceChildren(...uniq((s) => s.namespace).map((v) => h("option", { value: v })));
    clusterList.replaceChildren(...uniq((s) => s.clusterName).map((v) => h("option", { value: v })));
    results.replaceChildren(table([
      { title: "Cluster", cell: (s) => h("a", { href: sessionHref(s), tabindex: -1 }, s.clusterName) },
      { title: "Namespace", cell: (s) => s.namespace },
      { title: "Session", cls: "mono", cell: (s) => s.sessionName },
      { title: "State", cell: (s) => badge(s.state) },
      { title: "Start", cls: "nowrap", cell: (s) => fmtTime(s.startTime) },
      { title: "Duration", cls: "num", cell: (s) => sessionDuration(s) },
      { title: "Ray", cell: (s) => s.rayVersion || "—" },
    ], sessions, {
      empty: hasFilters ? "No session matches these filters." : "No sessions stored yet. Start a collector beside a Ray cluster.",
      rowHref: (s) => sessionHref(s),
    }));
    const prev = h("button", {
      type: "button", disabled: !cursor,
      onclick: () => {
        // Without the earlier cursors (a reloaded page), go back to the newest sessions.
        const before = sessionsPaging.stack.length === pageNo - 1 ? sessionsPaging.stack.pop() : "";
        navigate(`#/${query({ ...filters, cursor: before, page: before ? pageNo - 1 : null })}`, { replace: true });
      },
    }, "← Newer");
    const next = h("button", {
      type: "button", disabled: !data.nextCursor,
      onclick: () => {
        sessionsPaging.stack.push(cursor);
        navigate(`#/${query({ ...filters, cursor: data.nextCursor, page: pageNo + 1 })}`, { replace: true });
      },
    }, "Older →");
    pager.replaceChildren(prev, next);
  }).catch((err) => {
    if (signal.aborted) return;
    status.replaceChildren(errorBox(err));
  });
  return page;
}
