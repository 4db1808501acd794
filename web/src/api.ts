// The API, as the dashboard calls it (same origin: the API serves the dashboard).

import { authHeaders, keyRefused } from "./lib/auth";
import { errorText } from "./lib/errors";
import { type Params, withQuery } from "./lib/query";
import type {
  Catalog, Comparison, Dataset, Job, JobsPage, JsonObject, LogLine, Metrics, SeriesInfo, Sweep,
  SweepsPage, ValidationDetail,
} from "./types";

export class ApiError extends Error {
  constructor(readonly status: number, readonly body: unknown) {
    super(errorText(status, body));
  }

  /** A 422's list of field errors (empty for any other error). */
  get detail(): ValidationDetail[] {
    const d = (this.body as { detail?: unknown } | null)?.detail;
    return this.status === 422 && Array.isArray(d) ? (d as ValidationDetail[]) : [];
  }
}

interface Init {
  method?: string;
  json?: unknown;
  form?: FormData;
  signal?: AbortSignal;
}

export async function call<T>(path: string, init: Init = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json", ...authHeaders() };
  let body: BodyInit | undefined;
  if (init.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  } else if (init.form) {
    body = init.form;
  }
  const response = await fetch(path, { method: init.method ?? "GET", headers, body, signal: init.signal });
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (response.status === 401) keyRefused(); // the app asks for a key
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed as T;
}

const get = <T>(path: string, params: Params = {}, signal?: AbortSignal) => call<T>(withQuery(path, params), { signal });
const post = <T>(path: string, json?: unknown) => call<T>(path, { method: "POST", json });
const job = (id: string) => `/v1/jobs/${encodeURIComponent(id)}`;
const sweep = (id: string) => `/v1/sweeps/${encodeURIComponent(id)}`;

let catalogPromise: Promise<Catalog> | null = null;

export const api = {
  jobs: (params: Params, signal?: AbortSignal) => get<JobsPage>("/v1/jobs", params, signal),
  job: (id: string, signal?: AbortSignal) => get<Job>(job(id), {}, signal),
  submitJob: (spec: JsonObject) => post<Job>("/v1/jobs", spec),
  cancelJob: (id: string) => post<Job>(`${job(id)}/cancel`),
  rerunJob: (id: string) => post<Job>(`${job(id)}/rerun`),
  deleteJob: (id: string) => call<null>(job(id), { method: "DELETE" }),
  editJob: (id: string, changes: { name?: string; tags?: string[] }) =>
    call<Job>(job(id), { method: "PATCH", json: changes }),
  logs: (id: string, params: Params = {}) => get<{ job_id: string; lines: LogLine[] }>(`${job(id)}/logs`, params),
  series: (id: string) => get<{ job_id: string; series: SeriesInfo[] }>(`${job(id)}/series`),
  metrics: (id: string, params: Params, signal?: AbortSignal) => get<Metrics>(`${job(id)}/metrics`, params, signal),
  compare: (params: Params, signal?: AbortSignal) => get<Comparison>("/v1/compare", params, signal),
  sweeps: (params: Params) => get<SweepsPage>("/v1/sweeps", params),
  sweep: (id: string, params: Params = {}) => get<Sweep>(sweep(id), params),
  submitSweep: (request: JsonObject) => post<Sweep>("/v1/sweeps", request),
  cancelSweep: (id: string) => post<Sweep>(`${sweep(id)}/cancel`),
  datasets: () => get<{ data: Dataset[] }>("/v1/datasets"),
  upload: (form: FormData) => call<Dataset>("/v1/datasets", { method: "POST", form }),
  catalog: (): Promise<Catalog> => {
    catalogPromise ??= get<Catalog>("/v1/catalog").catch((e: unknown) => {
      catalogPromise = null;
      throw e;
    });
    return catalogPromise;
  },
  jobEventsUrl: (id: string, cursor: string | null) =>
    withQuery(`${job(id)}/events`, { last_event_id: cursor }),
  landscapeUrl: (id: string) => `${job(id)}/landscape.png`,
  /** A picture of the API (an <img> cannot send the key): fetched, as an object URL. */
  image: async (path: string, signal?: AbortSignal): Promise<string> => {
    const response = await fetch(path, { headers: authHeaders(), signal });
    if (response.status === 401) keyRefused();
    if (!response.ok) throw new ApiError(response.status, null);
    return URL.createObjectURL(await response.blob());
  },
};
