// Element building and the shared widgets: state badges, error boxes, tables, breadcrumbs.

/** Builds an element: h("a", {href: "#/"}, "text", child). Text is always set as text. */
export function h(tag, attrs, ...children) {
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

const BADGES = {
  running: ["live", "ok"], finished: ["finished", "idle"], lost: ["lost", "warn"],
  FINISHED: ["finished", "ok"], SUCCEEDED: ["succeeded", "ok"], ALIVE: ["alive", "ok"],
  RUNNING: ["running", "ok"], FAILED: ["failed", "bad"], STOPPED: ["stopped", "warn"],
  DEAD: ["dead", "idle"], PENDING: ["pending", "warn"],
};

export function badge(state) {
  const [label, kind] = BADGES[state] || [String(state || "unknown").toLowerCase(), "idle"];
  return h("span", { class: `badge ${kind}`, title: state }, label);
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}

export function table(columns, rows, { empty = "Nothing here.", rowHref } = {}) {
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

export function setCrumbs(parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  parts.forEach(([label, href], i) => {
    if (i) nav.append(h("span", { class: "sep", "aria-hidden": "true" }, "/"));
    nav.append(href ? h("a", { href }, label) : h("span", { "aria-current": "page" }, label));
  });
}
