// The submit form, generated from GET /v1/catalog and the spec being edited: sections of
// fields, each naming its path in the spec (the same path a 422 names in `loc`).

import type { Catalog, ClassEntry, FieldSchema, Json, JsonObject, Keyword } from "../types";
import { getIn, isObject, setIn } from "./paths";

export type Control =
  | { kind: "text" }
  | { kind: "number"; integer: boolean }
  | { kind: "checkbox" }
  | { kind: "tristate" } // default / true / false
  | { kind: "select"; options: { value: string; label: string }[] }
  | { kind: "list"; items: "integer" | "number" | "string" } // "128, 64"
  | { kind: "json" };

export interface Field {
  id: string; // path joined with dots: where a 422 for it lands
  path: string[];
  label: string;
  control: Control;
  value: Json | undefined;
  placeholder: string; // the default, when the field is left empty
  required: boolean;
  help?: string;
  extra?: boolean; // a keyword the catalog does not list for this class
}

export interface Section {
  id: string;
  title: string;
  description?: string;
  fields: Field[];
}

const text = (v: Json | undefined): string => (v === undefined ? "" : JSON.stringify(v));

function field(path: string[], label: string, control: Control, spec: JsonObject,
               extra: Partial<Field> = {}): Field {
  return { id: path.join("."), path, label, control, value: getIn(spec, path), placeholder: "",
           required: false, ...extra };
}

/** The control for a schema field of the catalog's models and data kinds (JSON Schema). */
export function schemaControl(schema: FieldSchema): Control {
  const nonNull = schema.anyOf?.filter((s) => s.type !== "null");
  if (nonNull && nonNull.length === 1) return schemaControl({ ...nonNull[0], default: schema.default });
  if (schema.enum) return { kind: "select", options: schema.enum.map((v) => ({ value: String(v), label: String(v) })) };
  switch (schema.type) {
    case "boolean": return { kind: "checkbox" };
    case "integer": return { kind: "number", integer: true };
    case "number": return { kind: "number", integer: false };
    case "string": return { kind: "text" };
    case "array":
      if (schema.items?.type === "integer" || schema.items?.type === "number" || schema.items?.type === "string") {
        return { kind: "list", items: schema.items.type };
      }
      return { kind: "json" };
    default: return { kind: "json" };
  }
}

/** The control for an optimizer's or scheduler's keyword, from its annotation in torch. */
export function keywordControl(type: string): Control {
  const literal = /^Literal\[(.*)\]$/.exec(type);
  if (literal) {
    const options = [...literal[1].matchAll(/'([^']*)'/g)].map((m) => ({ value: m[1], label: m[1] }));
    return { kind: "select", options };
  }
  const parts = type.split("|").map((p) => p.trim()).filter((p) => p !== "None" && p !== "torch.Tensor");
  if (parts.length === 1 && parts[0] === "bool") return { kind: "tristate" };
  if (parts.length === 1 && (parts[0] === "float" || parts[0] === "int")) {
    return { kind: "number", integer: parts[0] === "int" };
  }
  if (parts.length === 1 && parts[0] === "str") return { kind: "text" };
  if (type.includes("Callable")) return { kind: "text" }; // an expression in `step`
  return { kind: "json" };
}

function schemaFields(prefix: string, entry: { fields: Record<string, FieldSchema>; required: string[] },
                      spec: JsonObject): Field[] {
  return Object.entries(entry.fields).map(([name, schema]) => field(
    [prefix, name], labelOf(name), schemaControl(schema), spec,
    { placeholder: schema.default === undefined ? "" : text(schema.default),
      required: entry.required.includes(name) }));
}

/** The catalog's descriptions come from docstrings: ``code`` reads as code. */
export function plainText(doc: string | undefined): string | undefined {
  return doc?.replace(/``([^`]+)``/g, "$1");
}

function labelOf(name: string): string {
  return name.replace(/_/g, " ");
}

function keywordFields(prefix: string, entry: ClassEntry | undefined, spec: JsonObject,
                       skip: readonly string[]): Field[] {
  const own = getIn(spec, [prefix]);
  const given = isObject(own) ? own : {};
  const listed = new Set(entry?.parameters.map((p) => p.name) ?? []);
  const fields = (entry?.parameters ?? [])
    .filter((p: Keyword) => !skip.includes(p.name))
    .map((p) => field([prefix, p.name], p.name, keywordControl(p.type), spec, {
      placeholder: p.required ? "" : text(p.default), required: p.required,
      help: keywordControl(p.type).kind === "json" ? `JSON: ${p.type}` : undefined }));
  // Keywords in the spec that the class does not take: shown, so the API's error lands here.
  for (const name of Object.keys(given)) {
    if (name === "name" || listed.has(name) || skip.includes(name)) continue;
    fields.push(field([prefix, name], name, { kind: "json" }, spec, { extra: true,
      help: entry ? `not a keyword of ${entry.name}` : undefined }));
  }
  return fields;
}

/** The sections of the form for `spec` (a job spec, or a sweep's base). */
export function buildForm(catalog: Catalog, spec: JsonObject): Section[] {
  const model = getIn(spec, ["model"]);
  const modelKind = isObject(model) && typeof model.kind === "string" ? model.kind : "";
  const modelEntry = catalog.models.find((m) => m.kind === modelKind);
  const data = getIn(spec, ["data"]);
  const dataKind = isObject(data) && typeof data.kind === "string" ? data.kind : "";
  const dataEntry = catalog.data.find((d) => d.kind === dataKind);
  const optName = String(getIn(spec, ["optimizer", "name"]) ?? "");
  const optEntry = catalog.optimizers.find((o) => o.name === optName);
  const schedule = getIn(spec, ["schedule"]);
  const schedName = isObject(schedule) && typeof schedule.name === "string" ? schedule.name : "";
  const schedEntry = catalog.schedulers.find((s) => s.name === schedName);
  const options = (names: string[], none?: string) => [
    ...(none === undefined ? [] : [{ value: "", label: none }]),
    ...names.map((n) => ({ value: n, label: n }))];

  const sections: Section[] = [
    { id: "run", title: "Run", fields: [
      field(["name"], "name", { kind: "text" }, spec),
      field(["tags"], "tags", { kind: "list", items: "string" }, spec, { help: "comma-separated" }),
    ] },
    { id: "model", title: "Model", description: plainText(modelEntry?.description), fields: [
      field(["model", "kind"], "kind", { kind: "select", options: options(catalog.models.map((m) => m.kind)) },
            spec, { required: true }),
      ...(modelEntry ? schemaFields("model", modelEntry, spec) : []),
    ] },
    { id: "data", title: "Data", description: plainText(dataEntry?.description), fields: [
      field(["data", "kind"], "kind", { kind: "select", options: options(catalog.data.map((d) => d.kind), "none (the model alone)") },
            spec),
      ...(dataEntry ? schemaFields("data", dataEntry, spec) : []),
    ] },
    { id: "loss", title: "Loss", fields: [
      field(["loss"], "loss", { kind: "select", options: [
        { value: "", label: "automatic (from the model and data)" },
        ...catalog.losses.map((l) => ({ value: l.name, label: `${l.name}: ${l.description}` }))] }, spec),
    ] },
    { id: "optimizer", title: "Optimizer", description: plainText(optEntry?.description), fields: [
      field(["optimizer", "name"], "name", { kind: "select", options: options(catalog.optimizers.map((o) => o.name)) },
            spec, { required: true }),
      ...keywordFields("optimizer", optEntry, spec, []),
    ] },
    { id: "schedule", title: "LR schedule", description: plainText(schedEntry?.description), fields: [
      field(["schedule", "name"], "name", { kind: "select", options: options(catalog.schedulers.map((s) => s.name), "none (constant lr)") },
            spec),
      ...(schedName === "ReduceLROnPlateau"
        ? [field(["schedule", "monitor"], "monitor", { kind: "select", options: [
            { value: "", label: "default" }, { value: "loss", label: "loss" }, { value: "val_loss", label: "val_loss" }] }, spec)]
        : []),
      ...(schedName ? keywordFields("schedule", schedEntry, spec, ["monitor", "last_epoch"]) : []),
    ] },
    { id: "batching", title: "Batching and length", fields: [
      field(["batch_size"], "batch size", { kind: "number", integer: true }, spec,
            { placeholder: "full batch", help: "empty: the whole data set every step; 1: pure SGD" }),
      field(["drop_last"], "drop last", { kind: "checkbox" }, spec, { placeholder: "false" }),
      field(["steps"], "steps", { kind: "number", integer: true }, spec),
      field(["epochs"], "epochs", { kind: "number", integer: true }, spec, { help: "instead of steps" }),
      field(["eval_every"], "eval every", { kind: "number", integer: true }, spec, { help: "steps between evaluations" }),
      field(["seed"], "seed", { kind: "number", integer: true }, spec, { placeholder: "0" }),
      field(["device"], "device", { kind: "select", options: [
        { value: "", label: "auto" }, { value: "cpu", label: "cpu" }, { value: "cuda", label: "cuda" }] }, spec),
    ] },
  ];
  return sections;
}

export function fieldIds(sections: readonly Section[]): Set<string> {
  return new Set(sections.flatMap((s) => s.fields.map((f) => f.id)));
}

// ------------------------------------------------------------------ text <-> value

/** What an input shows for a value. */
export function toText(control: Control, value: Json | undefined): string {
  if (value === undefined || value === null) return "";
  switch (control.kind) {
    case "list": return Array.isArray(value) ? value.map(String).join(", ") : JSON.stringify(value);
    case "text": return typeof value === "string" ? value : JSON.stringify(value);
    case "json": return JSON.stringify(value);
    case "tristate": return value === true ? "true" : value === false ? "false" : "";
    default: return typeof value === "string" ? value : JSON.stringify(value);
  }
}

export type Parsed = { ok: true; value: Json | undefined } | { ok: false; error: string };

/** The value an input's text means; empty text removes the key (the default applies). */
export function fromText(control: Control, input: string): Parsed {
  const t = input.trim();
  if (t === "") return { ok: true, value: undefined };
  switch (control.kind) {
    case "number": {
      const n = Number(t);
      if (!Number.isFinite(n)) return { ok: false, error: "not a number" };
      if (control.integer && !Number.isInteger(n)) return { ok: false, error: "not a whole number" };
      return { ok: true, value: n };
    }
    case "list": {
      const parts = t.replace(/^\[|\]$/g, "").split(",").map((p) => p.trim()).filter(Boolean);
      if (control.items === "string") return { ok: true, value: parts };
      const nums = parts.map(Number);
      if (nums.some((n) => !Number.isFinite(n) || (control.items === "integer" && !Number.isInteger(n)))) {
        return { ok: false, error: `${control.items === "integer" ? "whole numbers" : "numbers"}, separated by commas` };
      }
      return { ok: true, value: nums };
    }
    case "tristate": return { ok: true, value: t === "true" };
    case "json":
      try {
        return { ok: true, value: JSON.parse(t) as Json };
      } catch {
        return { ok: false, error: "not valid JSON (text needs quotes)" };
      }
    default: return { ok: true, value: t };
  }
}

// ------------------------------------------------------------------ changes

/** Where a new kind of model or data starts: the fields it requires, filled with examples. */
const STARTERS: Record<string, JsonObject> = {
  "model.expression": { kind: "expression", expression: "x**2", parameters: { x: [1.0] } },
  "model.linear": { kind: "linear" },
  "model.logistic": { kind: "logistic" },
  "model.mlp": { kind: "mlp", hidden: [64] },
  "model.cnn": { kind: "cnn" },
  "data.inline": { kind: "inline", targets: [16.0] },
  "data.synthetic": { kind: "synthetic", generator: "moons" },
  "data.sklearn": { kind: "sklearn", name: "digits" },
  "data.upload": { kind: "upload", dataset_id: "" },
};

/** The spec after the field `id` took `value`: switching a model, data kind, optimizer or
 * schedule also replaces what belonged to the old one. */
export function applyField(catalog: Catalog, spec: JsonObject, path: readonly string[],
                           value: Json | undefined): JsonObject {
  const id = path.join(".");
  if (id === "model.kind" || id === "data.kind") {
    const part = path[0];
    if (value === undefined || value === "") return setIn(spec, [part], undefined);
    return setIn(spec, [part], STARTERS[`${part}.${String(value)}`] ?? { kind: value });
  }
  if (id === "optimizer.name") {
    const entry = catalog.optimizers.find((o) => o.name === value);
    const old = getIn(spec, ["optimizer"]);
    const kept: JsonObject = { name: value ?? "" };
    if (isObject(old) && entry) {
      for (const p of entry.parameters) if (old[p.name] !== undefined) kept[p.name] = old[p.name];
    }
    return setIn(spec, ["optimizer"], kept);
  }
  if (id === "schedule.name") {
    if (value === undefined || value === "") return setIn(spec, ["schedule"], null);
    return setIn(spec, ["schedule"], { name: value });
  }
  if (id === "loss" || id === "device") return setIn(spec, path, value === "" ? undefined : value);
  return setIn(spec, path, value);
}

// ------------------------------------------------------------------ job or sweep

/** A sweep request has a `base`; a job spec has a `model`. */
export function isSweep(doc: JsonObject): boolean {
  return isObject(doc.base);
}

export function baseOf(doc: JsonObject): JsonObject {
  return isSweep(doc) ? (doc.base as JsonObject) : doc;
}

export function withBase(doc: JsonObject, base: JsonObject): JsonObject {
  return isSweep(doc) ? { ...doc, base } : base;
}
