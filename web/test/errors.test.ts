import { describe, expect, it } from "vitest";
import { errorText, placeErrors } from "../src/lib/errors";

const fields = new Set(["optimizer.name", "optimizer.lr", "optimizer.momentun", "model.hidden", "model.kind",
                        "steps", "sweep.axes", "sweep.seeds"]);
const isField = (id: string) => fields.has(id);

describe("a 422's detail at the form's fields", () => {
  it("puts an error at the field its loc names", () => {
    const placed = placeErrors([{ loc: ["body", "optimizer", "momentun"], msg: "SGD has no keyword 'momentun'" }], isField);
    expect(placed.fields).toEqual({ "optimizer.momentun": ["SGD has no keyword 'momentun'"] });
    expect(placed.general).toEqual([]);
  });

  it("falls back to the nearest field above, naming the rest of the path", () => {
    const placed = placeErrors([{ loc: ["body", "model", "hidden", 0], msg: "must be >= 1" }], isField);
    expect(placed.fields).toEqual({ "model.hidden": ["0: must be >= 1"] });
  });

  it("lists what no field shows in the form's own list", () => {
    const placed = placeErrors([{ loc: ["body", "stop", "patience"], msg: "bad" }, { loc: ["body"], msg: "not JSON" }], isField);
    expect(placed.general).toEqual(["stop.patience: bad", "not JSON"]);
  });

  it("reads a sweep's base fields and its points' messages", () => {
    const placed = placeErrors([
      { loc: ["body", "base", "steps"], msg: "must be positive" },
      { loc: ["body", "points", 0], msg: "point 0 (optimizer.lr=0.1, seed=0): optimizer.momentun: SGD has no keyword 'momentun'" },
    ], isField, true);
    expect(placed.fields).toEqual({
      steps: ["must be positive"],
      "optimizer.momentun": ["point 0 (optimizer.lr=0.1, seed=0): SGD has no keyword 'momentun'"],
    });
  });

  it("drops the model kind a sweep point's path names", () => {
    const placed = placeErrors([{ loc: ["body", "points", 0], msg: "point 0 (schedule=None, seed=0): model.mlp.hidden.0: too small" }],
                               isField, true, new Set(["mlp", "expression"]));
    expect(placed.fields).toEqual({ "model.hidden": ["0: point 0 (schedule=None, seed=0): too small"] });
  });

  it("keeps one error per union field, without pydantic's branch names", () => {
    const placed = placeErrors([
      { loc: ["body", "axes", "optimizer.lr", "list[json-or-python[json=any]]"], msg: "List should have at least 1 item" },
      { loc: ["body", "axes", "optimizer.lr", "function-after[_check(), LogUniform]"], msg: "Input should be a valid dictionary" },
      { loc: ["body", "seeds", "list[constrained-int]"], msg: "Input should be a valid list" },
    ], isField, true);
    expect(placed.fields).toEqual({
      "sweep.axes": ["optimizer.lr: List should have at least 1 item"],
      "sweep.seeds": ["Input should be a valid list"],
    });
  });
});

describe("an error answer's text", () => {
  it("is the API's message, else its detail, else the status", () => {
    expect(errorText(422, { message: "steps: bad", detail: [] })).toBe("steps: bad");
    expect(errorText(404, { detail: "No job" })).toBe("No job");
    expect(errorText(502, null)).toBe("HTTP 502");
  });
});
