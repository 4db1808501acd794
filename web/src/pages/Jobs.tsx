// The jobs table: filters, sort by any summary field, paging by cursor, live statuses,
// several selected -> compare.

import { useState } from "preact/hooks";
import { api } from "../api";
import { ErrorBox, Link, Loading, PageTitle, StatusBadge, useAsync, usePoll } from "../components/common";
import { encodeCompare } from "../lib/compareUrl";
import { fmtDate, fmtNum } from "../lib/format";
import { navigate, setQuery } from "../lib/nav";
import { queryString } from "../lib/query";
import { jobPath, sweepPath } from "../lib/routes";
import { fieldLabel, getPath, splitOrder, SUMMARY_FIELDS } from "../lib/summary";
import { ACTIVE, type Job, STATUSES } from "../types";

const PAGE_SIZE = 25;
const FILTERS = ["status", "tag", "optimizer", "sweep", "name"] as const;
type Filter = (typeof FILTERS)[number];

interface Query {
  filters: Record<Filter, string>;
  sort: string;
  cursor: string;
}

function readQuery(search: string): Query {
  const q = new URLSearchParams(search);
  const filters = Object.fromEntries(FILTERS.map((f) => [f, q.get(f) ?? ""])) as Record<Filter, string>;
  return { filters, sort: q.get("sort") ?? "-created_at", cursor: q.get("cursor") ?? "" };
}

function writeQuery(query: Query): string {
  return queryString({ ...query.filters, sort: query.sort === "-created_at" ? null : query.sort,
                       cursor: query.cursor || null });
}

const SORTABLE = [{ field: "created_at", label: "created" }, ...SUMMARY_FIELDS];

export function JobsPage({ search }: { search: string }) {
  const query = readQuery(search);
  const [draft, setDraft] = useState(query.filters);
  const [previous, setPrevious] = useState<string[]>([]);
  const [selected, setSelected] = useState<string[]>([]);
  const catalog = useAsync(() => api.catalog(), []);
  const page = useAsync((signal) => api.jobs({ ...query.filters, sort: query.sort, limit: PAGE_SIZE,
                                                 cursor: query.cursor || null }, signal), [search]);
  const jobs = page.value?.data ?? [];
  usePoll(jobs.some((j) => ACTIVE.has(j.status)), 2000, page.reload);

  const go = (next: Partial<Query>, keepPages = false) => {
    if (!keepPages) setPrevious([]);
    setQuery(writeQuery({ ...query, cursor: "", ...next }));
  };
  const apply = (e: Event) => {
    e.preventDefault();
    go({ filters: draft });
  };
  const { field: sortField, descending } = splitOrder(query.sort);
  const sortBy = (field: string) => {
    const same = field === sortField;
    go({ sort: (same ? !descending : field === "created_at") ? `-${field}` : field });
  };
  const toggle = (id: string) =>
    setSelected((s) => (s.includes(id) ? s.filter((x) => x !== id) : [...s, id]));

  const header = (field: string, label: string) => {
    const active = field === sortField;
    return (
      <th scope="col" aria-sort={active ? (descending ? "descending" : "ascending") : "none"}>
        <button type="button" class="sort" onClick={() => sortBy(field)}
                title={`Sort by ${label}`}>
          {label}{active ? (descending ? " ▾" : " ▴") : ""}
        </button>
      </th>
    );
  };

  return (
    <>
      <PageTitle title="Jobs">Jobs</PageTitle>
      <form class="filters" onSubmit={apply} aria-label="Filter jobs">
        <label>Status
          <select value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value })}>
            <option value="">any</option>
            {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>Name contains
          <input type="search" value={draft.name} onInput={(e) => setDraft({ ...draft, name: e.currentTarget.value })} />
        </label>
        <label>Tag
          <input value={draft.tag} onInput={(e) => setDraft({ ...draft, tag: e.currentTarget.value })} />
        </label>
        <label>Optimizer
          <select value={draft.optimizer} onChange={(e) => setDraft({ ...draft, optimizer: e.currentTarget.value })}>
            <option value="">any</option>
            {(catalog.value?.optimizers ?? []).map((o) => <option key={o.name} value={o.name}>{o.name}</option>)}
            {draft.optimizer && !catalog.value?.optimizers.some((o) => o.name === draft.optimizer)
              ? <option value={draft.optimizer}>{draft.optimizer}</option> : null}
          </select>
        </label>
        <label>Sweep id
          <input value={draft.sweep} size={12} onInput={(e) => setDraft({ ...draft, sweep: e.currentTarget.value.trim() })} />
        </label>
        <label>Sort by
          <select value={sortField} onChange={(e) => go({ sort: e.currentTarget.value === "created_at"
                  ? "-created_at" : e.currentTarget.value })}>
            {SORTABLE.map((f) => <option key={f.field} value={f.field}>{f.label}</option>)}
          </select>
        </label>
        <label class="inline">
          <input type="checkbox" checked={descending}
                 onChange={(e) => go({ sort: (e.currentTarget.checked ? "-" : "") + sortField })} />
          descending
        </label>
        <div class="filter-actions">
          <button type="submit">Apply filters</button>
          <button type="button" class="secondary" onClick={() => { setDraft({ status: "", tag: "", optimizer: "", sweep: "", name: "" }); go({ filters: { status: "", tag: "", optimizer: "", sweep: "", name: "" } }); }}>
            Clear
          </button>
        </div>
      </form>

      <div class="toolbar">
        <button type="button" disabled={selected.length < 1}
                onClick={() => navigate(encodeCompare({ jobs: selected }))}>
          Compare selected ({selected.length})
        </button>
        {selected.length ? <button type="button" class="secondary" onClick={() => setSelected([])}>Clear selection</button> : null}
        <Link href="/submit" class="button-link">New job or sweep</Link>
        <span class="live-note" aria-live="polite">
          {jobs.some((j) => ACTIVE.has(j.status)) ? "Statuses update live." : ""}
        </span>
      </div>

      <ErrorBox error={page.error} title="Could not list the jobs" />
      {page.loading && !page.value ? <Loading what="jobs" /> : null}
      <div class="table-wrap">
        <table class="jobs" aria-label="Jobs" aria-busy={page.loading ? "true" : "false"}>
          <thead>
            <tr>
              <th scope="col"><span class="visually-hidden">Select</span></th>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Optimizer</th>
              <th scope="col">lr</th>
              <th scope="col">Schedule</th>
              {header("final_loss", "final loss")}
              {header("best_loss", "best loss")}
              <th scope="col">Outcome</th>
              {header("created_at", "created")}
              {sortField !== "created_at" && !["final_loss", "best_loss"].includes(sortField)
                ? header(sortField, fieldLabel(sortField)) : null}
            </tr>
          </thead>
          <tbody>
            {jobs.map((job) => <JobRow key={job.id} job={job} checked={selected.includes(job.id)}
                                       onToggle={() => toggle(job.id)} extra={sortField} />)}
          </tbody>
        </table>
      </div>
      {page.value && !jobs.length ? <p class="empty">No jobs match. <Link href="/submit">Submit one</Link>.</p> : null}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={!previous.length} onClick={() => {
          const back = previous[previous.length - 1];
          setPrevious(previous.slice(0, -1));
          go({ cursor: back }, true);
        }}>← Newer</button>
        <button type="button" disabled={!page.value?.next_cursor} onClick={() => {
          setPrevious([...previous, query.cursor]);
          go({ cursor: page.value!.next_cursor! }, true);
        }}>Older →</button>
      </nav>
    </>
  );
}

function JobRow({ job, checked, onToggle, extra }: { job: Job; checked: boolean; onToggle: () => void; extra: string }) {
  const opt = job.spec.optimizer as { name?: string; lr?: number } | undefined;
  const schedule = job.spec.schedule as { name?: string } | null | undefined;
  const showExtra = extra !== "created_at" && extra !== "final_loss" && extra !== "best_loss";
  return (
    <tr>
      <td>
        <input type="checkbox" checked={checked} onChange={onToggle}
               aria-label={`Select ${job.name || job.id} for comparison`} />
      </td>
      <td class="name">
        <Link href={jobPath(job.id)}>{job.name || job.id.slice(0, 8)}</Link>
        {job.sweep_id ? <> <Link class="tag" href={sweepPath(job.sweep_id)} title="Its sweep">sweep</Link></> : null}
        {job.tags.map((t) => <span key={t} class="tag">{t}</span>)}
      </td>
      <td><StatusBadge status={job.status} /></td>
      <td>{opt?.name ?? "—"}</td>
      <td class="num">{fmtNum(opt?.lr ?? null)}</td>
      <td>{schedule?.name ?? "—"}</td>
      <td class="num">{fmtNum(getPath(job.summary, "final_loss") ?? null)}</td>
      <td class="num">{fmtNum(getPath(job.summary, "best_loss") ?? null)}</td>
      <td>{fmtNum(getPath(job.summary, "outcome") ?? null)}</td>
      <td class="date">{fmtDate(job.created_at)}</td>
      {showExtra ? <td class="num">{fmtNum(getPath(job.summary, extra) ?? null)}</td> : null}
    </tr>
  );
}
