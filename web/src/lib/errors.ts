// A 422's `detail[].loc` placed at the form's fields: the field it names, else the nearest
// field above it (with the rest of the path in the message), else the form's own list.

import type { ValidationDetail } from "../types";

export interface PlacedErrors {
  fields: Record<string, string[]>; // field path ("optimizer.lr") -> messages
  general: string[];
}

// "point 3 (optimizer.lr=0.1, seed=0): optimizer.momentun: SGD has no keyword ..."
const POINT = /^(point \d+ \(.*?\)): ([A-Za-z_][\w]*(?:\.[\w]+)*): ([\s\S]*)$/;

/** The loc as a spec path: "body" dropped; in a sweep, "base" dropped and a point's error
 * read from its message (the API names the field inside it). */
export function specPath(detail: ValidationDetail, sweep: boolean): { path: string[]; msg: string } {
  let loc = detail.loc.map(String);
  if (loc[0] === "body") loc = loc.slice(1);
  if (sweep && loc[0] === "base") return { path: loc.slice(1), msg: detail.msg };
  if (sweep && loc[0] === "points") {
    const m = POINT.exec(detail.msg);
    if (m) return { path: m[2].split("."), msg: `${m[1]}: ${m[3]}` };
  }
  return { path: sweep ? ["sweep", ...loc] : loc, msg: detail.msg };
}

// Pydantic names the branch of a union it tried ("list[json-or-python[...]]", "Choice"):
// noise to a reader, and one error per branch, of which the first is the one meant.
const BRANCH = /[[(]|^Choice$/;

/** Errors by field. `isField` says which paths the form shows; `kinds` are the model and
 * data kinds, which a sweep point's message names in the path ("model.mlp.hidden.0"). */
export function placeErrors(detail: readonly ValidationDetail[], isField: (path: string) => boolean,
                            sweep = false, kinds: ReadonlySet<string> = new Set()): PlacedErrors {
  const placed: PlacedErrors = { fields: {}, general: [] };
  const branched = new Set<string>();
  for (const d of detail) {
    const located = specPath(d, sweep);
    const msg = located.msg;
    let path = located.path;
    if ((path[0] === "model" || path[0] === "data") && kinds.has(path[1])) path = [path[0], ...path.slice(2)];
    const branch = path.findIndex((p) => BRANCH.test(p));
    if (branch >= 0) {
      const key = path.slice(0, branch).join(".");
      if (branched.has(key)) continue;
      branched.add(key);
      path = path.slice(0, branch);
    }
    let n = path.length;
    while (n > 0 && !isField(path.slice(0, n).join("."))) n -= 1;
    if (n === 0) {
      placed.general.push(path.length ? `${path.join(".")}: ${msg}` : msg);
      continue;
    }
    const field = path.slice(0, n).join(".");
    const rest = path.slice(n).join(".");
    (placed.fields[field] ??= []).push(rest ? `${rest}: ${msg}` : msg);
  }
  return placed;
}

/** The message of an error answer: the API's `message` (422), its `detail` string, or the status. */
export function errorText(status: number, body: unknown): string {
  if (body && typeof body === "object") {
    const b = body as { message?: unknown; detail?: unknown };
    if (typeof b.message === "string") return b.message;
    if (typeof b.detail === "string") return b.detail;
  }
  if (typeof body === "string" && body) return body.slice(0, 300);
  return `HTTP ${status}`;
}
