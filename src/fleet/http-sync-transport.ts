/**
 * Heartbeats over HTTP: `POST {control-plane}/api/v1/discovery/sync` with the
 * proto3-JSON form of `SyncRequest` (every field present), answered by a
 * proto3-JSON `SyncResponse`.
 */
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { SyncRequestSchema, SyncResponseSchema } from "../gen/solti/discover/v1/discovery_pb.ts";
import { SyncFailure, type SyncTransport } from "./sync-transport.ts";

export interface HttpSyncTransportOptions {
  /** Full URL of the sync route. */
  syncUrl: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  fetch?: typeof fetch;
}

const MAX_DETAIL = 200;

/** Create the HTTP transport. Nothing is sent until `sync`. */
export function createHttpSyncTransport(opts: HttpSyncTransportOptions): SyncTransport {
  const doFetch = opts.fetch ?? fetch;
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;

  return {
    kind: "http",
    async sync(req, signal) {
      const body = JSON.stringify(toJson(SyncRequestSchema, req, { alwaysEmitImplicit: true }));
      let res: Response;
      let text: string;
      try {
        res = await doFetch(opts.syncUrl, { method: "POST", headers, body, signal });
        text = await res.text();
      } catch (err) {
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
        throw new SyncFailure(`invalid SyncResponse: ${reasonOf(err)}`);
      }
    },
    close() {},
  };
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
  const line = text.replace(/\s+/g, " ").trim();
  if (!line) return "";
  return `: ${line.length > MAX_DETAIL ? `${line.slice(0, MAX_DETAIL)}…` : line}`;
}

/** `Retry-After: <seconds>` (an HTTP date is honoured too). */
function retryAfterHeader(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
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
