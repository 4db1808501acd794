// What the charts expose for the browser test and the benchmark (window.__optimlab):
// `charts[name]` is the uPlot instance's current data; performance.mark("charts-drawn")
// once every chart of the page has drawn data; `zooms` times each zoom from the drag to
// the redraw of the re-fetched range.

export interface ZoomTiming {
  name: string;
  range: [number, number] | null;
  started: number;
  drawn: number | null;
}

interface Exposed {
  charts: Record<string, unknown>;
  ready: Record<string, boolean>;
  draws: { name: string; at: number; points: number }[];
  zooms: ZoomTiming[];
}

declare global {
  interface Window {
    __optimlab?: Exposed;
  }
}

function exposed(): Exposed {
  window.__optimlab ??= { charts: {}, ready: {}, draws: [], zooms: [] };
  return window.__optimlab;
}

export function registerChart(name: string, data: () => unknown): void {
  const e = exposed();
  Object.defineProperty(e.charts, name, { get: data, configurable: true, enumerable: true });
  e.ready[name] = false;
}

export function unregisterChart(name: string): void {
  const e = exposed();
  delete e.charts[name];
  delete e.ready[name];
}

const sameRange = (a: [number, number] | null, b: [number, number] | null) =>
  a === b || (a !== null && b !== null && a[0] === b[0] && a[1] === b[1]);

/** A drag (or double-click: null) asked chart `name` for a range; timed until it is drawn. */
export function zoomStarted(name: string, range: [number, number] | null): void {
  exposed().zooms.push({ name, range, started: performance.now(), drawn: null });
}

/** A chart drew `points` x values of `range` (null: everything); the first time with data
 * it is ready; a zoom waiting for this range is done. */
export function chartDrawn(name: string, points: number, range: [number, number] | null): void {
  const e = exposed();
  e.draws.push({ name, at: performance.now(), points });
  if (e.draws.length > 500) e.draws.splice(0, e.draws.length - 500);
  if (points > 0 && e.ready[name] === false) {
    e.ready[name] = true;
    performance.mark(`chart-drawn:${name}`);
    if (Object.values(e.ready).every(Boolean)) performance.mark("charts-drawn");
  }
  for (const z of e.zooms) {
    if (z.drawn === null && z.name === name && sameRange(z.range, range)) z.drawn = performance.now();
  }
}

/** A new page: forget its charts' readiness (they register again). */
export function newPage(): void {
  const e = exposed();
  performance.clearMarks("charts-drawn");
  e.zooms = [];
}
