// GET /v1/jobs/{id}/landscape.png draws an expression of two one-number parameters that the
// job minimised itself (loss "none"): offer it only then.

import type { Json, JsonObject } from "../types";
import { isObject } from "./paths";

const oneNumber = (v: Json): boolean =>
  typeof v === "number" || (Array.isArray(v) && v.length === 1 && typeof v[0] === "number");

export function landscapeEligible(spec: JsonObject): boolean {
  const model = spec.model;
  if (!isObject(model) || model.kind !== "expression" || spec.loss !== "none") return false;
  const params = model.parameters;
  return isObject(params) && Object.keys(params).length === 2 && Object.values(params).every(oneNumber);
}
