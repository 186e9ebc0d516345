// Display formats of times, durations and ids.

function toDate(value) {
  if (value === null || value === undefined || value === "" || value === 0) return null;
  if (typeof value === "number") return new Date(value > 1e12 ? value : value * 1000);
  if (/^\d+(\.\d+)?$/.test(value)) return toDate(Number(value));
  const d = new Date(value);
  return isNaN(d) ? null : d;
}

export function fmtTime(value) {
  const d = toDate(value);
  if (!d) return "—";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(ms) {
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

export function between(start, end) {
  const a = toDate(start);
  const b = toDate(end);
  return a && b ? b - a : null;
}

export function shortId(id) { return id && id.length > 14 ? `${id.slice(0, 12)}…` : id || "—"; }
