// The compare page's selection, kept in its URL so that it can be shared:
// /compare?jobs=a,b&metric=loss,val_loss&band=std&rank_by=best_loss&log=1

import { queryString, splitList } from "./query";

export type Band = "minmax" | "std";

export interface CompareSelection {
  jobs: string[];
  sweep: string | null;
  metrics: string[];
  band: Band;
  rankBy: string;
  log: boolean | null; // null: decided from the data
}

export const COMPARE_DEFAULTS: CompareSelection = {
  jobs: [],
  sweep: null,
  metrics: ["loss"],
  band: "minmax",
  rankBy: "final_loss",
  log: null,
};

export function encodeCompare(selection: Partial<CompareSelection>): string {
  const s = { ...COMPARE_DEFAULTS, ...selection };
  const metrics = s.metrics.join(",") === COMPARE_DEFAULTS.metrics.join(",") ? null : s.metrics;
  return "/compare" + queryString({
    jobs: s.jobs.length ? s.jobs : null,
    sweep: s.sweep,
    metric: metrics,
    band: s.band === COMPARE_DEFAULTS.band ? null : s.band,
    rank_by: s.rankBy === COMPARE_DEFAULTS.rankBy ? null : s.rankBy,
    log: s.log === null ? null : s.log ? 1 : 0,
  });
}

export function decodeCompare(search: string): CompareSelection {
  const q = new URLSearchParams(search);
  const metrics = splitList(q.get("metric"));
  const band = q.get("band");
  const log = q.get("log");
  return {
    jobs: unique(splitList(q.get("jobs"))),
    sweep: q.get("sweep") || null,
    metrics: metrics.length ? unique(metrics) : [...COMPARE_DEFAULTS.metrics],
    band: band === "std" ? "std" : "minmax",
    rankBy: q.get("rank_by") || COMPARE_DEFAULTS.rankBy,
    log: log === null ? null : log === "1" || log === "true",
  };
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}
