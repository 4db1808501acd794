import { describe, expect, it } from "vitest";
import { COMPARE_DEFAULTS, decodeCompare, encodeCompare } from "../src/lib/compareUrl";

describe("the compare page's URL", () => {
  it("round-trips a selection", () => {
    const selection = { jobs: ["a", "b"], sweep: "s1", metrics: ["loss", "val_loss"], band: "std" as const,
                        rankBy: "-evaluation.val_accuracy", log: true };
    const url = encodeCompare(selection);
    expect(url.startsWith("/compare?")).toBe(true);
    expect(decodeCompare(url.slice("/compare".length))).toEqual(selection);
  });

  it("leaves the defaults out, so that shared links stay short", () => {
    expect(encodeCompare({ jobs: ["a", "b"] })).toBe("/compare?jobs=a%2Cb");
    expect(decodeCompare("?jobs=a,b")).toEqual({ ...COMPARE_DEFAULTS, jobs: ["a", "b"] });
  });

  it("reads what a person types: spaces, repeats, an unknown band", () => {
    const s = decodeCompare("?jobs=a, b,,a&metric=&band=wide&log=0");
    expect(s.jobs).toEqual(["a", "b"]);
    expect(s.metrics).toEqual(["loss"]);
    expect(s.band).toBe("minmax");
    expect(s.log).toBe(false);
  });

  it("keeps the log choice unset unless asked", () => {
    expect(decodeCompare("?jobs=a").log).toBeNull();
    expect(encodeCompare({ jobs: ["a"], log: false })).toContain("log=0");
  });
});
