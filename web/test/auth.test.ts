import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { call } from "../src/api";
import { apiKey, authHeaders, forgetKey, type KeyStore, onKeyRefused, saveKey, setKeyStore } from "../src/lib/auth";
import { AuthedEventSource, SseParser } from "../src/lib/sse";

function memoryStore(): KeyStore & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => void items.set(k, v),
    removeItem: (k) => void items.delete(k),
  };
}

describe("the API key in the browser's storage", () => {
  let store: ReturnType<typeof memoryStore>;
  beforeEach(() => {
    store = memoryStore();
    setKeyStore(store);
  });
  afterEach(() => vi.unstubAllGlobals());

  it("is kept, sent as a Bearer header, and forgotten", () => {
    expect(authHeaders()).toEqual({});
    saveKey("  olk_abc  ");
    expect(apiKey()).toBe("olk_abc");
    expect([...store.items.values()]).toEqual(["olk_abc"]);
    expect(authHeaders()).toEqual({ authorization: "Bearer olk_abc" });
    forgetKey();
    expect(apiKey()).toBeNull();
    expect(store.items.size).toBe(0);
  });

  it("goes with every call, and a 401 asks for a key", async () => {
    saveKey("olk_k");
    const seen: Headers[] = [];
    vi.stubGlobal("fetch", async (_: string, init: RequestInit) => {
      seen.push(new Headers(init.headers));
      return new Response(JSON.stringify({ detail: "the API key is unknown or revoked" }), { status: 401 });
    });
    let asked = 0;
    const stop = onKeyRefused(() => { asked += 1; });
    await expect(call("/v1/jobs")).rejects.toMatchObject({ status: 401 });
    stop();
    expect(seen[0].get("authorization")).toBe("Bearer olk_k");
    expect(asked).toBe(1);
  });

  it("goes with an event stream too, and Last-Event-ID on reconnect", async () => {
    saveKey("olk_s");
    const seen: Headers[] = [];
    const bodies = ["id: 1:3\nevent: metrics\ndata: {\"a\":1}\n\n", "event: end\ndata: {}\n\n"];
    vi.stubGlobal("fetch", async (_: string, init: RequestInit) => {
      seen.push(new Headers(init.headers));
      return new Response(bodies.shift() ?? "", { status: 200, headers: { "content-type": "text/event-stream" } });
    });
    const got: string[] = [];
    await new Promise<void>((resolve) => {
      const source = new AuthedEventSource("/v1/jobs/x/events", 1);
      source.addEventListener("metrics", (e) => got.push(e.data));
      source.addEventListener("end", () => {
        source.close();
        resolve();
      });
    });
    expect(got).toEqual(['{"a":1}']);
    expect(seen.map((h) => h.get("authorization"))).toEqual(["Bearer olk_s", "Bearer olk_s"]);
    expect(seen[0].get("last-event-id")).toBeNull();
    expect(seen[1].get("last-event-id")).toBe("1:3");
  });
});

describe("the text/event-stream parser", () => {
  it("reads events split anywhere, with comments, CRLF and multi-line data", () => {
    const parser = new SseParser();
    const text = ": ping\r\nevent: status\r\ndata: {\"x\":\r\ndata: 1}\r\nid: 2:5\r\n\r\ndata: plain\n\n";
    const events = [...text].flatMap((ch) => parser.feed(ch));
    expect(events).toEqual([
      { event: "status", data: "{\"x\":\n1}", id: "2:5" },
      { event: "message", data: "plain", id: null },
    ]);
    expect(parser.lastEventId).toBe("2:5");
  });
});
