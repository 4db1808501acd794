// Live points from the SSE stream, merged into the (downsampled) history fetched first.

/**
 * TensorBoard's debiased EMA, as the API computes `smoothed` (service/jobs/smoothing.py):
 * non-finite values (null here) pass through; values equal to every finite value before
 * them pass through too (a constant beginning stays exact).
 */
export class Ema {
  private last = 0;
  private count = 0;
  private first: number | null = null;
  private constant = true;

  constructor(readonly weight: number) {
    if (!(weight >= 0 && weight < 1)) throw new RangeError(`smoothing weight ${weight} not in [0, 1)`);
  }

  push(value: number | null): number | null {
    if (value === null || !Number.isFinite(value)) return value;
    const w = this.weight;
    this.last = this.last * w + (1 - w) * value;
    this.count += 1;
    if (this.first === null) this.first = value;
    this.constant = this.constant && value === this.first;
    return this.constant ? value : this.last / (1 - w ** this.count);
  }
}

export function smooth(values: readonly (number | null)[], weight: number): (number | null)[] {
  const ema = new Ema(weight);
  return values.map((v) => ema.push(v));
}

/** One series as a chart draws it: steps, values and (with smoothing) the smoothed values. */
export interface Trace {
  steps: number[];
  values: (number | null)[];
  smoothed: (number | null)[] | null;
}

export function emptyTrace(smoothing: boolean): Trace {
  return { steps: [], values: [], smoothed: smoothing ? [] : null };
}

/** An EMA advanced over a trace's values, ready to smooth the points that follow them. */
export function emaAfter(trace: Trace, weight: number | null): Ema | null {
  if (weight === null || trace.smoothed === null) return null;
  const ema = new Ema(weight);
  for (const v of trace.values) ema.push(v);
  return ema;
}

/**
 * The trace with the points of `steps` after its last step appended (a stream may repeat
 * points a fetch already returned: those are dropped). Returns the same trace when
 * nothing is new, so that callers can skip a redraw.
 */
export function appendPoints(trace: Trace, steps: readonly number[], values: readonly (number | null)[],
                             ema: Ema | null): Trace {
  const last = trace.steps.length ? trace.steps[trace.steps.length - 1] : -Infinity;
  let start = 0;
  while (start < steps.length && steps[start] <= last) start += 1;
  if (start === steps.length) return trace;
  const newSteps = steps.slice(start);
  const newValues = values.slice(start);
  return {
    steps: trace.steps.concat(newSteps),
    values: trace.values.concat(newValues),
    smoothed: trace.smoothed === null ? null
      : trace.smoothed.concat(newValues.map((v) => (ema ? ema.push(v) : v))),
  };
}

/** The last step of any series fetched: where the stream resumes from. */
export function lastStep(traces: Iterable<Trace>): number | null {
  let last: number | null = null;
  for (const t of traces) {
    const s = t.steps.length ? t.steps[t.steps.length - 1] : null;
    if (s !== null && (last === null || s > last)) last = s;
  }
  return last;
}

/** The stream's cursor (`<attempt>:<last step>`, docs/api.md), or null to start from step 0. */
export function resumeCursor(attempt: number, last: number | null): string | null {
  return attempt > 0 && last !== null ? `${attempt}:${last}` : null;
}
