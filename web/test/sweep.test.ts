import { describe, expect, it } from "vitest";
import { axisBins, heatmap, metricByAxis, rampColour, rampPosition, spansDecades } from "../src/lib/sweep";
import type { SweepPoint } from "../src/types";

const point = (lr: number, momentum: number, mean: number | null): SweepPoint =>
  ({ point: { "optimizer.lr": lr, "optimizer.momentum": momentum }, jobs: [], seeds: [0], values: 1, mean, min: mean, max: mean });

const grid = [point(0.01, 0, 1), point(0.001, 0, 4), point(0.01, 0.9, 2), point(0.001, 0.9, null)];

describe("the metric against one axis", () => {
  it("sorts the axis and draws one line per value of the other axes", () => {
    const s = metricByAxis(grid, "optimizer.lr");
    expect(s.numeric).toBe(true);
    expect(s.xs).toEqual([0.001, 0.01]);
    expect(s.lines).toEqual([
      { label: "momentum=0", values: [4, 1] },
      { label: "momentum=0.9", values: [null, 2] },
    ]);
  });

  it("puts non-numeric axis values (schedules, null) at categories", () => {
    const pts: SweepPoint[] = [null, { name: "StepLR" }].map((schedule, i) =>
      ({ point: { schedule }, jobs: [], seeds: [0], values: 1, mean: i, min: i, max: i }));
    const s = metricByAxis(pts, "schedule");
    expect(s.numeric).toBe(false);
    expect(s.labels).toEqual(["none", "StepLR"]);
    expect(s.xs).toEqual([0, 1]);
  });

  it("uses a log axis for values spanning decades", () => {
    expect(spansDecades([0.0001, 0.01])).toBe(true);
    expect(spansDecades([0.001, 0.01])).toBe(false);
    expect(spansDecades([0, 1000])).toBe(false);
  });
});

describe("the heatmap", () => {
  it("puts each point's mean in its cell", () => {
    const map = heatmap(grid, "optimizer.lr", "optimizer.momentum");
    expect(map.xLabels).toEqual(["0.001", "0.01"]);
    expect(map.yLabels).toEqual(["0", "0.9"]);
    expect(map.cells.map((r) => r.map((c) => c.mean))).toEqual([[4, 1], [null, 2]]);
    expect([map.min, map.max]).toEqual([1, 4]);
  });

  it("bins a random search's many values, log-spaced when they span decades", () => {
    const values = Array.from({ length: 50 }, (_, i) => 10 ** (-4 + (3 * i) / 49));
    const bins = axisBins(values, 12, 6);
    expect(bins.labels).toHaveLength(6);
    expect(bins.index(1e-4)).toBe(0);
    expect(bins.index(0.1)).toBe(5);
    expect(bins.index(10 ** -2.5)).toBe(3);
  });

  it("averages the points that share a cell", () => {
    const pts = [point(0.01, 0, 1), point(0.01, 0, 3)];
    expect(heatmap(pts, "optimizer.lr", "optimizer.momentum").cells[0][0]).toEqual({ mean: 2, count: 2 });
  });

  it("colours along a ramp, on a log scale for values spanning decades", () => {
    expect(rampColour(0)).toBe("rgb(68, 1, 84)");
    expect(rampColour(1)).toBe("rgb(253, 231, 37)");
    expect(rampPosition(10, 1, 1000)).toBeCloseTo(1 / 3, 12);
    expect(rampPosition(5, 0, 10)).toBe(0.5);
  });
});
