import { render } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { Link } from "./components/common";
import { ForgetKey, KeyPrompt } from "./components/KeyPrompt";
import { useLocation } from "./lib/nav";
import { newPage } from "./lib/registry";
import { matchRoute, type Route } from "./lib/routes";
import { ComparePage } from "./pages/Compare";
import { JobPage } from "./pages/Job";
import { JobsPage } from "./pages/Jobs";
import { SubmitPage } from "./pages/Submit";
import { SweepPage } from "./pages/Sweep";
import { SweepsPage } from "./pages/Sweeps";
import "./styles.css";

const NAV: { href: string; label: string; pages: Route["page"][] }[] = [
  { href: "/jobs", label: "Jobs", pages: ["jobs", "job"] },
  { href: "/sweeps", label: "Sweeps", pages: ["sweeps", "sweep"] },
  { href: "/compare", label: "Compare", pages: ["compare"] },
  { href: "/submit", label: "Submit", pages: ["submit"] },
];

function Page({ route, search }: { route: Route; search: string }) {
  switch (route.page) {
    case "jobs": return <JobsPage search={search} />;
    case "job": return <JobPage id={route.id} search={search} />;
    case "compare": return <ComparePage search={search} />;
    case "sweeps": return <SweepsPage search={search} />;
    case "sweep": return <SweepPage id={route.id} search={search} />;
    case "submit": return <SubmitPage search={search} />;
    default: return (
      <>
        <h1>Not found</h1>
        <p>No page at <code>{route.path}</code>. <Link href="/jobs">See the jobs</Link>.</p>
      </>
    );
  }
}

function App() {
  const { path, search } = useLocation();
  const route = matchRoute(path);
  const pageKey = route.page === "job" || route.page === "sweep" ? `${route.page}:${route.id}` : route.page;
  const first = useRef(true);
  useEffect(() => {
    newPage();
    if (first.current) {
      first.current = false; // a full load: the browser starts at the top (the skip link)
      return;
    }
    // Moved to another page in place: start at its title, as a screen reader would after a load.
    document.getElementById("page-title")?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [pageKey]);
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <Link href="/jobs" class="brand" aria-label="optimlab: jobs">optimlab</Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={n.pages.includes(route.page) ? "page" : undefined}>{n.label}</Link>
              </li>
            ))}
            <li><a href="/docs">API docs</a></li>
            <li><ForgetKey /></li>
          </ul>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        <Page key={pageKey} route={route} search={search} />
      </main>
      <KeyPrompt />
    </>
  );
}

render(<App />, document.getElementById("app")!);
