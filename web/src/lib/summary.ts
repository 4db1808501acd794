// Summary fields: read by dotted path; the ones offered for sorting and ranking.

import type { Json, JsonObject } from "../types";

export function getPath(obj: Json | undefined, path: string): Json | undefined {
  let cur: Json | undefined = obj;
  for (const key of path.split(".")) {
    if (cur === null || cur === undefined || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    cur = (cur as JsonObject)[key];
  }
  return cur;
}

/** Summary fields worth ranking by; "-" in front sorts descending (the API's convention). */
export const SUMMARY_FIELDS: { field: string; label: string; higherIsBetter?: boolean }[] = [
  { field: "final_loss", label: "final loss" },
  { field: "best_loss", label: "best loss" },
  { field: "best_step", label: "best step" },
  { field: "initial_loss", label: "initial loss" },
  { field: "steps_done", label: "steps done", higherIsBetter: true },
  { field: "steps_to_10x", label: "steps to 10x lower" },
  { field: "steps_to_100x", label: "steps to 100x lower" },
  { field: "steps_to_1000x", label: "steps to 1000x lower" },
  { field: "loss_area_log10", label: "loss area (log10)" },
  { field: "converged_at", label: "converged at" },
  { field: "best_val_loss", label: "best val loss" },
  { field: "evaluation.val_loss", label: "val loss" },
  { field: "evaluation.val_accuracy", label: "val accuracy", higherIsBetter: true },
  { field: "evaluation.train_accuracy", label: "train accuracy", higherIsBetter: true },
  { field: "evaluation.train_loss_full", label: "train loss (full)" },
  { field: "steps_per_second", label: "steps per second", higherIsBetter: true },
  { field: "wall_seconds", label: "wall seconds" },
];

/** "best_loss" -> "-best_loss" when higher is better: the sensible direction to rank by. */
export function naturalOrder(field: string): string {
  const entry = SUMMARY_FIELDS.find((f) => f.field === field);
  return entry?.higherIsBetter ? `-${field}` : field;
}

export function splitOrder(sort: string): { field: string; descending: boolean } {
  return sort.startsWith("-") ? { field: sort.slice(1), descending: true } : { field: sort, descending: false };
}

export function fieldLabel(field: string): string {
  return SUMMARY_FIELDS.find((f) => f.field === field)?.label ?? field;
}
