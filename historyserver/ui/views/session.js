// One session's page: its header, the tab bar and the tab on screen.
import { enc, fetchJson, query } from "../api.js";
import { badge, errorBox, h, setCrumbs } from "../dom.js";
import { between, fmtDuration, fmtTime, shortId } from "../format.js";
import { logsTab } from "./logs.js";
import { actorsTab, eventsTab, jobsTab, overviewTab, tasksTab } from "./tabs.js";

export const TABS = ["overview", "jobs", "tasks", "actors", "events", "logs"];

export function sessionPage(ref, tab, params, ctx) {
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
