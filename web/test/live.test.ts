import { describe, expect, it } from "vitest";
import { appendPoints, Ema, emaAfter, emptyTrace, lastStep, resumeCursor, smooth, type Trace } from "../src/lib/live";

describe("the debiased EMA (the API's smoothing)", () => {
  it("starts at the first value and is pulled towards the later ones", () => {
    const w = 0.6;
    const out = smooth([1, 3, 5], w);
    // last = 0.4, 1.44, 2.864; divided by 1 - 0.6^k
    expect(out[0]).toBeCloseTo(1, 12);
    expect(out[1]).toBeCloseTo(1.44 / (1 - 0.36), 12);
    expect(out[2]).toBeCloseTo(2.864 / (1 - 0.216), 12);
  });

  it("passes nulls (NaN, inf) through without moving the average", () => {
    const out = smooth([2, null, 4], 0.5);
    expect(out[1]).toBeNull();
    expect(out[2]).toEqual(smooth([2, 4], 0.5)[1]);
  });

  it("passes a constant beginning through exactly", () => {
    expect(smooth([0.1, 0.1, 0.1], 0.9)).toEqual([0.1, 0.1, 0.1]);
    expect(smooth([0.1, 0.1, 0.3], 0.9)[2]).not.toBe(0.3);
  });

  it("refuses weights outside [0, 1)", () => {
    expect(() => new Ema(1)).toThrow();
    expect(() => new Ema(-0.1)).toThrow();
  });
});

describe("live points appended to a fetched trace", () => {
  const fetched = (smoothing: number | null): Trace => {
    const values = [10, 8, 6];
    return { steps: [0, 1, 2], values, smoothed: smoothing === null ? null : smooth(values, smoothing) };
  };

  it("drops the points the fetch already returned", () => {
    const t = appendPoints(fetched(null), [1, 2, 3, 4], [8, 6, 5, 4], null);
    expect(t.steps).toEqual([0, 1, 2, 3, 4]);
    expect(t.values).toEqual([10, 8, 6, 5, 4]);
  });

  it("returns the same trace when nothing is new (no redraw)", () => {
    const t = fetched(null);
    expect(appendPoints(t, [0, 2], [10, 6], null)).toBe(t);
  });

  it("continues the smoothing as if the whole series had been smoothed at once", () => {
    const w = 0.8;
    const t = fetched(w);
    const merged = appendPoints(t, [3, 4, 5], [5, null, 3], emaAfter(t, w));
    expect(merged.smoothed).toEqual(smooth([10, 8, 6, 5, null, 3], w));
  });

  it("starts from the beginning of an empty trace", () => {
    const t = appendPoints(emptyTrace(false), [0, 1], [3, 2], null);
    expect(t.steps).toEqual([0, 1]);
  });
});

describe("where the stream resumes", () => {
  it("is the last step of any series fetched, in the API's cursor format", () => {
    const a: Trace = { steps: [0, 5, 9], values: [1, 1, 1], smoothed: null };
    const b: Trace = { steps: [0, 4], values: [1, 1], smoothed: null };
    expect(lastStep([a, b])).toBe(9);
    expect(resumeCursor(2, 9)).toBe("2:9");
  });

  it("is the start when nothing was fetched or no run has started", () => {
    expect(lastStep([emptyTrace(false)])).toBeNull();
    expect(resumeCursor(1, null)).toBeNull();
    expect(resumeCursor(0, 5)).toBeNull();
  });
});
