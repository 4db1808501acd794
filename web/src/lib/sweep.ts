// A sweep's points laid out by its axes: the metric against one axis (one line per
// combination of the others) and a heatmap over two (binned when an axis has many values).

import type { Json, SweepPoint } from "../types";
import { fmtValue } from "./format";

export function axisNames(points: readonly SweepPoint[]): string[] {
  const names: string[] = [];
  for (const p of points) for (const k of Object.keys(p.point)) if (!names.includes(k)) names.push(k);
  return names;
}

const key = (v: Json | undefined): string => JSON.stringify(v ?? null);

function isNumeric(values: readonly (Json | undefined)[]): values is number[] {
  return values.length > 0 && values.every((v) => typeof v === "number" && Number.isFinite(v));
}

/** Positive values spanning two decades or more read best on a log axis (learning rates). */
export function spansDecades(values: readonly number[]): boolean {
  let lo = Infinity, hi = -Infinity; // a loop: a million values overflow Math.min(...values)
  for (const v of values) {
    if (!(v > 0)) return false;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return values.length > 0 && hi / lo >= 100;
}

export interface AxisSeries {
  numeric: boolean; // else x is the index of `labels`
  log: boolean;
  xs: number[];
  labels: string[];
  lines: { label: string; values: (number | null)[] }[];
}

/** Points' means against `axis`; one line per combination of the other axes' values. */
export function metricByAxis(points: readonly SweepPoint[], axis: string): AxisSeries {
  const raw = points.map((p) => p.point[axis]);
  const distinct = [...new Map(raw.map((v) => [key(v), v])).values()];
  const numeric = isNumeric(distinct);
  if (numeric) (distinct as number[]).sort((a, b) => a - b);
  const xIndex = new Map(distinct.map((v, i) => [key(v), i]));
  const others = axisNames(points).filter((a) => a !== axis);
  const lines = new Map<string, { label: string; values: (number | null)[] }>();
  for (const p of points) {
    const label = others.map((a) => `${a.split(".").pop()}=${fmtValue(p.point[a])}`).join(", ") || "mean";
    let line = lines.get(label);
    if (!line) {
      line = { label, values: distinct.map(() => null) };
      lines.set(label, line);
    }
    line.values[xIndex.get(key(p.point[axis]))!] = p.mean;
  }
  return {
    numeric,
    log: numeric && spansDecades(distinct as number[]),
    xs: numeric ? (distinct as number[]) : distinct.map((_, i) => i),
    labels: distinct.map(fmtValue),
    lines: [...lines.values()],
  };
}

export interface Bins {
  labels: string[];
  index: (value: Json | undefined) => number; // -1: outside every bin
}

/** Few distinct values: one bin each. Many numbers (random search): `count` even bins, log-spaced
 * when they span decades. */
export function axisBins(values: readonly (Json | undefined)[], most = 12, count = 8): Bins {
  const distinct = [...new Map(values.map((v) => [key(v), v])).values()];
  if (!isNumeric(distinct) || distinct.length <= most) {
    if (isNumeric(distinct)) (distinct as number[]).sort((a, b) => a - b);
    const index = new Map(distinct.map((v, i) => [key(v), i]));
    return { labels: distinct.map(fmtValue), index: (v) => index.get(key(v)) ?? -1 };
  }
  const nums = distinct as number[];
  const log = spansDecades(nums);
  const f = log ? Math.log10 : (x: number) => x;
  const inv = log ? (x: number) => 10 ** x : (x: number) => x;
  const lo = f(Math.min(...nums)), hi = f(Math.max(...nums));
  const width = (hi - lo) / count || 1;
  const labels = Array.from({ length: count }, (_, i) =>
    `${fmtValue(inv(lo + i * width))}–${fmtValue(inv(lo + (i + 1) * width))}`);
  return {
    labels,
    index: (v) => (typeof v === "number" ? Math.min(count - 1, Math.max(0, Math.floor((f(v) - lo) / width))) : -1),
  };
}

export interface Heatmap {
  xLabels: string[];
  yLabels: string[];
  cells: { mean: number | null; count: number }[][]; // [y][x]
  min: number | null;
  max: number | null;
}

/** The mean of the points' means in each (x bin, y bin); other axes are averaged over. */
export function heatmap(points: readonly SweepPoint[], xAxis: string, yAxis: string): Heatmap {
  const xb = axisBins(points.map((p) => p.point[xAxis]));
  const yb = axisBins(points.map((p) => p.point[yAxis]));
  const sums = yb.labels.map(() => xb.labels.map(() => ({ sum: 0, count: 0 })));
  for (const p of points) {
    const x = xb.index(p.point[xAxis]), y = yb.index(p.point[yAxis]);
    if (x < 0 || y < 0 || p.mean === null || !Number.isFinite(p.mean)) continue;
    sums[y][x].sum += p.mean;
    sums[y][x].count += 1;
  }
  const cells = sums.map((row) => row.map((c) => ({ mean: c.count ? c.sum / c.count : null, count: c.count })));
  const all = cells.flat().map((c) => c.mean).filter((m): m is number => m !== null);
  return {
    xLabels: xb.labels, yLabels: yb.labels, cells,
    min: all.length ? Math.min(...all) : null,
    max: all.length ? Math.max(...all) : null,
  };
}

/** 0..1 along a colour-blind-safe ramp (viridis, sampled), as `rgb()`. */
export function rampColour(t: number): string {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((a, k) => Math.round(a + f * (stops[i + 1][k] - a)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

/** Where `value` falls between min and max, on a log scale when all are positive and span decades. */
export function rampPosition(value: number, min: number, max: number): number {
  if (max === min) return 0.5;
  if (min > 0 && max / min >= 100) return (Math.log10(value) - Math.log10(min)) / (Math.log10(max) - Math.log10(min));
  return (value - min) / (max - min);
}
