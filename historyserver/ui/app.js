// Ray History built-in UI: a sessions browser and a per-session page with a log browser.
// Plain JS, no build step. Every URL is relative so the UI also works behind a path prefix;
// pages are hash routes so links can be shared:
//   #/?q=&namespace=&cluster=&state=      sessions
//   #/s/<ns>/<cluster>/<session>[/<tab>]  one session (tab: overview|jobs|tasks|actors|events|logs)
//   .../logs?node=<id>&file=<name>         a log file
"use strict";

const PAGE_SIZE = 50;
const FOLLOW_INTERVAL_MS = 2000;
const TABS = ["overview", "jobs", "tasks", "actors", "events", "logs"];

// ---------------------------------------------------------------- helpers

/** Builds an element: h("a", {href: "#/"}, "text", child). Text is always set as text. */
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function fetchText(url, signal) {
  const resp = await fetch(url, { signal, headers: { Accept: "application/json, text/plain" } });
  const body = await resp.text();
  if (!resp.ok) {
    let message = body;
    try {
      const json = JSON.parse(body);
      message = json.error || json.msg || json.message || body;
    } catch (_) { /* not JSON: keep the text */ }
    throw new Error(`${resp.status} from ${url}${message ? `: ${message.slice(0, 300)}` : ""}`);
  }
  return body;
}

async function fetchJson(url, signal) {
  return JSON.parse(await fetchText(url, signal));
}

/** Unwraps Ray's `{result, msg, data}` envelope. */
function rayData(json) {
  if (json && json.result === false) throw new Error(json.msg || "request failed");
  return json && "data" in json ? json.data : json;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function enc(s) { return encodeURIComponent(s); }

function toDate(value) {
  if (value === null || value === undefined || value === "" || value === 0) return null;
  if (typeof value === "number") return new Date(value > 1e12 ? value : value * 1000);
  if (/^\d+(\.\d+)?$/.test(value)) return toDate(Number(value));
  const d = new Date(value);
  return isNaN(d) ? null : d;
}

function fmtTime(value) {
  const d = toDate(value);
  if (!d) return "—";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || isNaN(ms) || ms < 0) return "—";
  const s = Math.round(ms / 1000);
  if (s < 1) return `${Math.max(0, Math.round(ms))}ms`;
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${m % 60}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

function between(start, end) {
  const a = toDate(start);
  const b = toDate(end);
  return a && b ? b - a : null;
}

function shortId(id) { return id && id.length > 14 ? `${id.slice(0, 12)}…` : id || "—"; }

const BADGES = {
  running: ["live", "ok"], finished: ["finished", "idle"], lost: ["lost", "warn"],
  FINISHED: ["finished", "ok"], SUCCEEDED: ["succeeded", "ok"], ALIVE: ["alive", "ok"],
  RUNNING: ["running", "ok"], FAILED: ["failed", "bad"], STOPPED: ["stopped", "warn"],
  DEAD: ["dead", "idle"], PENDING: ["pending", "warn"],
};

function badge(state) {
  const [label, kind] = BADGES[state] || [String(state || "unknown").toLowerCase(), "idle"];
  return h("span", { class: `badge ${kind}`, title: state }, label);
}

function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}

function table(columns, rows, { empty = "Nothing here.", rowHref } = {}) {
  const thead = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.cls && c.cls.includes("num") ? "num" : null, scope: "col" }, c.title))));
  const body = h("tbody", {});
  if (!rows.length) body.append(h("tr", {}, h("td", { class: "empty", colspan: columns.length }, empty)));
  for (const row of rows) {
    const href = rowHref && rowHref(row);
    const tr = h("tr", href ? { "data-href": href, tabindex: 0 } : {});
    for (const c of columns) tr.append(h("td", { class: c.cls }, c.cell(row)));
    body.append(tr);
  }
  return h("div", { class: "table-wrap panel" }, h("table", {}, thead, body));
}

function setCrumbs(parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  parts.forEach(([label, href], i) => {
    if (i) nav.append(h("span", { class: "sep", "aria-hidden": "true" }, "/"));
    nav.append(href ? h("a", { href }, label) : h("span", { "aria-current": "page" }, label));
  });
}

// ---------------------------------------------------------------- routing

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
  let page;
  if (parts[0] === "s" && parts.length >= 4) {
    const tab = TABS.includes(parts[4]) ? parts[4] : "overview";
    page = sessionPage({ ns: parts[1], cluster: parts[2], session: parts[3] }, tab, params, ctx);
  } else {
    page = sessionsPage(params, ctx);
  }
  main.replaceChildren(page);
  const again = keep && document.getElementById(keep.id);
  if (again) {
    again.focus();
    if (keep.caret !== null && typeof again.setSelectionRange === "function") again.setSelectionRange(keep.caret, keep.caret);
  }
}

function navigate(hash, { replace = false } = {}) {
  if (replace) {
    history.replaceState(null, "", hash);
    render();
  } else {
    location.hash = hash;
  }
}

// ---------------------------------------------------------------- sessions list

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

function sessionsPage(params, { signal }) {
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

// ---------------------------------------------------------------- one session

function sessionPage(ref, tab, params, ctx) {
  const base = `sessions/${enc(ref.ns)}/${enc(ref.cluster)}/${enc(ref.session)}/`;
  const home = `#/s/${enc(ref.ns)}/${enc(ref.cluster)}/${enc(ref.session)}`;
  setCrumbs([["Sessions", "#/"], [ref.ns, `#/${query({ namespace: ref.ns })}`],
    [ref.cluster, `#/${query({ namespace: ref.ns, cluster: ref.cluster })}`], [ref.session]]);
  document.title = `${ref.cluster} · ${ref.session} · Ray History`;

  const head = h("div", {}, h("h1", {}, ref.session), h("p", { class: "muted" }, "Loading session…"));
  const body = h("div", { class: "tab-body" });
  const tabs = h("nav", { class: "tabs", "aria-label": "Session sections" },
    TABS.map((t) => h("a", { href: t === "overview" ? home : `${home}/${t}`, "aria-current": t === tab ? "page" : null },
      t[0].toUpperCase() + t.slice(1))));
  const page = h("section", {}, head, tabs, body);

  // Tabs other than the overview keep the header short so tables and logs fit on a laptop screen.
  const s = { ref, base, home, ctx, info: null, compact: tab !== "overview" };
  fetchJson(`api/sessions/${enc(ref.ns)}/${enc(ref.cluster)}/${enc(ref.session)}`, ctx.signal).then((info) => {
    s.info = info;
    head.replaceChildren(sessionHeader(s));
    const view = { overview: overviewTab, jobs: jobsTab, tasks: tasksTab, actors: actorsTab, events: eventsTab, logs: logsTab }[tab];
    body.replaceChildren(view(s, params));
  }).catch((err) => {
    if (ctx.signal.aborted) return;
    head.replaceChildren(h("h1", {}, ref.session), errorBox(err));
  });
  return page;
}


function sessionHeader(s) {
  const { session, counts = {} } = s.info;
  const end = session.endTime || (session.state === "running" ? new Date().toISOString() : session.lastHeartbeat);
  const fact = (label, value) => h("div", {}, h("dt", {}, label), h("dd", {}, value));
  const card = (label, n, tab, bad) => h("a", { class: `card${bad && n ? " bad" : ""}`, href: `${s.home}/${tab}` },
    h("b", {}, n ?? "—"), h("span", {}, label));
  return h("div", {},
    h("div", { class: "row" }, h("h1", {}, session.sessionName), badge(session.state)),
    h("p", { class: "muted" }, `Cluster ${session.clusterName} in namespace ${session.namespace}`),
    h("div", { class: "row links" },
      h("a", { class: "button", href: s.base, target: "_blank", rel: "noopener" }, "Open in Ray dashboard ↗"),
      h("a", { class: "button", href: `${s.base}api/v0/tasks/timeline?download=1`, download: `timeline-${session.sessionName}.json` },
        "Download timeline (Chrome trace)")),
    !s.compact && h("dl", { class: "facts" },
      fact("Started", fmtTime(session.startTime)),
      fact(session.endTime ? "Ended" : "Last heartbeat", fmtTime(session.endTime || session.lastHeartbeat)),
      fact("Duration", fmtDuration(between(session.startTime, end))),
      fact("Ray version", session.rayVersion || "—"),
      fact("Cluster id", h("span", { class: "mono" }, session.clusterId || "—")),
      fact("Owner", session.owner ? `${session.owner.kind}/${session.owner.name}` : "—"),
      fact("Head node", h("span", { class: "mono", title: session.headNodeId }, shortId(session.headNodeId)))),
    !s.compact && h("div", { class: "cards" },
      card("jobs", counts.jobs, "jobs"),
      card("tasks", counts.tasks, "tasks"),
      card("failed tasks", counts.failedTasks, "tasks", true),
      card("actors", counts.actors, "actors"),
      card("nodes", (s.info.nodes || []).length || counts.nodes, ""),
      card("events", counts.events, "events")));
}

/** Loads `url` (a Ray API path under the session) into a placeholder that shows progress and errors. */
function section(s, title, url, renderData) {
  const box = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  fetchJson(`${s.base}${url}`, s.ctx.signal)
    .then((json) => box.replaceChildren(renderData(json)))
    .catch((err) => { if (!s.ctx.signal.aborted) box.replaceChildren(errorBox(err)); });
  return h("section", {}, title && h("h2", {}, title), box);
}

function logsHref(s, params) { return `${s.home}/logs${query(params)}`; }

function nodesTable(s) {
  const nodes = [...(s.info.nodes || [])].sort((a, b) => (a.nodeType === "head" ? -1 : 0) - (b.nodeType === "head" ? -1 : 0));
  const live = s.info.session.state === "running";
  return table([
    { title: "Node", cls: "mono", cell: (n) => n.nodeId },
    { title: "Type", cell: (n) => n.nodeType },
    { title: "IP", cell: (n) => n.nodeIp || "—" },
    { title: "Pod", cell: (n) => n.podName || "—" },
    { title: "State", cell: (n) => badge(n.endTime ? "DEAD" : live ? "ALIVE" : "DEAD") },
    { title: "Started", cls: "nowrap", cell: (n) => fmtTime(n.startTime) },
    { title: "Ended", cls: "nowrap", cell: (n) => fmtTime(n.endTime) },
    { title: "Logs", cell: (n) => h("a", { href: logsHref(s, { node: n.nodeId }) }, "Browse logs") },
  ], nodes, { empty: "No node metadata stored for this session.", rowHref: (n) => logsHref(s, { node: n.nodeId }) });
}

const FAILED_TASKS = "api/v0/tasks?detail=1&limit=1000&filter_keys=state&filter_predicates=%3D&filter_values=FAILED";

function failedTasks(s, title) {
  return section(s, title, FAILED_TASKS, (json) => {
    const tasks = rayData(json).result.result;
    if (!tasks.length) return h("p", { class: "muted" }, "No failed tasks.");
    return h("div", {}, tasks.map((t) => h("article", { class: "failure" },
      h("h3", {}, `${t.name || t.func_or_class_name} `, badge(t.state), " ",
        h("span", { class: "muted" }, t.error_type || "")),
      h("div", { class: "row muted" },
        h("span", {}, "task ", h("code", {}, t.task_id)),
        h("span", {}, `attempt ${t.attempt_number}`),
        h("span", {}, "job ", h("code", {}, t.job_id)),
        t.worker_id && t.node_id && h("a", { href: logsHref(s, { node: t.node_id, worker: t.worker_id, stream: "err" }) }, "worker stderr"),
        t.worker_id && t.node_id && h("a", { href: logsHref(s, { node: t.node_id, worker: t.worker_id, stream: "out" }) }, "worker stdout")),
      h("pre", {}, t.error_message || "(no error message recorded)"))));
  });
}

function overviewTab(s) {
  return h("div", {}, failedTasks(s, "Failed tasks"), h("h2", {}, "Nodes"), nodesTable(s));
}

/** The first line of a long message, the rest behind a disclosure. */
function longText(text) {
  if (!text) return "";
  if (text.length < 80 && !text.includes("\n")) return text;
  const cut = text.search(/[,:]?\n|, last available logs|\. /);
  const end = cut < 0 || cut > 200 ? Math.min(text.length, 120) : cut + (text[cut] === "." ? 1 : 0);
  return h("details", {}, h("summary", {}, text.slice(0, end)), h("pre", {}, text));
}

/** Code shown in full when short; long code (e.g. `python -c <script>`) behind a disclosure. */
function clippedCode(text) {
  if (text.length <= 160) return h("code", {}, text);
  return h("details", {}, h("summary", {}, h("code", {}, `${text.slice(0, 120)}…`)), h("pre", {}, text));
}

function jobsTab(s) {
  return section(s, "Jobs", "api/jobs/", (jobs) => {
    const sorted = [...jobs].sort((a, b) => (b.start_time || 0) - (a.start_time || 0));
    return table([
      { title: "Job", cls: "mono", cell: (j) => j.submission_id || j.job_id },
      { title: "Ray job id", cls: "mono", cell: (j) => j.job_id || "—" },
      { title: "Type", cell: (j) => (j.type || "").toLowerCase() },
      { title: "Status", cell: (j) => badge(j.status) },
      { title: "Entrypoint", cls: "wrap", cell: (j) => clippedCode(j.entrypoint || "") },
      { title: "Started", cls: "nowrap", cell: (j) => fmtTime(j.start_time) },
      { title: "Duration", cls: "num", cell: (j) => fmtDuration(between(j.start_time, j.end_time)) },
      { title: "Message", cls: "wrap", cell: (j) => (j.status === "SUCCEEDED" ? "" : longText(j.message)) },
      { title: "Logs", cell: (j) => (j.submission_id && j.driver_node_id
        ? h("a", { href: logsHref(s, { node: j.driver_node_id, file: `job-driver-${j.submission_id}.log` }) }, "driver log")
        : "") },
    ], sorted, { empty: "No jobs recorded." });
  });
}

function taskSummary(json) {
  const summary = rayData(json).result.result.node_id_to_summary.cluster.summary;
  const rows = Object.values(summary);
  const totals = {};
  for (const r of rows) for (const [state, n] of Object.entries(r.state_counts)) totals[state] = (totals[state] || 0) + n;
  const order = (st) => (st === "FAILED" ? 0 : st === "FINISHED" ? 2 : 1);
  const countBadges = (counts) => h("span", { class: "state-counts" },
    Object.entries(counts).sort((a, b) => order(a[0]) - order(b[0])).map(([st, n]) => h("span", {}, badge(st), ` ${n}`)));
  return h("div", {},
    h("p", {}, countBadges(totals)),
    table([
      { title: "Function", cls: "mono", cell: (r) => r.func_or_class_name },
      { title: "Type", cell: (r) => r.type.toLowerCase().replace(/_/g, " ") },
      { title: "States", cell: (r) => countBadges(r.state_counts) },
    ], rows.sort((a, b) => (b.state_counts.FAILED || 0) - (a.state_counts.FAILED || 0)), { empty: "No tasks recorded." }));
}

function allTasks(s) {
  return section(s, "All tasks", "api/v0/tasks?detail=1&limit=1000", (json) => {
    const res = rayData(json).result;
    const tasks = [...res.result].sort((a, b) =>
      (a.state === "FAILED" ? 0 : 1) - (b.state === "FAILED" ? 0 : 1) || (b.creation_time_ms || 0) - (a.creation_time_ms || 0));
    const holder = h("div", {});
    const draw = (needle) => {
      const n = needle.toLowerCase();
      const shown = n ? tasks.filter((t) => [t.name, t.state, t.task_id, t.job_id, t.type, t.func_or_class_name]
        .some((v) => v && String(v).toLowerCase().includes(n))) : tasks;
      holder.replaceChildren(table([
        { title: "Name", cls: "mono", cell: (t) => t.name || t.func_or_class_name },
        { title: "State", cell: (t) => badge(t.state) },
        { title: "Type", cell: (t) => (t.type || "").toLowerCase().replace(/_/g, " ") },
        { title: "Job", cls: "mono", cell: (t) => t.job_id },
        { title: "Attempt", cls: "num", cell: (t) => t.attempt_number },
        { title: "Created", cls: "nowrap", cell: (t) => fmtTime(t.creation_time_ms) },
        { title: "Duration", cls: "num", cell: (t) => fmtDuration(between(t.start_time_ms || t.creation_time_ms, t.end_time_ms)) },
        { title: "Task", cls: "mono", cell: (t) => h("span", { title: t.task_id }, shortId(t.task_id)) },
        { title: "Logs", cell: (t) => (t.worker_id && t.node_id
          ? h("a", { href: logsHref(s, { node: t.node_id, worker: t.worker_id, stream: t.state === "FAILED" ? "err" : "out" }) }, "worker log")
          : "") },
      ], shown, { empty: "No task matches." }));
    };
    draw("");
    return h("div", {},
      h("div", { class: "row filters" },
        h("input", { type: "search", "data-search": true, placeholder: "Filter tasks by name, state, id…", "aria-label": "Filter tasks",
          oninput: (e) => draw(e.target.value) }),
        h("span", { class: "muted" }, res.total > res.result.length
          ? `Showing ${res.result.length} of ${res.total} tasks.` : `${res.result.length} tasks.`)),
      holder);
  });
}

function tasksTab(s) {
  return h("div", {},
    section(s, "Task states", "api/v0/tasks/summarize", taskSummary),
    failedTasks(s, "Failed tasks"),
    allTasks(s));
}

function actorsTab(s) {
  return section(s, "Actors", "logical/actors", (json) => {
    const actors = Object.values(rayData(json).actors || {}).sort((a, b) =>
      (a.state === "ALIVE" ? 0 : 1) - (b.state === "ALIVE" ? 0 : 1) || (b.startTime || 0) - (a.startTime || 0));
    return table([
      { title: "Actor", cls: "mono", cell: (a) => h("span", { title: a.actorId }, a.actorId) },
      { title: "Class", cell: (a) => a.className || a.actorClass },
      { title: "Name", cell: (a) => a.name || "—" },
      { title: "State", cell: (a) => badge(a.state) },
      { title: "Job", cls: "mono", cell: (a) => a.jobId },
      { title: "PID", cls: "num", cell: (a) => a.pid || "—" },
      { title: "Started", cls: "nowrap", cell: (a) => fmtTime(a.startTime) },
      { title: "Duration", cls: "num", cell: (a) => fmtDuration(between(a.startTime, a.endTime)) },
      { title: "Exit detail", cls: "wrap muted", cell: (a) => longText(a.exitDetail) },
      { title: "Logs", cell: (a) => (a.address && a.address.workerId && a.address.nodeId
        ? h("a", { href: logsHref(s, { node: a.address.nodeId, worker: a.address.workerId, stream: "out" }) }, "worker log")
        : "") },
    ], actors, { empty: "No actors recorded." });
  });
}

function eventsTab(s) {
  return section(s, "Events", "events", (json) => {
    const groups = rayData(json).events || {};
    const events = Object.values(groups).flat().sort((a, b) => Number(b.timestamp) - Number(a.timestamp));
    const holder = h("div", {});
    const severities = [...new Set(events.map((e) => e.severity))].sort();
    let needle = "";
    let severity = "";
    const draw = () => {
      const n = needle.toLowerCase();
      const shown = events.filter((e) => (!severity || e.severity === severity) &&
        (!n || [e.message, e.sourceType, e.label].some((v) => v && v.toLowerCase().includes(n))));
      holder.replaceChildren(table([
        { title: "Time", cls: "nowrap", cell: (e) => fmtTime(e.timestamp) },
        { title: "Severity", cell: (e) => h("span", { class: `badge ${e.severity === "ERROR" || e.severity === "FATAL" ? "bad" : e.severity === "WARNING" ? "warn" : "idle"}` }, e.severity) },
        { title: "Source", cell: (e) => e.sourceType },
        { title: "Message", cls: "wrap", cell: (e) => e.message },
        { title: "Details", cls: "wrap muted mono", cell: (e) => Object.entries(e.customFields || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ") },
      ], shown, { empty: "No events recorded." }));
    };
    draw();
    return h("div", {},
      h("div", { class: "row filters" },
        h("input", { type: "search", "data-search": true, placeholder: "Filter events…", "aria-label": "Filter events",
          oninput: (e) => { needle = e.target.value; draw(); } }),
        h("select", { "aria-label": "Severity", onchange: (e) => { severity = e.target.value; draw(); } },
          h("option", { value: "" }, "any severity"), severities.map((v) => h("option", { value: v }, v)))),
      holder);
  });
}

// ---------------------------------------------------------------- log browser

// Display groups over Ray's own categories (`api/v0/logs` answers {category: [file…]}).
const LOG_GROUPS = [
  ["Worker stdout", (cat) => cat === "worker_out"],
  ["Worker stderr", (cat) => cat === "worker_err"],
  ["Jobs", (cat, f) => cat === "driver" || /^job-driver-|^runtime_env_setup-/.test(f)],
  ["Raylet", (cat) => cat === "raylet"],
  ["GCS", (cat) => cat === "gcs_server"],
  ["Dashboard", (cat) => cat === "dashboard" || cat === "agent"],
  ["Core worker", (cat) => cat === "core_worker"],
  ["Autoscaler", (cat) => cat === "autoscaler"],
  ["Other", () => true],
];

/** A readable label for the per-process files whose names are mostly ids, e.g. worker-<id>-<job>-<pid>.out. */
function processLabel(file) {
  const job = (id) => (/^f+$/.test(id) ? "no job" : `job ${id}`);
  let m = /^worker-([0-9a-f]+)-([0-9a-f]+)-(\d+)\.(out|err)$/.exec(file);
  if (m) return `${job(m[2])} · pid ${m[3]} · ${m[4] === "out" ? "stdout" : "stderr"}`;
  m = /^python-core-driver-([0-9a-f]{8})f*_(\d+)\.log$/.exec(file);
  if (m) return `driver · ${job(m[1])} · pid ${m[2]}`;
  m = /^python-core-worker-([0-9a-f]+)_(\d+)\.log$/.exec(file);
  if (m) return `core worker · pid ${m[2]}`;
  return null;
}

function groupLogFiles(categories) {
  const groups = new Map(LOG_GROUPS.map(([name]) => [name, []]));
  for (const [cat, files] of Object.entries(categories || {})) {
    for (const file of files) {
      const [name] = LOG_GROUPS.find(([, match]) => match(cat, file.split("/").pop()));
      groups.get(name).push(file);
    }
  }
  for (const files of groups.values()) files.sort();
  return [...groups].filter(([, files]) => files.length);
}

function logsTab(s, params) {
  const nodes = s.info.nodes || [];
  const nodeId = params.get("node") || s.info.session.headNodeId || (nodes[0] && nodes[0].nodeId);
  if (!nodeId) return h("p", { class: "muted" }, "No nodes are stored for this session, so there are no logs to browse.");
  const file = params.get("file");
  const dir = params.get("dir");
  const live = s.info.session.state === "running";
  const go = (changes, replace) => navigate(logsHref(s, { node: nodeId, dir, file, ...changes }), { replace });

  const nodeSelect = h("select", { "aria-label": "Node", onchange: (e) => go({ node: e.target.value, file: null, dir: null }) },
    (nodes.some((n) => n.nodeId === nodeId) ? nodes : [...nodes, { nodeId, nodeType: "?" }]).map((n) =>
      h("option", { value: n.nodeId, selected: n.nodeId === nodeId }, `${n.nodeType} ${n.nodeIp || ""} ${shortId(n.nodeId)}`)));
  const fileFilter = h("input", { type: "search", placeholder: "Filter files…", "aria-label": "Filter log files", "data-search": !file });
  const list = h("div", {}, h("p", { class: "muted" }, "Loading files…"));
  const files = h("nav", { class: "files panel", "aria-label": "Log files" }, nodeSelect, fileFilter, list);
  const viewer = h("div", { class: "viewer panel" });

  const glob = dir ? `${dir}/*` : null;
  fetchJson(`${s.base}api/v0/logs${query({ node_id: nodeId, glob })}`, s.ctx.signal).then((json) => {
    const categories = rayData(json).result;
    const worker = params.get("worker");
    if (worker && !file) {
      const stream = params.get("stream") === "err" ? "worker_err" : "worker_out";
      const found = (categories[stream] || []).find((f) => f.startsWith(`worker-${worker}-`));
      if (found) return go({ file: found, worker: null, stream: null }, true);
      viewer.replaceChildren(errorBox(`No ${stream.replace("_", " ")} log of worker ${worker} on this node.`));
    }
    const groups = groupLogFiles(categories);
    const draw = (needle) => {
      const n = needle.toLowerCase();
      list.replaceChildren(
        dir ? h("p", {}, h("a", { href: logsHref(s, { node: nodeId }) }, "← all files"), " ", h("code", {}, `${dir}/`)) : "",
        ...groups.map(([name, names]) => {
          const shown = names.filter((f) => !n || f.toLowerCase().includes(n));
          if (!shown.length) return "";
          const open = !!n || name.startsWith("Worker") || name === "Jobs" || shown.includes(file) || groups.length < 3;
          return h("details", { open },
            h("summary", {}, `${name} `, h("span", { class: "count" }, `(${shown.length})`)),
            h("ul", {}, shown.map((f) => {
              const isDir = f.endsWith("/");
              const href = isDir ? logsHref(s, { node: nodeId, dir: f.slice(0, -1) }) : logsHref(s, { node: nodeId, dir, file: f });
              const label = processLabel(f);
              const name = dir && f.startsWith(`${dir}/`) ? f.slice(dir.length + 1) : f;
              return h("li", {}, h("a", { href, "aria-current": f === file ? "true" : null, title: f },
                label || name, label && h("small", {}, name)));
            })));
        }));
      if (!list.querySelector("a[href]")) list.append(h("p", { class: "muted" }, "No log files match."));
    };
    fileFilter.addEventListener("input", (e) => draw(e.target.value));
    draw("");
    const currentLink = list.querySelector('a[aria-current="true"]');
    if (currentLink) files.scrollTop = currentLink.offsetTop - files.clientHeight / 2;
  }).catch((err) => { if (!s.ctx.signal.aborted) list.replaceChildren(errorBox(err)); });

  if (file) viewer.replaceChildren(logViewer(s, nodeId, file, params, live));
  else if (!params.get("worker")) viewer.replaceChildren(h("p", { class: "empty" }, "Choose a log file on the left."));
  return h("div", { class: "logs" }, files, viewer);
}

function logViewer(s, nodeId, file, params, live) {
  const lines = Number(params.get("lines")) || 1000;
  const url = (n) => `${s.base}api/v0/logs/file${query({ node_id: nodeId, filename: file, lines: n })}`;
  const pre = h("pre", { class: "log", tabindex: 0, "aria-label": `Contents of ${file}` });
  const info = h("span", { class: "muted", "aria-live": "polite" }, "Loading…");
  const matchInfo = h("span", { class: "muted", "aria-live": "polite" });
  let text = null;
  let hits = [];
  let at = -1;

  const search = h("input", { type: "search", "data-search": true, placeholder: "Search in file (Enter: next)", "aria-label": "Search in file" });
  const highlight = (scroll) => {
    const needle = search.value.toLowerCase();
    const spans = pre.children;
    hits = [];
    for (let i = 0; i < spans.length; i++) {
      const hit = !!needle && spans[i].textContent.toLowerCase().includes(needle);
      spans[i].classList.toggle("hit", hit);
      spans[i].classList.remove("current");
      if (hit) hits.push(i);
    }
    if (!hits.length) at = -1;
    else if (at < 0 || at >= hits.length) at = 0;
    matchInfo.textContent = needle ? (hits.length ? `${at + 1} of ${hits.length} matches` : "no matches") : "";
    if (at >= 0) {
      spans[hits[at]].classList.add("current");
      if (scroll) spans[hits[at]].scrollIntoView({ block: "center" });
    }
  };
  search.addEventListener("input", () => { at = 0; highlight(true); });
  search.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !hits.length) return;
    e.preventDefault();
    at = (at + (e.shiftKey ? hits.length - 1 : 1)) % hits.length;
    highlight(true);
  });

  const show = (body) => {
    if (body === text) return;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 30;
    text = body;
    const rows = body.split("\n");
    if (rows.length && rows[rows.length - 1] === "") rows.pop();
    pre.replaceChildren(...rows.map((line) => h("span", {}, line)));
    const truncated = lines > 0 && rows.length >= lines;
    info.replaceChildren(truncated ? `Last ${rows.length.toLocaleString()} lines. ` : `${rows.length.toLocaleString()} lines. `,
      truncated ? h("a", { href: logsHref(s, { node: nodeId, file, lines: lines < 10000 ? 10000 : -1 }) },
        lines < 10000 ? "Show 10,000 lines" : "Show the whole file") : "");
    highlight(false);
    if (atBottom || follow.checked) pre.scrollTop = pre.scrollHeight;
  };
  const load = () => fetchText(url(lines), s.ctx.signal).then(show);

  const follow = h("input", { type: "checkbox", checked: live });
  let timer = null;
  const setFollow = () => {
    clearInterval(timer);
    timer = follow.checked ? setInterval(() => load().catch(() => {}), FOLLOW_INTERVAL_MS) : null;
  };
  follow.addEventListener("change", setFollow);
  s.ctx.onCleanup(() => clearInterval(timer));

  load().then(() => { pre.scrollTop = pre.scrollHeight; setFollow(); })
    .catch((err) => { if (!s.ctx.signal.aborted) { info.replaceChildren(); pre.replaceWith(errorBox(err)); } });

  return h("div", {},
    h("div", { class: "viewer-bar" },
      h("div", { class: "row" },
        h("span", { class: "name" }, file), h("span", { class: "spacer" }),
        live && h("label", { class: "check" }, follow, "Follow"),
        h("a", { class: "button", href: url(-1), download: file.split("/").pop() }, "Download")),
      h("div", { class: "row" }, search, matchInfo, h("span", { class: "spacer" }), info)),
    pre);
}

// ---------------------------------------------------------------- keyboard and boot

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

window.addEventListener("hashchange", render);
render();
