// Immutable edits of a JSON document by path: what every form field does to the spec.

import type { Json, JsonObject } from "../types";

export function getIn(doc: Json | undefined, path: readonly string[]): Json | undefined {
  let cur = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** A copy of `doc` with `path` set to `value`; `undefined` removes the key. */
export function setIn(doc: JsonObject, path: readonly string[], value: Json | undefined): JsonObject {
  if (!path.length) throw new Error("empty path");
  const [head, ...rest] = path;
  const copy: JsonObject = { ...doc };
  if (!rest.length) {
    if (value === undefined) delete copy[head];
    else copy[head] = value;
    return copy;
  }
  const child = doc[head];
  const base = child && typeof child === "object" && !Array.isArray(child) ? child : {};
  copy[head] = setIn(base, rest, value);
  return copy;
}

export function isObject(value: Json | undefined): value is JsonObject {
  return value !== null && value !== undefined && typeof value === "object" && !Array.isArray(value);
}
