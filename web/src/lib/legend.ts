// Legends of overlaid curves, from the spec fields in which the jobs differ.

import type { Json, JsonObject } from "../types";
import { fmtValue } from "./format";

/** Field paths shortened to their last part where that stays unambiguous. */
export function shortKeys(paths: readonly string[]): Map<string, string> {
  const last = (p: string) => p.split(".").pop() ?? p;
  const counts = new Map<string, number>();
  for (const p of paths) counts.set(last(p), (counts.get(last(p)) ?? 0) + 1);
  return new Map(paths.map((p) => [p, counts.get(last(p)) === 1 ? last(p) : p]));
}

/** Every key appearing in any of the `differs` objects, in first-seen order. */
export function differingKeys(differs: readonly JsonObject[]): string[] {
  const keys: string[] = [];
  for (const d of differs) for (const k of Object.keys(d)) if (!keys.includes(k)) keys.push(k);
  return keys;
}

export function legendLabel(differs: JsonObject, short: Map<string, string>, fallback: string,
                            seeds = 1): string {
  const entries = Object.entries(differs);
  const set = entries.filter(([, v]) => v !== null);
  // A class that differs ("optimizer.name": "Adam") reads best as itself, first; fields
  // this job leaves unset (null) are left out, unless nothing else tells it apart.
  const classes = set.filter(([k]) => k.endsWith(".name")).map(([, v]) => fmtValue(v));
  let parts = [...classes, ...set.filter(([k]) => !k.endsWith(".name"))
    .map(([k, v]: [string, Json]) => `${short.get(k) ?? k}=${fmtValue(v)}`)];
  if (!parts.length && entries.length) {
    const unsetClass = entries.find(([k]) => k.endsWith(".name"));
    parts = unsetClass ? [`no ${unsetClass[0].split(".").slice(-2, -1)[0]}`]
      : entries.map(([k]) => `${short.get(k) ?? k}=none`);
  }
  const label = parts.length ? parts.join(", ") : fallback;
  return seeds > 1 ? `${label} (${seeds} seeds)` : label;
}

/** One label per entry; entries whose labels collide get their fallback (a job name) added. */
export function legendLabels(entries: readonly { differs: JsonObject; fallback: string; seeds?: number }[]): string[] {
  const short = shortKeys(differingKeys(entries.map((e) => e.differs)));
  const labels = entries.map((e) => legendLabel(e.differs, short, e.fallback, e.seeds));
  const seen = new Map<string, number>();
  for (const l of labels) seen.set(l, (seen.get(l) ?? 0) + 1);
  return labels.map((l, i) => (seen.get(l)! > 1 && l !== entries[i].fallback ? `${l} · ${entries[i].fallback}` : l));
}

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04",
                 "#db2777", "#4b5563", "#65a30d"];

/** Distinct colours: a fixed palette for the first ten, then evenly spread hues. */
export function seriesColour(i: number, n: number): string {
  if (n <= PALETTE.length) return PALETTE[i % PALETTE.length];
  const hue = Math.round((i * 360) / n + 220) % 360;
  return `hsl(${hue} 70% ${i % 2 ? 38 : 48}%)`;
}

export function withAlpha(colour: string, alpha: number): string {
  if (colour.startsWith("#") && colour.length === 7) {
    const a = Math.round(alpha * 255).toString(16).padStart(2, "0");
    return colour + a;
  }
  return colour.replace(/\)$/, ` / ${alpha})`);
}
