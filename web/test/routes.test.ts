import { describe, expect, it } from "vitest";
import { jobPath, matchRoute } from "../src/lib/routes";
import { queryString, splitList } from "../src/lib/query";

describe("the pages' paths", () => {
  it("match the paths the API serves index.html at", () => {
    expect(matchRoute("/")).toEqual({ page: "jobs" });
    expect(matchRoute("/jobs/")).toEqual({ page: "jobs" });
    expect(matchRoute(jobPath("a b"))).toEqual({ page: "job", id: "a b" });
    expect(matchRoute("/sweeps/s1")).toEqual({ page: "sweep", id: "s1" });
    expect(matchRoute("/compare")).toEqual({ page: "compare" });
    expect(matchRoute("/submit")).toEqual({ page: "submit" });
    expect(matchRoute("/jobs/a/b")).toEqual({ page: "missing", path: "/jobs/a/b" });
  });
});

describe("query strings", () => {
  it("leave out empty parameters and join lists", () => {
    expect(queryString({ a: "", b: null, c: undefined, d: 0, e: ["x", "y"], f: [] })).toBe("?d=0&e=x%2Cy");
    expect(queryString({})).toBe("");
    expect(splitList(" a, ,b,")).toEqual(["a", "b"]);
  });
});
