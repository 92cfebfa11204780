/** The `SyncFailure` a transport's `sync` rejected with, as `{ message, retryAfterMs }`; fails the test on anything else. */
import { expect } from "bun:test";
import { SyncFailure } from "../../src/fleet/sync-transport.ts";

export async function syncFailureOf(p: Promise<unknown>): Promise<{ message: string; retryAfterMs: number | undefined }> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SyncFailure);
    const f = err as SyncFailure;
    return { message: f.message, retryAfterMs: f.retryAfterMs };
  }
  throw new Error("expected a SyncFailure");
}
