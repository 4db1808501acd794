// Server-Sent Events over fetch, so that the stream carries the Authorization header
// (EventSource cannot send one, and the key must not go into a URL that servers log).
// Like EventSource: named events, the last id sent back as Last-Event-ID on reconnect.

import { authHeaders, keyRefused } from "./auth";

export interface SseEvent {
  event: string;
  data: string;
  id: string | null;
}

/** An incremental parser of the text/event-stream format: feed it text as it comes. */
export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | null = null;
  lastEventId: string | null = null;

  feed(text: string): SseEvent[] {
    this.buffer += text;
    const out: SseEvent[] = [];
    let end: number;
    while ((end = this.lineEnd()) >= 0) {
      const line = this.buffer.slice(0, end);
      const skip = this.buffer[end] === "\r" && this.buffer[end + 1] === "\n" ? 2 : 1;
      this.buffer = this.buffer.slice(end + skip);
      const done = this.line(line);
      if (done) out.push(done);
    }
    return out;
  }

  private lineEnd(): number {
    const n = this.buffer.indexOf("\n");
    const r = this.buffer.indexOf("\r");
    // A lone \r at the very end may be the first half of \r\n: wait for more.
    if (r === this.buffer.length - 1 && n < 0) return -1;
    if (n < 0) return r;
    return r < 0 ? n : Math.min(n, r);
  }

  private line(line: string): SseEvent | null {
    if (line === "") {
      if (this.id !== null) this.lastEventId = this.id;
      const event = this.data.length
        ? { event: this.event || "message", data: this.data.join("\n"), id: this.id }
        : null;
      this.event = "";
      this.data = [];
      this.id = null;
      return event;
    }
    if (line.startsWith(":")) return null; // a comment: the server's keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return null;
  }
}

type Listener = (e: { data: string }) => void;

/** An EventSource-like stream of `url`, with the API key; reconnects after a drop
 * (resuming after the last id received) until closed or answered with an error. */
export class AuthedEventSource {
  private readonly listeners = new Map<string, Listener[]>();
  private readonly controller = new AbortController();
  private lastEventId: string | null = null;

  constructor(private readonly url: string, private readonly retryMs = 1000) {
    void this.run();
  }

  addEventListener(event: string, listener: Listener): void {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
  }

  close(): void {
    this.controller.abort();
  }

  private async run(): Promise<void> {
    while (!this.controller.signal.aborted) {
      try {
        if (!(await this.connect())) return;
      } catch {
        if (this.controller.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }

  /** One connection; false when the server refused the stream (no reconnect then). */
  private async connect(): Promise<boolean> {
    const headers: Record<string, string> = { accept: "text/event-stream", ...authHeaders() };
    if (this.lastEventId !== null) headers["last-event-id"] = this.lastEventId;
    const response = await fetch(this.url, { headers, signal: this.controller.signal, cache: "no-store" });
    if (!response.ok || !response.body) {
      if (response.status === 401) keyRefused();
      return false;
    }
    const parser = new SseParser();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      for (const event of parser.feed(value)) {
        if (event.id !== null) this.lastEventId = event.id;
        for (const listener of this.listeners.get(event.event) ?? []) listener({ data: event.data });
      }
    }
  }
}
