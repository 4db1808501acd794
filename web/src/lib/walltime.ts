// Wall time on the x axis: the `wall_time` series has one point per stored batch (seconds
// since the run started, at the batch's last step); every other step is interpolated.

export function wallTimes(steps: readonly number[], wallSteps: readonly number[],
                          wallValues: readonly (number | null)[]): number[] {
  // Anchor: time 0 just before step 0, so a constant pace maps step k to (k + 1) * pace.
  const xs: number[] = [-1];
  const ts: number[] = [0];
  for (let i = 0; i < wallSteps.length; i += 1) {
    const t = wallValues[i];
    if (t === null || !Number.isFinite(t) || wallSteps[i] <= xs[xs.length - 1]) continue;
    xs.push(wallSteps[i]);
    ts.push(Math.max(t, ts[ts.length - 1]));
  }
  const lastX = xs[xs.length - 1];
  const pace = lastX > -1 ? ts[ts.length - 1] / (lastX + 1) : 0;
  return steps.map((s) => {
    if (s >= lastX) return ts[ts.length - 1] + (s - lastX) * pace; // beyond: the mean pace
    const j = firstAbove(xs, s) - 1; // xs[j] <= s < xs[j + 1]
    return ts[j] + ((s - xs[j]) / (xs[j + 1] - xs[j])) * (ts[j + 1] - ts[j]);
  });
}

/** The first index whose value is above `x` (xs ascending). */
function firstAbove(xs: readonly number[], x: number): number {
  let lo = 0, hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** The steps a drag over x values [lo, hi] covers: x is `xs`, the chart's x of each of `steps`
 * (both ascending). Null when no point falls inside. */
export function stepsBetween(xs: readonly number[], steps: readonly number[], lo: number,
                             hi: number): [number, number] | null {
  let first = -1, last = -1;
  for (let i = 0; i < xs.length; i += 1) {
    if (xs[i] < lo) continue;
    if (xs[i] > hi) break;
    if (first < 0) first = i;
    last = i;
  }
  if (first < 0) return null;
  return [steps[first], steps[last]];
}
