// One job: live charts of any recorded series, summary, spec, error, actions, log lines,
// the landscape of a two-parameter expression.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type uPlot from "uplot";
import { api, ApiError } from "../api";
import { Chart, type Range } from "../components/Chart";
import {
  CopyButton, ErrorBox, Link, Loading, PageTitle, StatusBadge, useAsync,
} from "../components/common";
import { type StatusEvent, useJobHistory, WALL } from "../components/history";
import { encodeCompare } from "../lib/compareUrl";
import { fmtBytes, fmtDate, fmtNum, fmtSeconds, fmtValue } from "../lib/format";
import { landscapeEligible } from "../lib/landscape";
import { seriesColour, withAlpha } from "../lib/legend";
import { navigate, setQuery } from "../lib/nav";
import { queryString, splitList } from "../lib/query";
import { zoomStarted } from "../lib/registry";
import { sweepPath } from "../lib/routes";
import { getPath } from "../lib/summary";
import { spansDecades } from "../lib/sweep";
import { stepsBetween, wallTimes } from "../lib/walltime";
import { ACTIVE, type Job, type JsonObject } from "../types";

const DEFAULT_SERIES = ["loss", "lr"];

interface View {
  series: string[];
  x: "step" | "wall";
  smoothing: number;
  log: Record<string, boolean>;
  every: boolean; // every stored point, not downsampled (slow for long runs)
}

function readView(search: string): View {
  const q = new URLSearchParams(search);
  const series = splitList(q.get("series"));
  const log: Record<string, boolean> = {};
  for (const n of splitList(q.get("log"))) log[n] = true;
  for (const n of splitList(q.get("linear"))) log[n] = false;
  const smoothing = Number(q.get("smoothing") ?? 0);
  return { series: series.length ? series : DEFAULT_SERIES, x: q.get("x") === "wall" ? "wall" : "step",
           smoothing: smoothing >= 0 && smoothing < 1 ? smoothing : 0, log, every: q.get("points") === "all" };
}

function writeView(v: View): string {
  const entries = Object.entries(v.log);
  return queryString({
    series: v.series.join(",") === DEFAULT_SERIES.join(",") ? null : v.series,
    x: v.x === "step" ? null : v.x,
    smoothing: v.smoothing || null,
    log: entries.filter(([, on]) => on).map(([n]) => n),
    linear: entries.filter(([, on]) => !on).map(([n]) => n),
    points: v.every ? "all" : null,
  });
}

export function JobPage({ id, search }: { id: string; search: string }) {
  const loaded = useAsync((signal) => api.job(id, signal), [id]);
  const job = loaded.value;
  const onStatus = (e: StatusEvent) => {
    if (job && (e.status !== job.status || e.attempt !== job.attempt)) loaded.set({ ...job, ...e });
  };

  if (loaded.error && !job) {
    const gone = loaded.error instanceof ApiError && loaded.error.status === 404;
    return (
      <>
        <PageTitle title="Job">Job {id.slice(0, 8)}</PageTitle>
        <ErrorBox error={gone ? "No job with this id (deleted, or never there)." : loaded.error} />
        <p><Link href="/jobs">All jobs</Link></p>
      </>
    );
  }
  if (!job) return <><PageTitle title="Job">Job</PageTitle><Loading what="the job" /></>;
  return (
    <>
      <JobHeader job={job} onChange={loaded.set} reload={loaded.reload} />
      {job.error ? <div class="error-box" role="alert"><strong>Error</strong><pre>{job.error}</pre></div> : null}
      <Charts job={job} search={search} onStatus={onStatus} onEnd={loaded.reload} />
      <div class="columns">
        <Summary job={job} />
        <Landscape job={job} />
      </div>
      <Spec job={job} />
      <Logs job={job} />
    </>
  );
}

// ------------------------------------------------------------------ header and actions

function JobHeader({ job, onChange, reload }: { job: Job; onChange: (j: Job) => void; reload: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState(false);
  const active = ACTIVE.has(job.status);
  const act = async (run: () => Promise<void>) => {
    setError(null);
    try {
      await run();
    } catch (e) {
      setError(e);
    }
  };
  const cancel = () => act(async () => { onChange(await api.cancelJob(job.id)); });
  const rerun = () => act(async () => { navigate(`/jobs/${(await api.rerunJob(job.id)).id}`); });
  const remove = () => act(async () => {
    if (!window.confirm(`Delete job "${job.name || job.id}" and its metrics?`)) return;
    await api.deleteJob(job.id);
    navigate("/jobs");
  });
  const progress = Number(getPath(job.summary, "steps_done") ?? 0);
  const total = Number(getPath(job.summary, "steps") ?? job.spec.steps ?? 0);
  return (
    <header class="page-head">
      <div>
        <PageTitle title={job.name || "Job"}>{job.name || `Job ${job.id.slice(0, 8)}`}</PageTitle>
        <p class="meta">
          <span aria-live="polite"><StatusBadge status={job.status} /></span>
          {" "}<code>{job.id}</code> · created {fmtDate(job.created_at)}
          {job.attempt > 1 ? ` · attempt ${job.attempt}` : ""}
          {job.sweep_id ? <> · <Link href={sweepPath(job.sweep_id)}>its sweep</Link></> : null}
          {job.tags.map((t) => <span key={t} class="tag">{t}</span>)}
        </p>
        {job.status === "running" && total > 0
          ? <progress max={total} value={progress} aria-label="Steps done">{progress} of {total}</progress> : null}
      </div>
      <div class="actions">
        {active ? <button type="button" class="danger" onClick={cancel}>Cancel</button> : null}
        <button type="button" onClick={rerun}>Rerun</button>
        <button type="button" class="secondary" onClick={() => navigate(`/submit?from=${job.id}`)}>Edit as new</button>
        <button type="button" class="secondary" onClick={() => navigate(encodeCompare({ jobs: [job.id] }))}>Compare…</button>
        <button type="button" class="secondary" aria-expanded={editing} onClick={() => setEditing(!editing)}>Name and tags</button>
        {!active ? <button type="button" class="secondary danger" onClick={remove}>Delete</button> : null}
      </div>
      {editing ? <EditJob job={job} onSaved={(j) => { onChange(j); setEditing(false); reload(); }} /> : null}
      <ErrorBox error={error} />
    </header>
  );
}

function EditJob({ job, onSaved }: { job: Job; onSaved: (j: Job) => void }) {
  const [name, setName] = useState(job.name);
  const [tags, setTags] = useState(job.tags.join(", "));
  const [error, setError] = useState<unknown>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      onSaved(await api.editJob(job.id, { name, tags: splitList(tags) }));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="edit-job" onSubmit={save} aria-label="Name and tags">
      <label>Name <input value={name} onInput={(e) => setName(e.currentTarget.value)} /></label>
      <label>Tags (comma-separated) <input value={tags} onInput={(e) => setTags(e.currentTarget.value)} /></label>
      <button type="submit">Save</button>
      <ErrorBox error={error} />
    </form>
  );
}

// ------------------------------------------------------------------ charts

function useAvailableSeries(job: Job, after: boolean): string[] {
  // Asked once the charts have their data, so that listing the series never delays the
  // first draw.
  const listed = useAsync(async () => {
    if (!after) return null;
    return (await api.series(job.id)).series.map((s) => s.name);
  }, [job.id, job.status, after]);
  return (listed.value ?? []).filter((n) => n !== WALL);
}

function Charts({ job, search, onStatus, onEnd }: {
  job: Job; search: string; onStatus: (e: StatusEvent) => void; onEnd: () => void;
}) {
  const view = readView(search);
  const setView = (v: Partial<View>) => setQuery(writeView({ ...view, ...v }));
  const [range, setRange] = useState<Range | null>(null);
  const [smoothing, setSmoothing] = useState(view.smoothing); // the slider moves; fetches follow
  const area = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  useEffect(() => {
    // Points to ask for: the panels' width in pixels (a panel takes half of it on a wide
    // screen: two points per pixel there, so M4's extremes stay sharp).
    setWidth(Math.max(200, Math.min(4000, Math.round(area.current?.clientWidth ?? 1000))));
  }, []);
  useEffect(() => {
    const t = window.setTimeout(() => { if (smoothing !== view.smoothing) setView({ smoothing }); }, 200);
    return () => window.clearTimeout(t);
  }, [smoothing]);

  const history = useJobHistory({ job: width ? job : null, names: view.series, smoothing: view.smoothing,
                                  width: view.every ? null : width, range, onStatus, onEnd });
  const available = useAvailableSeries(job, history.generation > 0);
  const wall = history.traces[WALL];
  const hasWall = !!wall && wall.steps.length > 0;
  const xMode = view.x === "wall" && hasWall ? "wall" : "step";
  const toggleSeries = (name: string, on: boolean) =>
    setView({ series: on ? [...view.series, name] : view.series.filter((n) => n !== name) });
  const choices = [...new Set([...DEFAULT_SERIES, ...available, ...view.series])];

  return (
    <section class="card" aria-labelledby="charts-title">
      <div class="section-head">
        <h2 id="charts-title">Metrics</h2>
        <span class="live-note" aria-live="polite">
          {history.live ? "● live" : history.loading ? "loading…" : ""}
        </span>
      </div>
      <div class="chart-controls">
        <fieldset class="series-pick">
          <legend>Series</legend>
          {choices.map((n) => (
            <label key={n} class="inline">
              <input type="checkbox" checked={view.series.includes(n)} onChange={(e) => toggleSeries(n, e.currentTarget.checked)} />
              {n}
            </label>
          ))}
        </fieldset>
        <fieldset class="x-pick">
          <legend>x axis</legend>
          <label class="inline"><input type="radio" name="x" checked={xMode === "step"} onChange={() => setView({ x: "step" })} />step</label>
          <label class="inline" title={hasWall ? "" : "this job recorded no wall_time series"}>
            <input type="radio" name="x" checked={xMode === "wall"} disabled={!hasWall} onChange={() => setView({ x: "wall" })} />wall time
          </label>
        </fieldset>
        <label class="inline" title="Every stored point instead of about one per pixel: slow for long runs">
          <input type="checkbox" checked={view.every} onChange={(e) => setView({ every: e.currentTarget.checked })} />
          every point
        </label>
        <label class="smoothing">Smoothing <output>{smoothing.toFixed(2)}</output>
          <input type="range" min={0} max={0.99} step={0.01} value={smoothing}
                 onInput={(e) => setSmoothing(Number(e.currentTarget.value))} />
        </label>
        <div class="zoom-note">
          {range
            ? <>Steps {range[0].toLocaleString("en-US")}–{range[1].toLocaleString("en-US")}{" "}
                <button type="button" class="secondary" onClick={() => { zoomStarted(`job:${view.series[0]}`, null); setRange(null); }}>Reset zoom</button></>
            : <span class="hint">Drag across a chart to zoom in; double-click to zoom out.</span>}
        </div>
      </div>
      <ErrorBox error={history.error} title="Could not read the metrics" />
      <div ref={area} class="panels">
        {view.series.map((name, i) => (
          <Panel key={name} name={name} index={i} history={history} xMode={xMode}
                 smoothing={view.smoothing} range={range}
                 log={view.log[name]} onLog={(on) => setView({ log: { ...view.log, [name]: on } })}
                 onZoom={(stepRange) => setRange(stepRange)} />
        ))}
      </div>
    </section>
  );
}

function Panel({ name, index, history, xMode, smoothing, range, log, onLog, onZoom }: {
  name: string; index: number; history: ReturnType<typeof useJobHistory>; xMode: "step" | "wall";
  smoothing: number; range: Range | null; log: boolean | undefined; onLog: (on: boolean) => void;
  onZoom: (r: Range | null) => void;
}) {
  const trace = history.traces[name];
  const wall = history.traces[WALL];
  const xs = useMemo(() => (trace && xMode === "wall" && wall ? wallTimes(trace.steps, wall.steps, wall.values) : trace?.steps ?? []),
                     [trace, wall, xMode]);
  const data = useMemo((): uPlot.AlignedData | null => {
    if (!trace || history.generation === 0) return null;
    return trace.smoothed ? [xs, trace.values, trace.smoothed] : [xs, trace.values];
  }, [trace, xs]);
  const positives = useMemo(() => (trace?.values ?? []).filter((v): v is number => v !== null && v > 0), [trace]);
  // Decided from the first data drawn, then kept: a zoomed range or live points must not
  // flip the scale (and rebuild the chart) under the reader.
  const firstLog = useRef<boolean | null>(null);
  if (firstLog.current === null && positives.length) {
    firstLog.current = positives.length === trace!.values.filter((v) => v !== null).length && spansDecades(positives);
  }
  const isLog = log ?? firstLog.current ?? false;
  const colour = seriesColour(index, 10);
  const lines = trace?.smoothed
    ? [{ label: name, colour: withAlpha(colour, 0.35), width: 1 }, { label: `${name} (smoothed ${smoothing})`, colour, width: 2 }]
    : [{ label: name, colour, width: 1.8 }];
  const info = history.downsampled[name];
  const chartName = `job:${name}`;
  const zoom = (x: Range | null) => {
    if (x === null) {
      zoomStarted(chartName, null);
      onZoom(null);
      return;
    }
    const steps = xMode === "step" ? [Math.max(0, Math.ceil(x[0])), Math.floor(x[1])] as Range
      : stepsBetween(xs, trace?.steps ?? [], x[0], x[1]);
    if (!steps || steps[1] < steps[0]) return;
    zoomStarted(chartName, steps);
    onZoom(steps);
  };
  const empty = history.generation > 0 && trace && trace.steps.length === 0;
  return (
    <div class="panel">
      <div class="panel-head">
        <h3>{name}</h3>
        <label class="inline"><input type="checkbox" checked={isLog} onChange={(e) => onLog(e.currentTarget.checked)} />log scale</label>
        <span class="panel-info">
          {trace ? `${trace.steps.length.toLocaleString("en-US")} points shown` : ""}
          {info ? ` · ${info.points_in_range.toLocaleString("en-US")} stored points read as ${info.buckets.toLocaleString("en-US")} buckets of ${info.bucket_width.toLocaleString("en-US")} steps (first, last, min, max of each)` : ""}
          {history.live ? " · new points live" : ""}
        </span>
      </div>
      {empty ? <p class="empty">No points{range ? " in this range" : " yet"}.</p> : null}
      <Chart name={chartName} title={`${name} by ${xMode === "wall" ? "wall time" : "step"}`}
             data={data} lines={lines} xLabel={xMode === "wall" ? "wall time" : "step"}
             xKind={xMode === "wall" ? "seconds" : "step"} log={isLog} range={fetchedRange(history.fetched)}
             onZoom={zoom} sync="job" height={220} />
    </div>
  );
}

/** The step range the drawn data covers, from the history's "all" or "lo:hi". */
function fetchedRange(fetched: string | null): Range | null {
  if (!fetched || fetched === "all") return null;
  const [lo, hi] = fetched.split(":").map(Number);
  return [lo, hi];
}

// ------------------------------------------------------------------ summary, spec, logs

const SUMMARY_ROWS: [string, string, (v: unknown) => string][] = [
  ["outcome", "outcome", (v) => fmtValue(v as never)],
  ["stop_reason", "stop reason", (v) => fmtValue(v as never)],
  ["steps_done", "steps done", (v) => fmtNum(v as number)],
  ["epochs_done", "epochs done", (v) => fmtNum(v as number)],
  ["initial_loss", "initial loss", (v) => fmtNum(v as number)],
  ["final_loss", "final loss", (v) => fmtNum(v as number)],
  ["best_loss", "best loss", (v) => fmtNum(v as number)],
  ["best_step", "best step", (v) => fmtNum(v as number)],
  ["steps_to_10x", "steps to 10x lower", (v) => fmtNum(v as number)],
  ["steps_to_100x", "steps to 100x lower", (v) => fmtNum(v as number)],
  ["steps_to_1000x", "steps to 1000x lower", (v) => fmtNum(v as number)],
  ["converged_at", "converged at", (v) => fmtNum(v as number)],
  ["diverged_at", "diverged at", (v) => fmtNum(v as number)],
  ["reached_at", "reached target at", (v) => fmtNum(v as number)],
  ["loss_area_log10", "loss area (log10)", (v) => fmtNum(v as number)],
  ["best_val_loss", "best val loss", (v) => fmtNum(v as number)],
  ["best_val_step", "best val step", (v) => fmtNum(v as number)],
  ["wall_seconds", "wall time", (v) => fmtSeconds(v as number)],
  ["steps_per_second", "steps per second", (v) => fmtNum(v as number)],
  ["device", "device", (v) => fmtValue(v as never)],
  ["parameter_count", "parameters", (v) => fmtNum(v as number)],
];

const PROCESS_ROWS: [string, string, (v: unknown) => string][] = [
  ["peak_rss_bytes", "peak memory (RSS)", (v) => fmtBytes(v as number)],
  ["cpu_seconds", "CPU time", (v) => fmtSeconds(v as number)],
  ["cpu_percent", "CPU use (100 % = one core)", (v) => (v === null ? "—" : `${fmtNum(v as number)} %`)],
  ["gpu_peak_memory_bytes", "GPU peak memory", (v) => fmtBytes(v as number | null)],
  ["gpu_utilization_percent", "GPU use", (v) => (v === null ? "—" : `${fmtNum(v as number)} %`)],
  ["shared_by", "jobs sharing the process", (v) => fmtNum(v as number)],
];

function Summary({ job }: { job: Job }) {
  const s = job.summary;
  const evaluation = getPath(s, "evaluation");
  const process = getPath(s, "process");
  return (
    <section class="card" aria-labelledby="summary-title">
      <h2 id="summary-title">Summary</h2>
      {!s ? <p class="empty">No summary yet ({job.status}).</p> : (
        <dl class="facts">
          {SUMMARY_ROWS.filter(([k]) => s[k] !== undefined && s[k] !== null).map(([k, label, f]) => (
            <div key={k}><dt>{label}</dt><dd>{f(s[k])}</dd></div>
          ))}
          {evaluation && typeof evaluation === "object" && !Array.isArray(evaluation)
            ? Object.entries(evaluation).map(([k, v]) => <div key={k}><dt>{k.replace(/_/g, " ")} (last eval)</dt><dd>{fmtNum(v)}</dd></div>)
            : null}
        </dl>
      )}
      {process && typeof process === "object" && !Array.isArray(process) ? (
        <>
          <h3>Process</h3>
          <dl class="facts">
            {PROCESS_ROWS.filter(([k]) => k in process).map(([k, label, f]) => (
              <div key={k}><dt>{label}</dt><dd>{f((process as JsonObject)[k])}</dd></div>
            ))}
          </dl>
        </>
      ) : null}
      <p class="timestamps">
        started {fmtDate(job.started_at)} · finished {fmtDate(job.finished_at)} · queue {job.queue}
      </p>
    </section>
  );
}

function Landscape({ job }: { job: Job }) {
  const [failed, setFailed] = useState(false);
  const [src, setSrc] = useState<string | null>(null);
  const eligible = landscapeEligible(job.spec) && job.status !== "queued";
  const url = `${api.landscapeUrl(job.id)}?v=${encodeURIComponent(job.status + (job.summary?.steps_done ?? ""))}`;
  useEffect(() => {
    if (!eligible) return;
    const controller = new AbortController();
    let made: string | null = null;
    api.image(url, controller.signal).then((objectUrl) => {
      made = objectUrl;
      setSrc(objectUrl);
    }, () => {
      if (!controller.signal.aborted) setFailed(true);
    });
    return () => {
      controller.abort();
      if (made) URL.revokeObjectURL(made);
    };
  }, [eligible, url]);
  if (!eligible || failed || src === null) return null;
  return (
    <section class="card" aria-labelledby="landscape-title">
      <h2 id="landscape-title">Landscape</h2>
      <img class="landscape" src={src} onError={() => setFailed(true)} loading="lazy"
           alt={`Contours of ${String((job.spec.model as JsonObject).expression)} with the optimizer's path`} />
    </section>
  );
}

function Spec({ job }: { job: Job }) {
  const text = JSON.stringify(job.spec, null, 2);
  return (
    <section class="card" aria-labelledby="spec-title">
      <div class="section-head">
        <h2 id="spec-title">Spec</h2>
        <CopyButton text={text} label="Copy as JSON" />
      </div>
      <pre class="spec" tabIndex={0} aria-label="The job's spec as JSON">{text}</pre>
    </section>
  );
}

function Logs({ job }: { job: Job }) {
  const logs = useAsync(() => api.logs(job.id, { limit: 500 }), [job.id, job.status]);
  return (
    <section class="card" aria-labelledby="logs-title">
      <h2 id="logs-title">Worker log</h2>
      <ErrorBox error={logs.error} />
      {logs.value && !logs.value.lines.length ? <p class="empty">No log lines.</p> : null}
      {logs.value?.lines.length ? (
        <div class="table-wrap">
          <table class="logs">
            <thead><tr><th scope="col">time</th><th scope="col">level</th><th scope="col">attempt</th><th scope="col">logger</th><th scope="col">message</th></tr></thead>
            <tbody>
              {logs.value.lines.map((l, i) => (
                <tr key={i} class={`level-${l.level.toLowerCase()}`}>
                  <td class="date">{fmtDate(l.at)}</td><td>{l.level}</td><td class="num">{l.attempt}</td>
                  <td>{l.logger}</td><td class="message">{l.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
