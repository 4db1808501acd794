import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api";
import { retryable } from "../src/components/history";

describe("which failed history fetches the job page asks again", () => {
  it("asks again after a server error, a 503 while its database is away, or a 429", () => {
    expect(retryable(new ApiError(503, { error: "DATABASE_AWAY" }))).toBe(true);
    expect(retryable(new ApiError(500, null))).toBe(true);
    expect(retryable(new ApiError(429, null))).toBe(true);
  });

  it("asks again after a network failure (fetch's TypeError)", () => {
    expect(retryable(new TypeError("Failed to fetch"))).toBe(true);
  });

  it("does not ask again for a refused request or an aborted one", () => {
    expect(retryable(new ApiError(404, null))).toBe(false);
    expect(retryable(new ApiError(422, { detail: [] }))).toBe(false);
    expect(retryable(new ApiError(401, null))).toBe(false);
    expect(retryable(new DOMException("aborted", "AbortError"))).toBe(false);
  });
});
