// Small pieces every page uses.

import type { AnchorHTMLAttributes, ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { navigate } from "../lib/nav";

export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.href);
  };
  return <a {...props} onClick={onClick} />;
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge status-${status}`}>{status}</span>;
}

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const text = error instanceof Error ? error.message : String(error);
  return (
    <div class="error-box" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {text}
    </div>
  );
}

export function Note({ children }: { children: ComponentChildren }) {
  return <p class="note">{children}</p>;
}

export function Loading({ what }: { what: string }) {
  return <p class="loading" role="status">Loading {what}…</p>;
}

export function PageTitle({ children, title }: { children: ComponentChildren; title: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · optimlab`;
  }, [title]);
  return <h1 ref={ref} tabIndex={-1} id="page-title">{children}</h1>;
}

export interface Async<T> {
  value: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
  set: (value: T) => void;
}

/** The value of `load` (re-run when `deps` change); stale answers are dropped. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    load(controller.signal).then(
      (v) => { if (!controller.signal.aborted) { setValue(v); setError(null); setLoading(false); } },
      (e: unknown) => { if (!controller.signal.aborted) { setError(e); setLoading(false); } });
    return () => controller.abort();
  }, [...deps, tick]);
  return { value, error, loading, reload: () => setTick((n) => n + 1), set: setValue };
}

/** Call `tick` every `ms` while `active` (and the tab is visible). */
export function usePoll(active: boolean, ms: number, tick: () => void): void {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    if (!active) return;
    const id = window.setInterval(() => {
      if (document.visibilityState !== "hidden") latest.current();
    }, ms);
    return () => window.clearInterval(id);
  }, [active, ms]);
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState<string | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone("Copied");
    } catch {
      setDone("Copy failed: select the text instead");
    }
    window.setTimeout(() => setDone(null), 2000);
  };
  return (
    <span class="copy">
      <button type="button" onClick={copy}>{label}</button>
      <span role="status" class="copy-status">{done ?? ""}</span>
    </span>
  );
}
