// Client-side navigation between the dashboard's pages (the API serves index.html at each).

import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();

export function navigate(to: string, { replace = false } = {}): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  for (const listener of listeners) listener();
}

export interface Location {
  path: string;
  search: string;
}

export function useLocation(): Location {
  const [, setTick] = useState(0);
  useEffect(() => {
    const update = () => setTick((n) => n + 1);
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return { path: location.pathname, search: location.search };
}

/** Replace the query string in place (no new history entry): filters, chart settings. */
export function setQuery(search: string): void {
  navigate(location.pathname + search, { replace: true });
}
