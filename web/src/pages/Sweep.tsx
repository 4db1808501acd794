// One sweep: counts and progress (polled while it runs), the leaderboard by any summary
// field, the metric against an axis, a heatmap over two axes, the fusion record, cancel.

import { useMemo, useState } from "preact/hooks";
import type uPlot from "uplot";
import { api } from "../api";
import { Chart } from "../components/Chart";
import { ErrorBox, Link, Loading, PageTitle, StatusBadge, useAsync, usePoll } from "../components/common";
import { encodeCompare } from "../lib/compareUrl";
import { fmtDate, fmtNum, fmtValue, shortId } from "../lib/format";
import { seriesColour } from "../lib/legend";
import { navigate, setQuery } from "../lib/nav";
import { queryString } from "../lib/query";
import { jobPath } from "../lib/routes";
import { fieldLabel, naturalOrder, splitOrder, SUMMARY_FIELDS } from "../lib/summary";
import { axisNames, heatmap, metricByAxis, rampColour, rampPosition, spansDecades } from "../lib/sweep";
import { STATUSES, type Sweep } from "../types";

const LEADERBOARD_LIMIT = 500;

export function SweepPage({ id, search }: { id: string; search: string }) {
  const q = new URLSearchParams(search);
  const rankBy = q.get("rank_by") || "final_loss";
  const loaded = useAsync(() => api.sweep(id, { rank_by: rankBy, limit: LEADERBOARD_LIMIT }), [id, rankBy]);
  const sweep = loaded.value;
  usePoll(!!sweep && sweep.status !== "finished", 2000, loaded.reload);
  const [error, setError] = useState<unknown>(null);

  if (!sweep) {
    return (
      <>
        <PageTitle title="Sweep">Sweep {shortId(id)}</PageTitle>
        {loaded.error ? <ErrorBox error={loaded.error} /> : <Loading what="the sweep" />}
      </>
    );
  }
  const setRank = (field: string, descending?: boolean) => {
    const next = descending === undefined ? naturalOrder(field) : (descending ? "-" : "") + field;
    setQuery(queryString({ rank_by: next === "final_loss" ? null : next }));
  };
  const cancel = async () => {
    try {
      loaded.set(await api.cancelSweep(id));
      loaded.reload();
    } catch (e) {
      setError(e);
    }
  };
  const done = Object.entries(sweep.counts).filter(([s]) => s !== "queued" && s !== "running")
    .reduce((n, [, c]) => n + c, 0);
  const { field, descending } = splitOrder(rankBy);
  return (
    <>
      <header class="page-head">
        <div>
          <PageTitle title={sweep.name || "Sweep"}>{sweep.name || `Sweep ${shortId(sweep.id)}`}</PageTitle>
          <p class="meta">
            <span class={`badge sweep-${sweep.status}`}>{sweep.status}</span>{" "}
            <code>{sweep.id}</code> · created {fmtDate(sweep.created_at)} · {sweep.size} jobs
            {sweep.tags.map((t) => <span key={t} class="tag">{t}</span>)}
          </p>
        </div>
        <div class="actions">
          {sweep.status !== "finished" ? <button type="button" class="danger" onClick={cancel}>Cancel sweep</button> : null}
          <button type="button" onClick={() => navigate(encodeCompare({ sweep: sweep.id, rankBy }))}>Compare the curves</button>
          <Link href={`/jobs?sweep=${sweep.id}`} class="button-link secondary">Its jobs</Link>
        </div>
      </header>
      <ErrorBox error={error} />
      <section class="card" aria-labelledby="progress-title">
        <h2 id="progress-title">Progress</h2>
        <progress max={sweep.size} value={done} aria-label="Jobs finished">{done} of {sweep.size}</progress>
        <p aria-live="polite">
          {done} of {sweep.size} finished
          {STATUSES.filter((s) => sweep.counts[s]).map((s) => (
            <span key={s} class="count"> · <StatusBadge status={s} /> {sweep.counts[s]}</span>
          ))}
        </p>
      </section>
      <div class="columns">
        <AxisChart sweep={sweep} />
        <Heatmap sweep={sweep} />
      </div>
      <section class="card" aria-labelledby="leaderboard-title">
        <div class="section-head">
          <h2 id="leaderboard-title">Leaderboard</h2>
          <label>Rank by
            <select value={field} onChange={(e) => setRank(e.currentTarget.value)}>
              {SUMMARY_FIELDS.map((f) => <option key={f.field} value={f.field}>{f.label}</option>)}
            </select>
          </label>
          <label class="inline">
            <input type="checkbox" checked={descending} onChange={(e) => setRank(field, e.currentTarget.checked)} />
            descending
          </label>
        </div>
        <Leaderboard sweep={sweep} />
      </section>
      <Fusion sweep={sweep} />
    </>
  );
}

function Leaderboard({ sweep }: { sweep: Sweep }) {
  const entries = sweep.leaderboard ?? [];
  const axes = [...new Set(entries.flatMap((e) => Object.keys(e.point)))];
  const metric = fieldLabel(splitOrder(sweep.rank_by ?? "final_loss").field);
  return (
    <div class="table-wrap">
      <table class="leaderboard">
        <thead>
          <tr>
            <th scope="col">#</th><th scope="col">job</th><th scope="col">status</th>
            {axes.map((a) => <th key={a} scope="col">{a}</th>)}
            <th scope="col">seed</th><th scope="col">{metric}</th><th scope="col">outcome</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.job_id}>
              <td class="num">{e.rank}</td>
              <td><Link href={jobPath(e.job_id)}>{shortId(e.job_id)}</Link></td>
              <td><StatusBadge status={e.status} /></td>
              {axes.map((a) => <td key={a} class="num">{fmtValue(e.point[a])}</td>)}
              <td class="num">{e.seed}</td>
              <td class="num">{fmtNum(e.value)}</td>
              <td>{e.outcome ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {entries.length < sweep.size ? <p class="hint">The first {entries.length} of {sweep.size}.</p> : null}
    </div>
  );
}

function AxisChart({ sweep }: { sweep: Sweep }) {
  const points = sweep.by_point ?? [];
  const axes = axisNames(points);
  const [axis, setAxis] = useState<string | null>(null);
  const chosen = axis && axes.includes(axis) ? axis : axes[0];
  const layout = useMemo(() => (chosen ? metricByAxis(points, chosen) : null), [points, chosen]);
  const metric = fieldLabel(splitOrder(sweep.rank_by ?? "final_loss").field);
  if (!chosen || !layout) return null;
  const data = [layout.xs, ...layout.lines.map((l) => l.values)] as uPlot.AlignedData;
  const finite = layout.lines.flatMap((l) => l.values).filter((v): v is number => v !== null);
  const log = spansDecades(finite);
  return (
    <section class="card" aria-labelledby="axis-title">
      <div class="section-head">
        <h2 id="axis-title">{metric} by {chosen}</h2>
        {axes.length > 1 ? (
          <label>Axis
            <select value={chosen} onChange={(e) => setAxis(e.currentTarget.value)}>
              {axes.map((a) => <option key={a} value={a}>{a}</option>)}
            </select>
          </label>
        ) : null}
      </div>
      <Chart name="sweep:metric" title={`${metric} (mean over seeds) by ${chosen}`} data={data}
             lines={layout.lines.map((l, i) => ({ label: l.label, colour: seriesColour(i, layout.lines.length) }))}
             xLabel={chosen} xKind={layout.numeric ? "number" : "category"} xCategories={layout.labels}
             xLog={layout.log} log={log} points height={260} />
      <p class="hint">Each point: the mean over its seeds. One line per value of the other axes.</p>
    </section>
  );
}

function Heatmap({ sweep }: { sweep: Sweep }) {
  const points = sweep.by_point ?? [];
  const axes = axisNames(points);
  const [xAxis, setX] = useState<string | null>(null);
  const [yAxis, setY] = useState<string | null>(null);
  if (axes.length < 2) return null;
  const x = xAxis && axes.includes(xAxis) ? xAxis : axes[0];
  const y = yAxis && axes.includes(yAxis) && yAxis !== x ? yAxis : axes.find((a) => a !== x)!;
  const map = heatmap(points, x, y);
  const metric = fieldLabel(splitOrder(sweep.rank_by ?? "final_loss").field);
  const colour = (v: number | null) => (v === null || map.min === null || map.max === null
    ? "transparent" : rampColour(rampPosition(v, map.min, map.max)));
  const dark = (v: number | null) => v !== null && map.min !== null && map.max !== null && rampPosition(v, map.min, map.max) < 0.55;
  return (
    <section class="card" aria-labelledby="heatmap-title">
      <div class="section-head">
        <h2 id="heatmap-title">{metric}: {y} × {x}</h2>
        <label>Columns
          <select value={x} onChange={(e) => setX(e.currentTarget.value)}>
            {axes.map((a) => <option key={a} value={a}>{a}</option>)}
          </select>
        </label>
        <label>Rows
          <select value={y} onChange={(e) => setY(e.currentTarget.value)}>
            {axes.filter((a) => a !== x).map((a) => <option key={a} value={a}>{a}</option>)}
          </select>
        </label>
      </div>
      <div class="table-wrap">
        <table class="heatmap">
          <caption class="visually-hidden">{metric} by {y} (rows) and {x} (columns)</caption>
          <thead>
            <tr><th scope="col"><span class="visually-hidden">{y} by {x}</span><span aria-hidden="true">{short(y)} ↓ {short(x)} →</span></th>{map.xLabels.map((l) => <th key={l} scope="col">{l}</th>)}</tr>
          </thead>
          <tbody>
            {map.yLabels.map((yl, yi) => (
              <tr key={yl}>
                <th scope="row">{yl}</th>
                {map.cells[yi].map((c, xi) => (
                  <td key={xi} style={{ background: colour(c.mean) }} class={dark(c.mean) ? "on-dark" : ""}
                      title={c.count > 1 ? `mean of ${c.count} points` : undefined}>
                    {fmtNum(c.mean)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="hint">
        Mean over seeds{axes.length > 2 ? " and over the other axes" : ""}; colour from {fmtNum(map.min)} (dark) to {fmtNum(map.max)} (light).
      </p>
    </section>
  );
}

const short = (axis: string) => axis.split(".").pop() ?? axis;

function Fusion({ sweep }: { sweep: Sweep }) {
  const fusion = sweep.fusion;
  if (!fusion) return null;
  const tasks = fusion.tasks ?? [];
  const alone = fusion.alone ?? [];
  return (
    <section class="card" aria-labelledby="fusion-title">
      <h2 id="fusion-title">Fusion</h2>
      <p>
        {fusion.enabled === false ? "Fusion was turned off for this sweep. " : ""}
        {tasks.length} fused task{tasks.length === 1 ? "" : "s"} ({tasks.reduce((n, t) => n + t.length, 0)} jobs trained together);
        {" "}{alone.length} job{alone.length === 1 ? "" : "s"} alone.
      </p>
      {tasks.length ? (
        <ol class="tasks">
          {tasks.map((t, i) => (
            <li key={i}>
              <details>
                <summary>Task {i + 1}: {t.length} jobs in one run</summary>
                <p class="ids">{t.map((j) => <Link key={j} href={jobPath(j)}>{shortId(j)}</Link>)}</p>
              </details>
            </li>
          ))}
        </ol>
      ) : null}
      {alone.length ? (
        <div class="table-wrap">
          <table class="alone">
            <thead><tr><th scope="col">job</th><th scope="col">why it ran alone</th></tr></thead>
            <tbody>
              {alone.map((a) => (
                <tr key={a.job_id}><td><Link href={jobPath(a.job_id)}>{shortId(a.job_id)}</Link></td><td>{a.reason}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
