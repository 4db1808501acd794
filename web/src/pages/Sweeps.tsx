// Every sweep, newest first, with its counts; paged by the API's cursor.

import { useState } from "preact/hooks";
import { api } from "../api";
import { ErrorBox, Link, Loading, PageTitle, StatusBadge, useAsync, usePoll } from "../components/common";
import { fmtDate, shortId } from "../lib/format";
import { setQuery } from "../lib/nav";
import { queryString } from "../lib/query";
import { sweepPath } from "../lib/routes";
import { STATUSES } from "../types";

export function SweepsPage({ search }: { search: string }) {
  const q = new URLSearchParams(search);
  const tag = q.get("tag") ?? "";
  const cursor = q.get("cursor") ?? "";
  const [draft, setDraft] = useState(tag);
  const [previous, setPrevious] = useState<string[]>([]);
  const page = useAsync(() => api.sweeps({ tag: tag || null, cursor: cursor || null, limit: 25 }), [search]);
  const sweeps = page.value?.data ?? [];
  usePoll(sweeps.some((s) => s.status !== "finished"), 2000, page.reload);
  const go = (next: { tag?: string; cursor?: string }) =>
    setQuery(queryString({ tag: next.tag ?? tag, cursor: next.cursor ?? null }));
  return (
    <>
      <PageTitle title="Sweeps">Sweeps</PageTitle>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); setPrevious([]); go({ tag: draft }); }} aria-label="Filter sweeps">
        <label>Tag <input value={draft} onInput={(e) => setDraft(e.currentTarget.value)} /></label>
        <div class="filter-actions"><button type="submit">Apply</button></div>
        <Link href="/submit" class="button-link">New sweep</Link>
      </form>
      <ErrorBox error={page.error} title="Could not list the sweeps" />
      {page.loading && !page.value ? <Loading what="sweeps" /> : null}
      <div class="table-wrap">
        <table aria-label="Sweeps">
          <thead>
            <tr><th scope="col">name</th><th scope="col">status</th><th scope="col">jobs</th>
                <th scope="col">counts</th><th scope="col">created</th></tr>
          </thead>
          <tbody>
            {sweeps.map((s) => (
              <tr key={s.id}>
                <td><Link href={sweepPath(s.id)}>{s.name || shortId(s.id)}</Link>{s.tags.map((t) => <span key={t} class="tag">{t}</span>)}</td>
                <td><span class={`badge sweep-${s.status}`}>{s.status}</span></td>
                <td class="num">{s.size}</td>
                <td>{STATUSES.filter((st) => s.counts[st]).map((st) => (
                  <span key={st} class="count"><StatusBadge status={st} /> {s.counts[st]} </span>))}</td>
                <td class="date">{fmtDate(s.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page.value && !sweeps.length ? <p class="empty">No sweeps yet. <Link href="/submit">Start one from a preset</Link>.</p> : null}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={!previous.length} onClick={() => {
          const back = previous[previous.length - 1];
          setPrevious(previous.slice(0, -1));
          go({ cursor: back });
        }}>← Newer</button>
        <button type="button" disabled={!page.value?.next_cursor} onClick={() => {
          setPrevious([...previous, cursor]);
          go({ cursor: page.value!.next_cursor! });
        }}>Older →</button>
      </nav>
    </>
  );
}
