// One generated form field: label, control, the default as placeholder, and the API's
// error for this field right next to it.

import { useEffect, useState } from "preact/hooks";
import { type Field, fromText, toText } from "../lib/form";
import type { Json } from "../types";

export const domId = (fieldId: string): string => `f-${fieldId.replace(/[^A-Za-z0-9_-]/g, "-")}`;

interface Props {
  field: Field;
  errors?: string[];
  onChange: (value: Json | undefined) => void;
}

export function FieldInput({ field, errors, onChange }: Props) {
  const id = domId(field.id);
  const shown = toText(field.control, field.value);
  const [text, setText] = useState(shown);
  const [focused, setFocused] = useState(false);
  const [parseError, setParseError] = useState<string | null>(null);
  useEffect(() => {
    if (!focused) {
      setText(shown);
      setParseError(null);
    }
  }, [shown, focused]);

  const messages = [...(parseError ? [parseError] : []), ...(errors ?? [])];
  const describedBy = [messages.length ? `${id}-error` : "", field.help ? `${id}-help` : ""].filter(Boolean).join(" ");
  const common = {
    id,
    "data-field": field.id,
    "aria-invalid": messages.length ? ("true" as const) : undefined,
    "aria-describedby": describedBy || undefined,
    "aria-required": field.required ? ("true" as const) : undefined,
  };
  const commit = (value: string) => {
    setText(value);
    const parsed = fromText(field.control, value);
    if (parsed.ok) {
      setParseError(null);
      onChange(parsed.value);
    } else {
      setParseError(parsed.error);
    }
  };

  let control;
  const c = field.control;
  if (c.kind === "checkbox") {
    const checked = field.value === undefined ? field.placeholder === "true" : field.value === true;
    control = <input type="checkbox" {...common} checked={checked} onChange={(e) => onChange(e.currentTarget.checked)} />;
  } else if (c.kind === "select" || c.kind === "tristate") {
    const options = c.kind === "select" ? c.options : [{ value: "true", label: "true" }, { value: "false", label: "false" }];
    const hasEmpty = options.some((o) => o.value === "");
    const current = field.value === undefined || field.value === null ? "" : String(field.value);
    control = (
      <select {...common} value={current} onChange={(e) => {
        const v = e.currentTarget.value;
        onChange(v === "" ? undefined : c.kind === "tristate" ? v === "true" : v);
      }}>
        {!hasEmpty ? <option value="">{field.placeholder ? `default (${field.placeholder})` : field.required ? "choose…" : "default"}</option> : null}
        {options.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
        {current && !options.some((o) => o.value === current) ? <option value={current}>{current}</option> : null}
      </select>
    );
  } else {
    const numeric = c.kind === "number";
    control = (
      <input type="text" {...common} value={text} inputMode={numeric ? "decimal" : undefined}
             placeholder={field.placeholder} spellcheck={false} autoComplete="off"
             class={c.kind === "json" ? "mono" : undefined}
             onFocus={() => setFocused(true)} onBlur={() => setFocused(false)}
             onInput={(e) => commit(e.currentTarget.value)} />
    );
  }

  return (
    <div class={`field${messages.length ? " invalid" : ""}${field.extra ? " extra" : ""}`}>
      <label for={id}>
        {field.label}{field.required ? <span aria-hidden="true" class="required"> *</span> : null}
      </label>
      {control}
      {field.help ? <small id={`${id}-help`} class="help">{field.help}</small> : null}
      {messages.length ? (
        <p id={`${id}-error`} class="field-error" data-error-for={field.id} role="alert">
          {messages.join("; ")}
        </p>
      ) : null}
    </div>
  );
}
