/**
 * Heartbeats over HTTP: `POST {control-plane}/api/v1/discovery/sync` with the
 * proto3-JSON form of `SyncRequest` (every field present), answered by a
 * proto3-JSON `SyncResponse`. Redirects are not followed (a followed 301/302
 * turns the POST into a bodiless GET), and an answer is read up to
 * `MAX_ANSWER_BYTES`, so a control plane can neither lose heartbeats silently
 * nor fill the agent's memory. Answers are asked for and read uncompressed
 * (`Accept-Encoding: identity`, no automatic decompression): the cap counts
 * the bytes that arrive, and a compressed answer — a few hundred bytes of
 * brotli can unpack to gigabytes — is refused unread.
 */
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { SyncRequestSchema, SyncResponseSchema } from "../gen/solti/discover/v1/discovery_pb.ts";
import { retryAfterMs as retryAfterHeader } from "../retry-after.ts";
import { clipDetail, SyncFailure, type SyncTransport } from "./sync-transport.ts";

export interface HttpSyncTransportOptions {
  /** Full URL of the sync route. */
  syncUrl: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  fetch?: typeof fetch;
}

/** Largest answer read: a SyncResponse is a few dozen bytes; 64 KiB leaves room for any error page worth reading. */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** Create the HTTP transport. Nothing is sent until `sync`. */
export function createHttpSyncTransport(opts: HttpSyncTransportOptions): SyncTransport {
  const doFetch = opts.fetch ?? fetch;
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json", "accept-encoding": "identity" };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;

  return {
    kind: "http",
    async sync(req, signal) {
      const body = JSON.stringify(toJson(SyncRequestSchema, req, { alwaysEmitImplicit: true }));
      let res: Response;
      let text: string;
      try {
        res = await doFetch(opts.syncUrl, { method: "POST", headers, body, signal, redirect: "manual", decompress: false });
        if ((res.status >= 300 && res.status < 400) || res.type === "opaqueredirect") {
          discard(res);
          throw new SyncFailure(redirectMessage(res, opts.syncUrl));
        }
        text = await readCapped(res, MAX_ANSWER_BYTES);
      } catch (err) {
        if (err instanceof SyncFailure) throw err;
        throw new SyncFailure(signal.aborted ? reasonOf(signal.reason) : `unreachable: ${reasonOf(err)}`);
      }
      const json = parseJson(text);
      if (!res.ok) {
        const retryAfterMs = retryAfterHeader(res.headers.get("retry-after")) ?? retryAfterBody(json);
        throw new SyncFailure(`HTTP ${res.status}${statusHint(res.status)}${detailOf(text)}`, retryAfterMs);
      }
      // A 2xx without a body is an acceptance; a body must be a SyncResponse.
      if (text.trim() === "") return create(SyncResponseSchema, { success: true });
      if (json === undefined) throw new SyncFailure(`invalid SyncResponse: not JSON${detailOf(text)}`);
      try {
        return fromJson(SyncResponseSchema, json, { ignoreUnknownFields: true });
      } catch (err) {
        // The decoder's message may echo the offending value.
        throw new SyncFailure(`invalid SyncResponse: ${clipDetail(reasonOf(err))}`);
      }
    },
    close() {},
  };
}

/** Hang up on an answer that will not be read. */
function discard(res: Response): void {
  void res.body?.cancel().catch(() => {});
}

/**
 * The body as text, refusing a `content-length` above `max` before reading
 * and cancelling the read once more than `max` bytes arrived.
 */
async function readCapped(res: Response, max: number): Promise<string> {
  const tooLarge = () => new SyncFailure(`HTTP ${res.status}: answer larger than ${max} bytes`);
  const encoding = res.headers.get("content-encoding");
  if (encoding !== null && !/^\s*(identity\s*)?$/i.test(encoding)) {
    discard(res);
    throw new SyncFailure(`HTTP ${res.status}: compressed answer (content-encoding ${JSON.stringify(clipDetail(encoding))}) refused: the agent asks for identity`);
  }
  const declared = Number(res.headers.get("content-length") ?? "");
  if (Number.isFinite(declared) && declared > max) {
    discard(res);
    throw tooLarge();
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      void reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks, size));
}

/** `HTTP 302 redirect to <Location>: …`; the Location resolved against the sync URL, without user info. */
function redirectMessage(res: Response, syncUrl: string): string {
  const location = res.headers.get("location");
  let where = "";
  if (location !== null) {
    try {
      const u = new URL(location, syncUrl);
      u.username = "";
      u.password = "";
      where = ` to ${clipDetail(u.href)}`;
    } catch {
      where = ` to ${JSON.stringify(clipDetail(location))}`;
    }
  }
  return `HTTP ${res.status} redirect${where}: redirects are not followed, set --control-plane to the final URL`;
}

function parseJson(text: string): JsonValue | undefined {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return undefined;
  }
}

function statusHint(status: number): string {
  return status === 401 || status === 403 ? " (check TASKLANE_CONTROL_PLANE_TOKEN)" : "";
}

function detailOf(text: string): string {
  const line = clipDetail(text);
  return line ? `: ${line}` : "";
}

/** `retryAfterS` of an error body shaped like a SyncResponse. */
function retryAfterBody(json: JsonValue | undefined): number | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
  const v = json.retryAfterS ?? json.retry_after_s;
  const n = typeof v === "number" ? v : typeof v === "string" ? Number(v) : NaN;
  return Number.isFinite(n) && n > 0 ? n * 1000 : undefined;
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
