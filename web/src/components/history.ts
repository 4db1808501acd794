// A job's histories for its charts: fetched downsampled to the charts' width (or a zoomed
// step range), then, while the job runs, the SSE stream's new points appended; re-fetched
// downsampled when the appended points grow past LIVE_REFETCH.

import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { appendPoints, emaAfter, type Ema, emptyTrace, lastStep, resumeCursor, type Trace } from "../lib/live";
import { AuthedEventSource } from "../lib/sse";
import type { Downsampling, Job, Metrics } from "../types";

export const LIVE_REFETCH = 3000;
export const RETRY_MS = 2000;

/** Worth asking again: the server or the network failed (a 503 while its database is
 * away, a restart), not the request itself. */
export function retryable(error: unknown): boolean {
  if (error instanceof ApiError) return error.status >= 500 || error.status === 429;
  return !(error instanceof DOMException && error.name === "AbortError");
}
export const WALL = "wall_time";

export interface StatusEvent {
  status: Job["status"];
  attempt: number;
  summary: Job["summary"];
  error: string | null;
}

export interface History {
  traces: Record<string, Trace>;
  downsampled: Record<string, Downsampling | null>;
  loading: boolean;
  error: unknown;
  live: boolean; // the stream is open
  generation: number; // how many fetches have landed
  fetched: string | null; // the range of the traces ("all" or "lo:hi"); null before the first
}

interface Options {
  job: Job | null;
  names: string[];
  smoothing: number; // 0: off
  width: number | null; // points to ask for (null: every point)
  range: [number, number] | null;
  onStatus: (event: StatusEvent) => void;
  onEnd: () => void;
}

function traces(answer: Metrics, names: string[], smoothing: boolean) {
  const out: Record<string, Trace> = {};
  const downsampled: Record<string, Downsampling | null> = {};
  for (const n of names) out[n] = emptyTrace(smoothing);
  for (const s of answer.series) {
    out[s.name] = { steps: s.steps, values: s.values, smoothed: smoothing ? (s.smoothed ?? s.values) : null };
    downsampled[s.name] = s.downsampled ?? null;
  }
  return { out, downsampled };
}

export function useJobHistory(o: Options): History {
  const [state, setState] = useState<History>({ traces: {}, downsampled: {}, loading: true, error: null,
                                                live: false, generation: 0, fetched: null });
  const [refetch, setRefetch] = useState(0);
  const current = useRef<Record<string, Trace>>({});
  const emas = useRef<Record<string, Ema | null>>({});
  const callbacks = useRef(o);
  callbacks.current = o;
  const wanted = [...new Set([...o.names, WALL])];
  const namesKey = wanted.join(",");
  const id = o.job?.id ?? null;
  const active = o.job !== null && (o.job.status === "queued" || o.job.status === "running");
  const weight = o.smoothing > 0 ? o.smoothing : null;
  const rangeKey = o.range ? o.range.join(":") : "all";

  useEffect(() => {
    if (!id) return;
    const controller = new AbortController();
    let retry: ReturnType<typeof setTimeout> | undefined;
    setState((s) => ({ ...s, loading: true }));
    api.metrics(id, { names: wanted, max_points: o.width, from_step: o.range?.[0] ?? null,
                      to_step: o.range?.[1] ?? null, smoothing: weight }, controller.signal)
      .then((answer) => {
        if (controller.signal.aborted) return;
        const { out, downsampled } = traces(answer, wanted, weight !== null);
        current.current = out;
        emas.current = Object.fromEntries(Object.entries(out).map(([n, t]) => [n, emaAfter(t, weight)]));
        setState((s) => ({ ...s, traces: out, downsampled, loading: false, error: null,
                           generation: s.generation + 1, fetched: rangeKey }));
      }, (error: unknown) => {
        if (controller.signal.aborted) return;
        setState((s) => ({ ...s, loading: false, error }));
        // shown meanwhile; the page recovers by itself once the server answers again
        if (retryable(error)) retry = setTimeout(() => setRefetch((n) => n + 1), RETRY_MS);
      });
    return () => {
      controller.abort();
      clearTimeout(retry);
    };
  }, [id, namesKey, o.range?.[0], o.range?.[1], weight, o.width, refetch]);

  // Only on top of the whole history, once it is there (not a zoomed range's, nor while a
  // new fetch is on its way: its answer would move the cursor).
  const streaming = active && o.range === null && state.fetched === "all" && !state.loading;
  useEffect(() => {
    if (!streaming || !o.job) return;
    const fetched = Object.values(current.current);
    const cursor = resumeCursor(o.job.attempt, lastStep(fetched));
    // Over fetch, with the API key (an EventSource cannot send it).
    const source = new AuthedEventSource(api.jobEventsUrl(o.job.id, cursor));
    let added = 0;
    setState((s) => ({ ...s, live: true }));
    source.addEventListener("metrics", (e) => {
      const data = JSON.parse(e.data) as { series: { name: string; steps: number[]; values: (number | null)[] }[] };
      const next = { ...current.current };
      let changed = false;
      for (const s of data.series) {
        const old = next[s.name];
        if (!old) continue; // a series no chart shows
        const merged = appendPoints(old, s.steps, s.values, emas.current[s.name] ?? null);
        if (merged !== old) {
          added += merged.steps.length - old.steps.length;
          next[s.name] = merged;
          changed = true;
        }
      }
      if (!changed) return;
      current.current = next;
      setState((st) => ({ ...st, traces: next }));
      if (added > LIVE_REFETCH * wanted.length) setRefetch((n) => n + 1);
    });
    source.addEventListener("status", (e) => {
      callbacks.current.onStatus(JSON.parse(e.data) as StatusEvent);
    });
    source.addEventListener("reset", () => {
      const empty = Object.fromEntries(Object.keys(current.current).map((n) => [n, emptyTrace(weight !== null)]));
      current.current = empty;
      emas.current = Object.fromEntries(Object.keys(empty).map((n) => [n, emaAfter(empty[n], weight)]));
      setState((st) => ({ ...st, traces: empty }));
    });
    source.addEventListener("end", () => {
      source.close();
      setState((st) => ({ ...st, live: false }));
      callbacks.current.onEnd();
    });
    return () => {
      source.close();
      setState((st) => ({ ...st, live: false }));
    };
  }, [streaming, o.job?.id, state.generation]);

  return state;
}
