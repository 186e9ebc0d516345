// The overview, jobs, tasks, actors and events tabs: Ray API answers shown as tables.
import { fetchJson, rayData } from "../api.js";
import { badge, errorBox, h, table } from "../dom.js";
import { between, fmtDuration, fmtTime, shortId } from "../format.js";
import { logsHref } from "./logs.js";

/** Loads `url` (a Ray API path under the session) into a placeholder that shows progress and errors. */
function section(s, title, url, renderData) {
  const box = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  fetchJson(`${s.base}${url}`, s.ctx.signal)
    .then((json) => box.replaceChildren(renderData(json)))
    .catch((err) => { if (!s.ctx.signal.aborted) box.replaceChildren(errorBox(err)); });
  return h("section", {}, title && h("h2", {}, title), box);
}

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

export function overviewTab(s) {
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

export function jobsTab(s) {
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

export function tasksTab(s) {
  return h("div", {},
    section(s, "Task states", "api/v0/tasks/summarize", taskSummary),
    failedTasks(s, "Failed tasks"),
    allTasks(s));
}

export function actorsTab(s) {
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

export function eventsTab(s) {
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
