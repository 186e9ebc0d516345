// The log browser: the files of a node grouped by kind, and a viewer that searches and follows one.
import { fetchJson, fetchText, query, rayData } from "../api.js";
import { errorBox, h } from "../dom.js";
import { shortId } from "../format.js";
import { navigate } from "../router.js";

const FOLLOW_INTERVAL_MS = 2000;

export function logsHref(s, params) { return `${s.home}/logs${query(params)}`; }

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

export function logsTab(s, params) {
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
