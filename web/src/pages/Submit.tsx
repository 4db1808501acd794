// Submit a job or a sweep: a form generated from the catalog beside a raw JSON editor (both
// edit the same document), presets, dataset upload; the API's 422 shown at its fields.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { ErrorBox, Loading, PageTitle, useAsync } from "../components/common";
import { domId, FieldInput } from "../components/FieldInput";
import { placeErrors, type PlacedErrors } from "../lib/errors";
import { applyField, baseOf, buildForm, fieldIds, type Field, isSweep, withBase } from "../lib/form";
import { fmtBytes } from "../lib/format";
import { navigate } from "../lib/nav";
import { getIn, isObject, setIn } from "../lib/paths";
import { jobPath, sweepPath } from "../lib/routes";
import { PRESETS } from "../presets";
import type { Json, JsonObject } from "../types";

const SWEEP_FIELDS: Field[] = [
  { id: "sweep.name", path: ["name"], label: "sweep name", control: { kind: "text" }, value: undefined, placeholder: "", required: false },
  { id: "sweep.axes", path: ["axes"], label: "axes", control: { kind: "json" }, value: undefined, placeholder: "{}",
    required: false, help: 'dotted paths to lists of values, e.g. {"optimizer.lr": [0.01, 0.1]}; or {"log_uniform": [1e-4, 0.1]} with mode random' },
  { id: "sweep.seeds", path: ["seeds"], label: "seeds", control: { kind: "json" }, value: undefined, placeholder: "the base's seed",
    required: false, help: "a count (3) or a list ([0, 1, 2])" },
  { id: "sweep.mode", path: ["mode"], label: "mode", control: { kind: "select", options: [
    { value: "grid", label: "grid (every combination)" }, { value: "random", label: "random (samples draws)" }] },
    value: undefined, placeholder: "grid", required: false },
  { id: "sweep.samples", path: ["samples"], label: "samples", control: { kind: "number", integer: true }, value: undefined,
    placeholder: "", required: false, help: "random mode: how many points" },
  { id: "sweep.fuse", path: ["fuse"], label: "fuse", control: { kind: "checkbox" }, value: undefined, placeholder: "true",
    required: false, help: "run points that differ only in optimizer options, schedule and seed as one fused run" },
];

const pretty = (doc: JsonObject) => JSON.stringify(doc, null, 2);
const SECTION_ERRORS = ["model", "data", "optimizer", "schedule"];

export function SubmitPage({ search }: { search: string }) {
  const catalog = useAsync(() => api.catalog(), []);
  const q = new URLSearchParams(search);
  const from = q.get("from");
  const initial = PRESETS.find((p) => p.id === (q.get("preset") ?? "seed")) ?? PRESETS[0];
  const [doc, setDocState] = useState<JsonObject>(initial.doc);
  const [text, setText] = useState(() => pretty(initial.doc));
  const [textError, setTextError] = useState<string | null>(null);
  const [errors, setErrors] = useState<PlacedErrors>({ fields: {}, general: [] });
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [loadedNote, setLoadedNote] = useState<string>(`Loaded the preset “${initial.title}”.`);

  useEffect(() => {
    if (!from) return;
    api.job(from).then((job) => {
      load({ ...job.spec, name: job.name ? `${job.name} (again)` : "" }, `Loaded the spec of job ${from.slice(0, 8)}.`);
    }, (e: unknown) => setSubmitError(e));
  }, [from]);

  const load = (next: JsonObject, note: string) => {
    setDocState(next);
    setText(pretty(next));
    setTextError(null);
    setErrors({ fields: {}, general: [] });
    setLoadedNote(note);
  };
  /** A form edit: the document changes, the JSON follows. */
  const setDoc = (next: JsonObject, changed?: string) => {
    setDocState(next);
    setText(pretty(next));
    setTextError(null);
    if (changed && errors.fields[changed]) {
      const fields = { ...errors.fields };
      delete fields[changed];
      setErrors({ ...errors, fields });
    }
  };
  /** A JSON edit: the form follows whenever the text parses to an object. */
  const onText = (value: string) => {
    setText(value);
    try {
      const parsed = JSON.parse(value) as Json;
      if (!isObject(parsed)) throw new Error("the document must be a JSON object");
      setDocState(parsed);
      setTextError(null);
    } catch (e) {
      setTextError(e instanceof Error ? e.message : String(e));
    }
  };

  const sweep = isSweep(doc);
  const sections = useMemo(() => (catalog.value ? buildForm(catalog.value, baseOf(doc)) : []), [catalog.value, doc]);
  // Errors about a whole part ("optimizer: SGD refused its arguments") show at its section.
  const known = useMemo(() => new Set([...fieldIds(sections), ...SECTION_ERRORS,
                                       ...(sweep ? SWEEP_FIELDS.map((f) => f.id) : [])]), [sections, sweep]);
  const kinds = useMemo(() => new Set([...(catalog.value?.models ?? []).map((m) => m.kind),
                                       ...(catalog.value?.data ?? []).map((d) => d.kind)]), [catalog.value]);
  const formRef = useRef<HTMLFormElement>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (textError) return;
    setBusy(true);
    setSubmitError(null);
    setErrors({ fields: {}, general: [] });
    try {
      if (sweep) navigate(sweepPath((await api.submitSweep(doc)).id));
      else navigate(jobPath((await api.submitJob(doc)).id));
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && err.detail.length) {
        const placed = placeErrors(err.detail, (id) => known.has(id), sweep, kinds);
        setErrors(placed);
        window.setTimeout(() => {
          const first = Object.keys(placed.fields)[0];
          const target = first ? document.getElementById(domId(first)) : document.getElementById("form-errors");
          target?.focus();
        }, 0);
      } else {
        setSubmitError(err);
      }
    } finally {
      setBusy(false);
    }
  };

  const toggleSweep = () => {
    if (sweep) {
      setDoc(baseOf(doc));
      return;
    }
    const lr = getIn(doc, ["optimizer", "lr"]);
    const values = typeof lr === "number" ? [lr / 10, lr, lr * 10].map((v) => Number(v.toPrecision(3))) : [0.001, 0.01, 0.1];
    setDoc({ name: doc.name ?? "", base: doc, axes: { "optimizer.lr": values }, fuse: true });
  };

  if (catalog.error) return <><PageTitle title="Submit">Submit</PageTitle><ErrorBox error={catalog.error} title="Could not read the catalog" /></>;
  if (!catalog.value) return <><PageTitle title="Submit">Submit</PageTitle><Loading what="the catalog" /></>;
  return (
    <>
      <PageTitle title="Submit">Submit a {sweep ? "sweep" : "job"}</PageTitle>
      <Presets onLoad={(p) => load(p.doc, `Loaded the preset “${p.title}”.`)} />
      <p class="hint" role="status">{loadedNote}</p>
      <form ref={formRef} class="submit" onSubmit={submit} aria-label={sweep ? "Sweep" : "Job spec"} noValidate>
        {errors.general.length ? (
          <div id="form-errors" class="error-box" role="alert" tabIndex={-1}>
            <strong>The API refused the {sweep ? "sweep" : "spec"}:</strong>
            <ul>{errors.general.map((m, i) => <li key={i}>{m}</li>)}</ul>
          </div>
        ) : null}
        {Object.keys(errors.fields).length ? (
          <p class="error-summary" role="alert">
            Fix {Object.keys(errors.fields).length === 1 ? "the field" : "the fields"} marked below: {Object.keys(errors.fields).join(", ")}.
          </p>
        ) : null}
        <ErrorBox error={submitError} />
        <div class="submit-bar">
          <button type="submit" class="primary" disabled={busy || !!textError}>{busy ? "Submitting…" : sweep ? "Submit sweep" : "Submit job"}</button>
          <button type="button" class="secondary" onClick={toggleSweep}>{sweep ? "Make it a single job" : "Make it a sweep"}</button>
        </div>
        <div class="submit-grid">
          <div class="form-side">
            {sweep ? <SweepSection doc={doc} errors={errors} setDoc={setDoc} /> : null}
            {sections.map((s) => (
              <fieldset key={s.id} class={`form-section section-${s.id}`}>
                <legend>{s.title}{sweep ? <span class="hint"> (base)</span> : null}</legend>
                {s.description ? <p class="hint">{s.description}</p> : null}
                {errors.fields[s.id] ? (
                  <p id={domId(s.id)} tabIndex={-1} class="field-error" data-error-for={s.id} role="alert">{errors.fields[s.id].join("; ")}</p>
                ) : null}
                <div class="fields">
                  {s.fields.map((f) => (
                    <FieldInput key={f.id} field={f} errors={errors.fields[f.id]}
                                onChange={(v) => setDoc(withBase(doc, applyField(catalog.value!, baseOf(doc), f.path, v)), f.id)} />
                  ))}
                </div>
                {s.id === "data" && getIn(baseOf(doc), ["data", "kind"]) === "upload"
                  ? <Upload onUploaded={(id) => setDoc(withBase(doc, setIn(baseOf(doc), ["data", "dataset_id"], id)))} /> : null}
              </fieldset>
            ))}
          </div>
          <div class="json-side">
            <label for="spec-json">The {sweep ? "sweep request" : "spec"} as JSON <span class="hint">(everything the form does not cover: stop, clip_grad_norm, parameter_groups, summary…)</span></label>
            <textarea id="spec-json" class="mono" value={text} spellcheck={false} rows={30}
                      aria-invalid={textError ? "true" : undefined} aria-describedby={textError ? "spec-json-error" : undefined}
                      onInput={(e) => onText(e.currentTarget.value)} />
            {textError ? <p id="spec-json-error" class="field-error" role="alert">JSON: {textError}</p> : null}
          </div>
        </div>

      </form>
    </>
  );
}

function Presets({ onLoad }: { onLoad: (p: (typeof PRESETS)[number]) => void }) {
  return (
    <section class="card presets" aria-labelledby="presets-title">
      <h2 id="presets-title">Presets</h2>
      <ul>
        {PRESETS.map((p) => (
          <li key={p.id}>
            <button type="button" class="preset" data-preset={p.id} onClick={() => onLoad(p)}>{p.title}</button>
            <span class="hint">{p.description}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

function SweepSection({ doc, errors, setDoc }: { doc: JsonObject; errors: PlacedErrors; setDoc: (d: JsonObject, changed?: string) => void }) {
  return (
    <fieldset class="form-section section-sweep">
      <legend>Sweep</legend>
      <p class="hint">Every combination of the axes (times the seeds) is one job; each is validated before any is queued.</p>
      <div class="fields">
        {SWEEP_FIELDS.map((f) => (
          <FieldInput key={f.id} field={{ ...f, value: doc[f.path[0]] }} errors={errors.fields[f.id]}
                      onChange={(v) => setDoc(setIn(doc, f.path, v), f.id)} />
        ))}
      </div>
    </fieldset>
  );
}

function Upload({ onUploaded }: { onUploaded: (id: string) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [target, setTarget] = useState("");
  const [name, setName] = useState("");
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const existing = useAsync(() => api.datasets(), []);
  const upload = async () => {
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    if (target) form.append("target", target);
    if (name) form.append("name", name);
    setError(null);
    setStatus("Uploading…");
    try {
      const ds = await api.upload(form);
      setStatus(`Uploaded ${ds.name}: ${ds.rows} rows, ${ds.features} features${ds.classes ? `, ${ds.classes} classes` : ""} (${fmtBytes(ds.size_bytes)}).`);
      onUploaded(ds.id);
      existing.reload();
    } catch (e) {
      setStatus(null);
      setError(e);
    }
  };
  return (
    <div class="upload">
      <h3>Upload a data set</h3>
      <div class="fields">
        <div class="field">
          <label for="upload-file">File (CSV with a header row, or NPZ with X and y)</label>
          <input id="upload-file" type="file" accept=".csv,.npz" onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} />
        </div>
        <div class="field">
          <label for="upload-target">Target column (CSV)</label>
          <input id="upload-target" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="upload-name">Name</label>
          <input id="upload-name" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="the file name" />
        </div>
      </div>
      <button type="button" onClick={upload} disabled={!file}>Upload</button>
      <span role="status" class="hint"> {status}</span>
      <ErrorBox error={error} title="Upload refused" />
      {existing.value?.data.length ? (
        <div class="field">
          <label for="upload-existing">Or use an uploaded one</label>
          <select id="upload-existing" onChange={(e) => e.currentTarget.value && onUploaded(e.currentTarget.value)}>
            <option value="">choose…</option>
            {existing.value.data.map((d) => <option key={d.id} value={d.id}>{d.name} ({d.rows} rows)</option>)}
          </select>
        </div>
      ) : null}
    </div>
  );
}

