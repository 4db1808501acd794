// Query strings: parameters that are null, undefined or "" are left out.

export type ParamValue = string | number | boolean | null | undefined;
export type Params = Record<string, ParamValue | readonly (string | number)[]>;

export function queryString(params: Params): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) {
      if (value.length) search.set(key, value.join(","));
    } else {
      search.set(key, String(value));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function withQuery(path: string, params: Params): string {
  return path + queryString(params);
}

/** "a,b,,c " -> ["a", "b", "c"] */
export function splitList(text: string | null | undefined): string[] {
  return (text ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}
