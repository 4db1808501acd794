// Several jobs (or a sweep's) overlaid: one panel per metric, seed groups as a mean with a
// band, legend from the fields that differ, the ranked summaries; the URL holds the selection.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type uPlot from "uplot";
import { api } from "../api";
import { Chart, type LineSpec } from "../components/Chart";
import { ErrorBox, Link, Loading, PageTitle, StatusBadge, useAsync } from "../components/common";
import { type CompareSelection, decodeCompare, encodeCompare } from "../lib/compareUrl";
import { fmtNum, fmtValue } from "../lib/format";
import { legendLabels, seriesColour } from "../lib/legend";
import { navigate, setQuery } from "../lib/nav";
import { jobPath, sweepPath } from "../lib/routes";
import { fieldLabel, getPath, naturalOrder, splitOrder, SUMMARY_FIELDS } from "../lib/summary";
import { spansDecades } from "../lib/sweep";
import type { Comparison } from "../types";

const MAX_JOBS = 200; // the API's limit per comparison

export function ComparePage({ search }: { search: string }) {
  const selection = decodeCompare(search);
  const update = (next: Partial<CompareSelection>) => setQuery(encodeCompare({ ...selection, ...next }).slice("/compare".length));
  const ids = useAsync(async () => {
    if (!selection.sweep) return selection.jobs;
    const sweep = await api.sweep(selection.sweep, { limit: MAX_JOBS });
    return [...selection.jobs, ...(sweep.leaderboard ?? []).map((e) => e.job_id)];
  }, [selection.sweep, selection.jobs.join(",")]);
  const jobs = [...new Set(ids.value ?? [])].slice(0, MAX_JOBS);

  return (
    <>
      <PageTitle title="Compare">Compare</PageTitle>
      <p class="lead">
        {selection.sweep ? <>The jobs of <Link href={sweepPath(selection.sweep)}>sweep {selection.sweep.slice(0, 8)}</Link>{selection.jobs.length ? " and more" : ""}. </> : null}
        {jobs.length ? `${jobs.length} job${jobs.length === 1 ? "" : "s"}; the link of this page shares the selection.` : null}
      </p>
      <Picker selection={selection} jobs={jobs} update={update} />
      <ErrorBox error={ids.error} title="Could not read the sweep" />
      {!jobs.length && !ids.loading ? <p class="empty">Choose jobs on the <Link href="/jobs">jobs page</Link> (tick them, then “Compare selected”), or add ids above.</p> : null}
      {jobs.length ? (
        <>
          <div class="compare-controls">
            <label>Band across seeds
              <select value={selection.band} onChange={(e) => update({ band: e.currentTarget.value as "minmax" | "std" })}>
                <option value="minmax">min–max</option>
                <option value="std">± standard deviation</option>
              </select>
            </label>
            <label>Rank by
              <select value={splitOrder(selection.rankBy).field} onChange={(e) => update({ rankBy: naturalOrder(e.currentTarget.value) })}>
                {SUMMARY_FIELDS.map((f) => <option key={f.field} value={f.field}>{f.label}</option>)}
              </select>
            </label>
            <label class="inline">
              <input type="checkbox" checked={selection.rankBy.startsWith("-")}
                     onChange={(e) => update({ rankBy: (e.currentTarget.checked ? "-" : "") + splitOrder(selection.rankBy).field })} />
              descending
            </label>
            <label>y scale
              <select value={selection.log === null ? "auto" : selection.log ? "log" : "linear"}
                      onChange={(e) => { const v = e.currentTarget.value; update({ log: v === "auto" ? null : v === "log" }); }}>
                <option value="auto">auto (log when positive over decades)</option>
                <option value="linear">linear</option>
                <option value="log">log</option>
              </select>
            </label>
            <AddMetric onAdd={(m) => update({ metrics: [...selection.metrics.filter((x) => x !== m), m] })} />
          </div>
          {selection.metrics.map((metric, i) => (
            <MetricPanel key={metric} metric={metric} jobs={jobs} selection={selection} first={i === 0}
                         onRemove={selection.metrics.length > 1 ? () => update({ metrics: selection.metrics.filter((m) => m !== metric) }) : undefined} />
          ))}
        </>
      ) : null}
    </>
  );
}

function Picker({ selection, jobs, update }: { selection: CompareSelection; jobs: string[]; update: (s: Partial<CompareSelection>) => void }) {
  const [text, setText] = useState("");
  const add = (e: Event) => {
    e.preventDefault();
    const more = text.split(/[\s,]+/).filter(Boolean);
    if (more.length) update({ jobs: [...new Set([...selection.jobs, ...more])] });
    setText("");
  };
  return (
    <form class="picker" onSubmit={add} aria-label="Jobs to compare">
      <label>Add job ids
        <input value={text} onInput={(e) => setText(e.currentTarget.value)} placeholder="id, id, …" />
      </label>
      <button type="submit">Add</button>
      {selection.jobs.length || selection.sweep ? (
        <button type="button" class="secondary" onClick={() => navigate("/compare")}>Clear</button>
      ) : null}
      <span class="hint">{jobs.length} selected</span>
    </form>
  );
}

function AddMetric({ onAdd }: { onAdd: (metric: string) => void }) {
  const [text, setText] = useState("");
  return (
    <form class="add-metric" onSubmit={(e) => { e.preventDefault(); if (text.trim()) onAdd(text.trim()); setText(""); }}>
      <label>Add a panel for
        <input list="metric-names" value={text} onInput={(e) => setText(e.currentTarget.value)} placeholder="val_loss" size={12} />
      </label>
      <datalist id="metric-names">
        {["loss", "lr", "grad_norm", "update_norm", "param_norm", "val_loss", "val_accuracy", "train_loss_full",
          "train_accuracy"].map((m) => <option key={m} value={m} />)}
      </datalist>
      <button type="submit" class="secondary">Add</button>
    </form>
  );
}

/** Mounted only when scrolled near: a page of many panels fetches and draws only what is seen. */
function useVisible(eager: boolean) {
  const ref = useRef<HTMLDivElement>(null);
  const [visible, setVisible] = useState(eager);
  useEffect(() => {
    if (visible || !ref.current) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        setVisible(true);
        observer.disconnect();
      }
    }, { rootMargin: "200px" });
    observer.observe(ref.current);
    return () => observer.disconnect();
  }, [visible]);
  return { ref, visible };
}

function MetricPanel({ metric, jobs, selection, first, onRemove }: {
  metric: string; jobs: string[]; selection: CompareSelection; first: boolean; onRemove?: () => void;
}) {
  const { ref, visible } = useVisible(first);
  const [width] = useState(() => Math.min(1000, Math.max(200, Math.round((document.getElementById("main")?.clientWidth ?? 1000) - 40))));
  // Buckets: about one per pixel for a few jobs, fewer for many: a hundred overlaid lines
  // show no more at 1,000 points each than at 250, and the answer is four times smaller.
  const buckets = Math.max(50, Math.round(width / (jobs.length <= 10 ? 1 : jobs.length <= 50 ? 2 : 4)));
  const answer = useAsync((signal) => (visible
    ? api.compare({ jobs, metric, max_points: buckets, rank_by: selection.rankBy, band: selection.band }, signal)
    : Promise.resolve(null)), [visible, jobs.join(","), metric, selection.rankBy, selection.band]);
  // The ranked table in a task of its own, after the chart's: no long block of the page.
  const [table, setTable] = useState(false);
  useEffect(() => {
    if (!answer.value) return;
    const t = window.setTimeout(() => setTable(true), 0);
    return () => window.clearTimeout(t);
  }, [answer.value]);
  return (
    <section class="card" ref={ref} aria-labelledby={`panel-${metric}`}>
      <div class="section-head">
        <h2 id={`panel-${metric}`}>{metric}</h2>
        {onRemove ? <button type="button" class="secondary" onClick={onRemove} aria-label={`Remove the ${metric} panel`}>Remove</button> : null}
      </div>
      <ErrorBox error={answer.error} title={`Could not compare ${metric}`} />
      {answer.loading && !answer.value ? <Loading what={metric} /> : null}
      {answer.value ? <Overlay comparison={answer.value} log={selection.log} /> : <div class="chart-placeholder" />}
      {first && answer.value && table ? <Ranking comparison={answer.value} /> : null}
    </section>
  );
}

function Overlay({ comparison, log }: { comparison: Comparison; log: boolean | null }) {
  const [hidden, setHidden] = useState<Set<number>>(new Set());
  const names = useMemo(() => new Map(comparison.jobs.map((j) => [j.id, j.name])), [comparison]);
  const labels = useMemo(() => legendLabels(comparison.groups.map((g) => ({
    differs: g.differs, fallback: names.get(g.jobs[0]) || g.jobs[0].slice(0, 8), seeds: g.seeds.length,
  }))), [comparison, names]);
  const { data, lines, bands } = useMemo(() => {
    const n = comparison.groups.length;
    const columns: (number | null)[][] = [];
    const lineSpecs: LineSpec[] = [];
    const bandPairs: [number, number][] = [];
    comparison.groups.forEach((g, i) => {
      const colour = seriesColour(i, n);
      columns.push(g.mean);
      lineSpecs.push({ label: labels[i], colour, show: !hidden.has(i) });
      if (g.jobs.length > 1) {
        columns.push(g.high, g.low);
        const at = columns.length; // 1-based in uPlot: x is 0
        lineSpecs.push({ label: `${labels[i]} high`, colour, band: true, show: !hidden.has(i) },
                       { label: `${labels[i]} low`, colour, band: true, show: !hidden.has(i) });
        bandPairs.push([at - 1, at]);
      }
    });
    return { data: [comparison.steps, ...columns] as uPlot.AlignedData, lines: lineSpecs, bands: bandPairs };
  }, [comparison, labels, hidden]);
  const finite = useMemo(() => comparison.groups.flatMap((g) => g.mean).filter((v): v is number => v !== null), [comparison]);
  const autoLog = finite.length > 0 && finite.every((v) => v > 0) && spansDecades(finite);
  const toggle = (i: number) => setHidden((h) => {
    const next = new Set(h);
    if (next.has(i)) next.delete(i); else next.add(i);
    return next;
  });
  return (
    <>
      <Chart name={`compare:${comparison.metric}`} title={`${comparison.metric} of ${comparison.jobs.length} jobs by step`}
             data={data} lines={lines} bands={bands} xLabel="step" xKind="step" log={log ?? autoLog}
             legend={false} height={320} />
      <p class="hint">{comparison.bucket_width === 1 ? "Every step" : `The ${comparison.method}, in buckets of ${comparison.bucket_width.toLocaleString("en-US")} steps`}.
        Drag to zoom in, double-click to zoom out.</p>
      <div class="legend-tools">
        <button type="button" class="secondary" onClick={() => setHidden(new Set())}>Show all</button>
        <button type="button" class="secondary" onClick={() => setHidden(new Set(comparison.groups.map((_, i) => i)))}>Hide all</button>
      </div>
      <ul class="legend" aria-label="Curves">
        {comparison.groups.map((g, i) => (
          <li key={g.jobs.join(",")}>
            <label class="inline">
              <input type="checkbox" checked={!hidden.has(i)} onChange={() => toggle(i)} />
              <span class="swatch" style={{ background: seriesColour(i, comparison.groups.length) }} aria-hidden="true" />
              {labels[i]}
            </label>
            {g.jobs.length === 1 ? <> <Link href={jobPath(g.jobs[0])} class="hint">job</Link></> : <span class="hint"> {g.band} band</span>}
          </li>
        ))}
      </ul>
    </>
  );
}

function Ranking({ comparison }: { comparison: Comparison }) {
  const byId = new Map(comparison.jobs.map((j) => [j.id, j]));
  const differs = [...new Set(comparison.jobs.flatMap((j) => Object.keys(j.differs)))];
  const rankField = splitOrder(comparison.rank_by).field;
  const own = !["final_loss", "best_loss", "steps_done"].includes(rankField); // else a column already
  return (
    <>
      <h3>Ranked by {fieldLabel(splitOrder(comparison.rank_by).field)}{comparison.rank_by.startsWith("-") ? " (highest first)" : ""}</h3>
      <div class="table-wrap">
        <table class="ranking">
          <thead>
            <tr>
              <th scope="col">#</th><th scope="col">job</th><th scope="col">status</th>
              {differs.map((d) => <th key={d} scope="col">{d}</th>)}
              <th scope="col">seed</th>
              {own ? <th scope="col">{fieldLabel(rankField)}</th> : null}
              <th scope="col">final loss</th><th scope="col">best loss</th><th scope="col">steps</th><th scope="col">outcome</th>
            </tr>
          </thead>
          <tbody>
            {comparison.ranking.map((r) => {
              const job = byId.get(r.id);
              return (
                <tr key={r.id}>
                  <td class="num">{r.rank}</td>
                  <td><Link href={jobPath(r.id)}>{r.name || r.id.slice(0, 8)}</Link></td>
                  <td>{job ? <StatusBadge status={job.status} /> : null}</td>
                  {differs.map((d) => <td key={d}>{fmtValue(job?.differs[d])}</td>)}
                  <td class="num">{job?.seed ?? "—"}</td>
                  {own ? <td class="num">{fmtNum(r.value)}</td> : null}
                  <td class="num">{fmtNum(getPath(r.summary, "final_loss") ?? null)}</td>
                  <td class="num">{fmtNum(getPath(r.summary, "best_loss") ?? null)}</td>
                  <td class="num">{fmtNum(getPath(r.summary, "steps_done") ?? null)}</td>
                  <td>{fmtNum(getPath(r.summary, "outcome") ?? null)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
