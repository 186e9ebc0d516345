// Requests to the history server: fetching text and JSON, Ray's envelope, query strings.

export async function fetchText(url, signal) {
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

export async function fetchJson(url, signal) {
  return JSON.parse(await fetchText(url, signal));
}

/** Unwraps Ray's `{result, msg, data}` envelope. */
export function rayData(json) {
  if (json && json.result === false) throw new Error(json.msg || "request failed");
  return json && "data" in json ? json.data : json;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function enc(s) { return encodeURIComponent(s); }
