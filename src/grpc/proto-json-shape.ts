/**
 * Tell a proto3-JSON REST submit body from a domain-shaped one without loading
 * protobuf-es: the agent loads the decoder (`convert.ts`) only for bodies that
 * pass this test.
 */
/** A plain object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * True when a REST submit body is in the proto3-JSON shape of
 * `SubmitTaskRequest` rather than the domain shape: it has `timeoutMs` /
 * `timeout_ms`, a `*_STRATEGY_*` enum string, a flattened
 * `subprocess.command` / `subprocess.script`, or a wasm / container kind.
 * A domain-shaped body with mistakes stays domain-shaped, so it gets the
 * REST validation message.
 */
export function looksLikeProtoJson(body: unknown): boolean {
  if (!isRecord(body) || !isRecord(body.spec)) return false;
  const spec = body.spec;
  if ("timeoutMs" in spec || "timeout_ms" in spec || "restartIntervalMs" in spec || "restart_interval_ms" in spec) {
    return true;
  }
  const enumLike = (v: unknown, prefix: string) => typeof v === "string" && v.startsWith(prefix);
  if (enumLike(spec.restart, "RESTART_STRATEGY_") || enumLike(spec.admission, "ADMISSION_STRATEGY_")) return true;
  if (isRecord(spec.backoff) && enumLike(spec.backoff.jitter, "JITTER_STRATEGY_")) return true;
  const kind = spec.kind;
  if (!isRecord(kind)) return false;
  if (isRecord(kind.subprocess)) return "command" in kind.subprocess || "script" in kind.subprocess;
  return "wasm" in kind || "container" in kind;
}
