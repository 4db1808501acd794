import { describe, expect, it } from "vitest";
import { applyField, baseOf, buildForm, fieldIds, fromText, keywordControl, plainText, schemaControl, toText,
         withBase } from "../src/lib/form";
import seed from "../src/presets/seed.json";
import type { Catalog, JsonObject } from "../src/types";
import catalogJson from "./fixtures/catalog.json";

const catalog = catalogJson as unknown as Catalog;
const spec = seed as JsonObject;
const byId = (s: JsonObject) => new Map(buildForm(catalog, s).flatMap((x) => x.fields).map((f) => [f.id, f]));

describe("the form generated from the catalog", () => {
  it("has a field for every keyword of the chosen optimizer, defaults as placeholders", () => {
    const fields = byId(spec);
    const sgd = catalog.optimizers.find((o) => o.name === "SGD")!;
    for (const p of sgd.parameters) expect(fields.has(`optimizer.${p.name}`)).toBe(true);
    expect(fields.get("optimizer.lr")!.value).toBe(0.01);
    expect(fields.get("optimizer.momentum")!.placeholder).toBe("0");
    expect(fields.get("optimizer.nesterov")!.control.kind).toBe("tristate");
  });

  it("offers every optimizer, scheduler, model and data kind", () => {
    const fields = byId(spec);
    const names = (id: string) => {
      const c = fields.get(id)!.control;
      return c.kind === "select" ? c.options.map((o) => o.value).filter(Boolean) : [];
    };
    expect(names("optimizer.name")).toEqual(catalog.optimizers.map((o) => o.name));
    expect(names("schedule.name")).toEqual(catalog.schedulers.map((s) => s.name));
    expect(names("model.kind")).toEqual(catalog.models.map((m) => m.kind));
    expect(names("data.kind")).toEqual(catalog.data.map((d) => d.kind));
  });

  it("shows the fields of the chosen model and data kinds", () => {
    const fields = byId(spec);
    expect(fields.get("model.expression")!.value).toBe("x**2");
    expect(fields.get("model.expression")!.required).toBe(true);
    expect(fields.get("data.targets")!.control.kind).toBe("json");
    const mlp = byId({ ...spec, model: { kind: "mlp", hidden: [128, 64] } });
    expect(mlp.get("model.hidden")!.control).toEqual({ kind: "list", items: "integer" });
    expect(mlp.get("model.activation")!.control.kind).toBe("select");
  });

  it("shows a keyword the optimizer does not take, so that the API's error lands at it", () => {
    const fields = byId({ ...spec, optimizer: { name: "SGD", lr: 0.01, momentun: 0.9 } });
    expect(fields.get("optimizer.momentun")).toMatchObject({ extra: true, value: 0.9 });
  });

  it("shows a schedule's keywords, required ones marked", () => {
    const fields = byId({ ...spec, schedule: { name: "StepLR", step_size: 5 } });
    expect(fields.get("schedule.step_size")).toMatchObject({ required: true, value: 5 });
    expect(fields.has("schedule.last_epoch")).toBe(false);
    expect(fieldIds(buildForm(catalog, { ...spec, schedule: null }))).not.toContain("schedule.gamma");
  });
});

describe("controls", () => {
  it("follow torch's annotations", () => {
    expect(keywordControl("float | torch.Tensor")).toEqual({ kind: "number", integer: false });
    expect(keywordControl("int")).toEqual({ kind: "number", integer: true });
    expect(keywordControl("bool | None")).toEqual({ kind: "tristate" });
    expect(keywordControl("Literal['triangular', 'triangular2', 'exp_range']")).toEqual({ kind: "select", options: [
      { value: "triangular", label: "triangular" }, { value: "triangular2", label: "triangular2" },
      { value: "exp_range", label: "exp_range" }] });
    expect(keywordControl("tuple[float, float]")).toEqual({ kind: "json" });
    expect(keywordControl("Callable[[int], float] | list[Callable[[int], float]]")).toEqual({ kind: "text" });
  });

  it("follow the JSON schema of models and data", () => {
    expect(schemaControl({ type: "boolean", default: true })).toEqual({ kind: "checkbox" });
    expect(schemaControl({ anyOf: [{ type: "integer" }, { type: "null" }] })).toEqual({ kind: "number", integer: true });
    expect(schemaControl({ type: "object" })).toEqual({ kind: "json" });
  });

  it("turn text into values and back", () => {
    expect(fromText({ kind: "number", integer: false }, "1e-3")).toEqual({ ok: true, value: 0.001 });
    expect(fromText({ kind: "number", integer: true }, "2.5")).toMatchObject({ ok: false });
    expect(fromText({ kind: "number", integer: false }, " ")).toEqual({ ok: true, value: undefined });
    expect(fromText({ kind: "list", items: "integer" }, "128, 64")).toEqual({ ok: true, value: [128, 64] });
    expect(fromText({ kind: "list", items: "string" }, "a, 1")).toEqual({ ok: true, value: ["a", "1"] });
    expect(fromText({ kind: "json" }, "[0.9, 0.99]")).toEqual({ ok: true, value: [0.9, 0.99] });
    expect(fromText({ kind: "json" }, "{x")).toMatchObject({ ok: false });
    expect(fromText({ kind: "tristate" }, "false")).toEqual({ ok: true, value: false });
    expect(toText({ kind: "list", items: "integer" }, [128, 64])).toBe("128, 64");
    expect(toText({ kind: "json" }, { x: [1] })).toBe('{"x":[1]}');
    expect(toText({ kind: "number", integer: false }, 0.01)).toBe("0.01");
  });
});

describe("changes", () => {
  it("switching the optimizer keeps the keywords the new one takes", () => {
    const next = applyField(catalog, { ...spec, optimizer: { name: "SGD", lr: 0.1, momentum: 0.9 } }, ["optimizer", "name"], "Adam");
    expect(next.optimizer).toEqual({ name: "Adam", lr: 0.1 });
  });

  it("switching the model or data kind starts from an example, and 'none' removes the data", () => {
    expect(applyField(catalog, spec, ["model", "kind"], "mlp").model).toEqual({ kind: "mlp", hidden: [64] });
    expect("data" in applyField(catalog, spec, ["data", "kind"], undefined)).toBe(false);
    expect(applyField(catalog, spec, ["schedule", "name"], undefined).schedule).toBeNull();
    expect(applyField(catalog, spec, ["schedule", "name"], "StepLR").schedule).toEqual({ name: "StepLR" });
  });

  it("an empty field removes its key; the default applies", () => {
    const next = applyField(catalog, spec, ["optimizer", "lr"], undefined);
    expect(next.optimizer).toEqual({ name: "SGD" });
    expect(spec.optimizer).toEqual({ name: "SGD", lr: 0.01 }); // never mutated
  });

  it("edits a sweep's base", () => {
    const sweep: JsonObject = { name: "s", base: spec, axes: { "optimizer.lr": [0.1, 0.01] } };
    expect(baseOf(sweep)).toBe(spec);
    const next = withBase(sweep, applyField(catalog, baseOf(sweep), ["steps"], 50));
    expect((next.base as JsonObject).steps).toBe(50);
    expect(next.axes).toEqual(sweep.axes);
  });

  it("reads docstrings' code marks as plain text", () => {
    expect(plainText("e.g. ``w*u + b``.")).toBe("e.g. w*u + b.");
  });
});
