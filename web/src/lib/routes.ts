// The dashboard's pages: each path the API serves index.html at (service/api/routes/dashboard.py).

export type Route =
  | { page: "jobs" }
  | { page: "job"; id: string }
  | { page: "compare" }
  | { page: "sweeps" }
  | { page: "sweep"; id: string }
  | { page: "submit" }
  | { page: "missing"; path: string };

export function matchRoute(pathname: string): Route {
  const path = pathname.replace(/\/+$/, "") || "/";
  if (path === "/" || path === "/jobs") return { page: "jobs" };
  if (path === "/compare") return { page: "compare" };
  if (path === "/sweeps") return { page: "sweeps" };
  if (path === "/submit") return { page: "submit" };
  const job = /^\/jobs\/([^/]+)$/.exec(path);
  if (job) return { page: "job", id: decodeURIComponent(job[1]) };
  const sweep = /^\/sweeps\/([^/]+)$/.exec(path);
  if (sweep) return { page: "sweep", id: decodeURIComponent(sweep[1]) };
  return { page: "missing", path };
}

export const jobPath = (id: string): string => `/jobs/${encodeURIComponent(id)}`;
export const sweepPath = (id: string): string => `/sweeps/${encodeURIComponent(id)}`;
