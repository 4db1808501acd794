// One uPlot chart: created once per structure (series, scales), fed by setData; a drag
// selects a range (the page re-fetches it), a double-click resets.

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fmtNum, fmtSeconds } from "../lib/format";
import { withAlpha } from "../lib/legend";
import { chartDrawn, registerChart, unregisterChart } from "../lib/registry";

export interface LineSpec {
  label: string;
  colour: string;
  width?: number;
  dash?: number[];
  show?: boolean;
  band?: boolean; // the edge of a band: no line, no legend value
}

export type Range = [number, number];

export interface ChartProps {
  name: string; // key in window.__optimlab.charts
  title: string; // the accessible name
  data: uPlot.AlignedData | null;
  lines: LineSpec[];
  bands?: [number, number][]; // [upper, lower] series indices (1-based, as uPlot's)
  xLabel: string;
  yLabel?: string;
  log?: boolean;
  xLog?: boolean;
  xKind?: "step" | "seconds" | "number" | "category";
  xCategories?: string[];
  range?: Range | null; // the step range `data` covers (null: everything), given with it
  onZoom?: (x: Range | null) => void; // the x values dragged over; null: double-click. Without it, a drag zooms in place
  height?: number;
  legend?: boolean;
  points?: boolean; // draw every point (scatter-like sweeps)
  sync?: string; // charts with the same key share the cursor
}

/** Non-positive values vanish on a log axis; uPlot needs them as gaps. */
function forLog(data: uPlot.AlignedData): uPlot.AlignedData {
  return [data[0], ...data.slice(1).map((ys) =>
    (ys as (number | null | undefined)[]).map((v) => (v !== null && v !== undefined && v > 0 ? v : null)))];
}

function xFormatter(kind: ChartProps["xKind"], categories?: string[]) {
  return (v: number | null): string => {
    if (v === null || v === undefined) return "—";
    if (kind === "seconds") return fmtSeconds(v);
    if (kind === "category") return categories?.[Math.round(v)] ?? "";
    if (kind === "step") return Math.round(v).toLocaleString("en-US");
    return fmtNum(v);
  };
}

/** On a log axis, label (and grid) the powers of ten only, at most about eight of them. */
function logFilter(_u: uPlot, splits: number[]): (number | null)[] {
  const decades = splits.filter((v) => v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9);
  const every = Math.max(1, Math.ceil(decades.length / 8));
  return splits.map((v) => {
    const e = Math.round(Math.log10(v));
    return decades.includes(v) && e % every === 0 ? v : null;
  });
}

const LOG_AXIS = { filter: logFilter, ticks: { filter: logFilter }, grid: { filter: logFilter } };

function options(p: ChartProps, width: number, onSelect: (u: uPlot) => void,
                 onDraw: (u: uPlot) => void): uPlot.Options {
  const fx = xFormatter(p.xKind, p.xCategories);
  return {
    width,
    height: p.height ?? 260,
    legend: { show: p.legend ?? true, live: true },
    scales: {
      x: { time: false, distr: p.xLog ? 3 : 1,
           ...(p.xKind === "category" ? { range: (_u, lo, hi) => [lo - 0.3, hi + 0.3] } : {}) },
      y: { distr: p.log ? 3 : 1 },
    },
    axes: [
      { label: p.xLabel, labelSize: 20, size: 40,
        values: (_u, splits) => splits.map((v) => (v === null || (p.xKind === "category" && !Number.isInteger(v)) ? "" : fx(v))),
        ...(p.xLog ? LOG_AXIS : {}),
        ...(p.xKind === "category" ? { splits: () => (p.xCategories ?? []).map((_, i) => i) } : {}) },
      { label: p.yLabel, labelSize: p.yLabel ? 20 : 0, size: 64,
        values: (_u, splits) => splits.map((v) => (v === null ? "" : fmtNum(v, 3))),
        ...(p.log ? LOG_AXIS : {}) },
    ],
    series: [
      { label: p.xLabel, value: (_u, v) => fx(v) },
      ...p.lines.map((l): uPlot.Series => ({
        label: l.label,
        stroke: l.band ? "transparent" : l.colour,
        width: l.band ? 0 : (l.width ?? 1.6),
        dash: l.dash,
        show: l.show ?? true,
        spanGaps: true,
        points: { show: p.points ?? false, size: 6, fill: l.colour },
        value: (_u, v) => fmtNum(v),
      })),
    ],
    bands: p.bands?.map(([upper, lower]) => ({
      series: [upper, lower] as [number, number],
      fill: withAlpha(p.lines[upper - 1]?.colour ?? "#2563eb", 0.16),
    })),
    cursor: {
      drag: { x: true, y: false, setScale: !p.onZoom },
      ...(p.sync ? { sync: { key: p.sync } } : {}),
    },
    hooks: { setSelect: [onSelect], draw: [onDraw] },
  };
}

/** The parts of the props that need a new uPlot object when they change. */
function structureKey(p: ChartProps): string {
  return JSON.stringify([p.lines.map((l) => [l.label, l.colour, l.dash, l.band, l.width]), p.bands, p.log,
                         p.xLog, p.xKind, p.xCategories, p.xLabel, p.yLabel, p.legend, p.points, !!p.onZoom,
                         p.height, p.sync]);
}

export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef(props);
  latest.current = props;
  const drawnData = useRef<uPlot.AlignedData | null>(null);
  const given = useRef<uPlot.AlignedData | null>(null); // before forLog: what tests read
  const key = structureKey(props);

  useEffect(() => {
    const el = box.current!;
    const onSelect = (u: uPlot) => {
      const zoom = latest.current.onZoom;
      if (!zoom || u.select.width < 2) return;
      const lo = u.posToVal(u.select.left, "x");
      const hi = u.posToVal(u.select.left + u.select.width, "x");
      u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      zoom([lo, hi]);
    };
    const onDraw = (u: uPlot) => {
      if (u.data !== drawnData.current) return; // a redraw of what was drawn already
      drawnData.current = null;
      const n = u.data[0]?.length ?? 0;
      el.dataset.points = String(n);
      el.dataset.range = latest.current.range ? latest.current.range.join(":") : "all";
      if (n > 0) el.dataset.ready = "true";
      chartDrawn(latest.current.name, n, latest.current.range ?? null);
    };
    const width = Math.max(200, el.clientWidth);
    const u = new uPlot(options(latest.current, width, onSelect, onDraw), [[]], el);
    plot.current = u;
    const name = latest.current.name;
    registerChart(name, () => given.current ?? plot.current?.data);
    const onDouble = () => {
      const zoom = latest.current.onZoom;
      if (zoom) zoom(null);
    };
    u.over.addEventListener("dblclick", onDouble);
    const resize = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: u.height });
    });
    resize.observe(el);
    const d = latest.current.data;
    if (d) feed(u, d, latest.current.log ?? false, drawnData, given);
    return () => {
      resize.disconnect();
      u.over.removeEventListener("dblclick", onDouble);
      unregisterChart(name);
      u.destroy();
      plot.current = null;
    };
  }, [key, props.name]);

  useEffect(() => {
    const u = plot.current;
    if (u && props.data) feed(u, props.data, props.log ?? false, drawnData, given);
  }, [props.data]); // the range comes with its data: a draw reports the range it shows

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    props.lines.forEach((l, i) => {
      const show = l.show ?? true;
      if (u.series[i + 1] && u.series[i + 1].show !== show) u.setSeries(i + 1, { show });
    });
  }, [props.lines]);

  return (
    <figure class="chart">
      <div ref={box} class="chart-canvas" role="img" aria-label={props.title} data-chart={props.name} />
    </figure>
  );
}

type Ref = { current: uPlot.AlignedData | null };

function feed(u: uPlot, data: uPlot.AlignedData, log: boolean, drawn: Ref, given: Ref): void {
  given.current = data;
  const shown = log ? forLog(data) : data;
  drawn.current = shown;
  u.setData(shown);
}
