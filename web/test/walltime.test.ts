import { describe, expect, it } from "vitest";
import { stepsBetween, wallTimes } from "../src/lib/walltime";

describe("wall time on the x axis", () => {
  it("interpolates the steps between the recorded batches", () => {
    // batches ending at steps 9 and 19, after 1 s and 3 s
    const t = wallTimes([0, 4, 9, 14, 19], [9, 19], [1, 3]);
    expect(t[0]).toBeCloseTo(0.1, 12); // from time 0 before step 0
    expect(t[1]).toBeCloseTo(0.5, 12);
    expect(t[2]).toBe(1);
    expect(t[3]).toBeCloseTo(2, 12);
    expect(t[4]).toBe(3);
  });

  it("extrapolates past the last batch at the run's mean pace", () => {
    const t = wallTimes([29], [9, 19], [1, 3]);
    expect(t[0]).toBeCloseTo(3 + 10 * (3 / 20), 12);
  });

  it("never goes backwards, and skips missing values", () => {
    const t = wallTimes([0, 5, 10], [4, 5, 10], [1, null, 0.5]);
    expect(t[1]).toBeGreaterThanOrEqual(t[0]);
    expect(t[2]).toBeGreaterThanOrEqual(t[1]);
  });
});

describe("a drag over wall time, as steps", () => {
  it("covers the points whose x falls inside", () => {
    expect(stepsBetween([0.1, 0.5, 1, 2, 3], [0, 4, 9, 14, 19], 0.4, 2.5)).toEqual([4, 14]);
    expect(stepsBetween([0.1, 0.5], [0, 4], 0.6, 0.9)).toBeNull();
  });
});
