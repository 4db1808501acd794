import { describe, expect, it } from "vitest";
import { legendLabels, seriesColour, shortKeys } from "../src/lib/legend";

describe("legends from the fields that differ", () => {
  it("shortens paths to their last part where that is unambiguous", () => {
    const short = shortKeys(["optimizer.lr", "optimizer.momentum", "schedule.gamma", "model.gamma"]);
    expect(short.get("optimizer.lr")).toBe("lr");
    expect(short.get("schedule.gamma")).toBe("schedule.gamma");
  });

  it("labels each group by its values, with its seed count", () => {
    const labels = legendLabels([
      { differs: { "optimizer.lr": 0.01, "optimizer.momentum": null }, fallback: "a", seeds: 3 },
      { differs: { "optimizer.lr": 0.1, "optimizer.momentum": 0.9 }, fallback: "b" },
    ]);
    expect(labels).toEqual(["lr=0.01 (3 seeds)", "lr=0.1, momentum=0.9"]);
  });

  it("falls back to the job's name when nothing differs, and tells equal labels apart", () => {
    expect(legendLabels([{ differs: {}, fallback: "seed" }, { differs: {}, fallback: "seed again" }]))
      .toEqual(["seed", "seed again"]);
    expect(legendLabels([{ differs: { a: 1 }, fallback: "x" }, { differs: { a: 1 }, fallback: "y" }]))
      .toEqual(["a=1 · x", "a=1 · y"]);
  });

  it("puts a class that differs first, as itself", () => {
    expect(legendLabels([{ differs: { "optimizer.lr": 0.3, "optimizer.name": "Adam" }, fallback: "x" }]))
      .toEqual(["Adam, lr=0.3"]);
  });

  it("leaves out what a job does not set, unless nothing else differs", () => {
    expect(legendLabels([
      { differs: { "optimizer.momentum": null }, fallback: "a" },
      { differs: { "optimizer.momentum": 0.9 }, fallback: "b" },
    ])).toEqual(["momentum=none", "momentum=0.9"]);
    expect(legendLabels([
      { differs: { "schedule.name": null, "schedule.gamma": null }, fallback: "a" },
      { differs: { "schedule.name": "StepLR", "schedule.gamma": 0.3 }, fallback: "b" },
    ])).toEqual(["no schedule", "StepLR, gamma=0.3"]);
  });

  it("names schedules by class and keywords", () => {
    expect(legendLabels([{ differs: { schedule: { name: "StepLR", step_size: 5 } }, fallback: "x" }]))
      .toEqual(["schedule=StepLR(step_size=5)"]);
  });

  it("gives many series distinct colours", () => {
    const colours = new Set(Array.from({ length: 100 }, (_, i) => seriesColour(i, 100)));
    expect(colours.size).toBe(100);
  });
});
