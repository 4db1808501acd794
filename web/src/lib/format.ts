// Numbers, dates and sizes as the tables show them.

import type { Json } from "../types";

export function fmtNum(value: Json | undefined, digits = 4): string {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return typeof value === "string" ? value : JSON.stringify(value);
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  if (value === 0) return "0";
  if (Number.isInteger(value) && Math.abs(value) < 1e7) return value.toLocaleString("en-US");
  const magnitude = Math.abs(value);
  if (magnitude >= 1e5 || magnitude < 1e-3) return value.toExponential(digits - 2).replace("e+", "e");
  return String(Number(value.toPrecision(digits)));
}

/** Short labels for axis values: numbers as fmtNum, objects by their `name`, null "none". */
export function fmtValue(value: Json | undefined): string {
  if (value === null || value === undefined) return "none";
  if (typeof value === "number") return fmtNum(value);
  if (typeof value === "string" || typeof value === "boolean") return String(value);
  if (!Array.isArray(value) && typeof value.name === "string") {
    const rest = Object.entries(value).filter(([k]) => k !== "name");
    return rest.length ? `${value.name}(${rest.map(([k, v]) => `${k}=${fmtValue(v)}`).join(", ")})`
      : value.name;
  }
  return JSON.stringify(value);
}

export function fmtDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 1) return `${(seconds * 1000).toPrecision(3)} ms`;
  if (seconds < 120) return `${seconds.toPrecision(3)} s`;
  const m = Math.floor(seconds / 60);
  return m < 120 ? `${m} min ${Math.round(seconds - 60 * m)} s` : `${(m / 60).toFixed(1)} h`;
}

export function fmtBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}
