/**
 * Validation and normalization of a submitted task spec — CONTRACT §1
 * "Validation".
 *
 * Two passes, both stopping at the first problem:
 * 1. structure, via TypeBox (`TaskSpecInputSchema`), with TypeBox's errors
 *    rewritten into our own messages (unions are resolved by looking at the
 *    input, so the message names the precise inner problem);
 * 2. the semantic rules TypeBox cannot express (slot charset, base64 body,
 *    env keys, label keys, maxMs ≥ firstMs, …).
 *
 * Every message starts with the field path relative to the REST body
 * (`spec.…`) and, where there is one, shows the bad value (cut after 80
 * characters with "…").
 *
 * Last, a size rule on the normalized spec (`MAX_SPEC_TEXT_BYTES`): every
 * accepted task must fit one 4 MiB gRPC message when it is read back, so a
 * spec with more text than that is `PayloadTooLarge`, on every transport.
 */
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { KindGuard, type TObject, type TSchema, type TUnion } from "@sinclair/typebox";
import { Value, ValueErrorType, type ValueError } from "@sinclair/typebox/value";
import { AgentError, clip, fieldName, invalid } from "../errors.ts";
import {
  TaskSpecInputSchema,
  type Admission,
  type Backoff,
  type CommandMode,
  type KeyValue,
  type Resources,
  type RestartPolicy,
  type ScriptMode,
  type ScriptRuntime,
  type TaskSpec,
  type TaskSpecInput,
} from "./model.ts";

/** Largest decoded script body accepted by default: 2 MiB (CONTRACT §1). */
export const MAX_SCRIPT_BYTES = 2_097_152;

/**
 * Most text a spec may hold, as `specTextBytes` counts it: 4 MiB − 64 KiB
 * (4 128 768). A task is read back over gRPC as one `TaskData` message, capped
 * at 4 MiB (CONTRACT §5); the spec is nearly all of it, and the 64 KiB left
 * hold the metadata, the status (its error text) and the message framing of
 * the responses and events that carry one task (GetTaskStatus, WaitTask,
 * WatchTasks…). Without this rule a task the agent accepted over REST, or in a
 * 4 MiB SubmitTask request, could not be read over gRPC.
 */
export const MAX_SPEC_TEXT_BYTES = 4 * 1024 * 1024 - 64 * 1024;

/** The values `parseTaskSpec` fills in for fields a REST client omits. */
export interface SpecDefaults {
  /** `kind.subprocess.failOnNonZero` — true on REST so a failing script looks failed (proto3 default is false). */
  readonly failOnNonZero: boolean;
  /** `kind.subprocess.env`. */
  readonly env: readonly KeyValue[];
  /** `args` of a command or script mode. */
  readonly args: readonly string[];
  /** `timeout`, ms per attempt (1 hour). */
  readonly timeout: number;
  /** `restart`. */
  readonly restart: Readonly<RestartPolicy>;
  /** `restart.intervalMs` when `restart.type` is `"always"` and no interval is given. */
  readonly alwaysIntervalMs: number;
  /** `backoff`. */
  readonly backoff: Readonly<Backoff>;
  /** `admission`. */
  readonly admission: Admission;
  /** `labels`. */
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * Defaults for omitted spec fields (deeply frozen; `parseTaskSpec` copies
 * them, so a returned spec never shares objects with this constant).
 * The optional extensions (`cwd`, `maxAttempts`, `killGraceMs`, `priority`,
 * `hold`, `resources`) have no default: they stay absent when not given.
 */
export const SPEC_DEFAULTS: SpecDefaults = Object.freeze({
  failOnNonZero: true,
  env: Object.freeze([]),
  args: Object.freeze([]),
  timeout: 3_600_000,
  restart: Object.freeze({ type: "never" }),
  alwaysIntervalMs: 0,
  backoff: Object.freeze({ jitter: "full", firstMs: 1000, maxMs: 30_000, factor: 2 }),
  admission: "queue",
  labels: Object.freeze({}),
});

/**
 * Validate a REST-shaped spec (the value of `spec` in `{ "spec": … }`) and
 * return a fresh, normalized `TaskSpec` with every default filled in.
 *
 * Throws `invalid(message)` (AgentError `InvalidRequest`) on the first
 * problem. Structural problems (unknown field, missing field, wrong type,
 * value outside an enum, out-of-range number) are reported before semantic
 * ones. Rules beyond the schema:
 * - `slot`: 1..64 bytes of `[A-Za-z0-9._-]`, not `.` or `..`;
 * - `command`, custom runtime `command` and `flag`: non-empty after trim;
 *   command, args and cwd contain no NUL (they become C strings);
 * - script `body`: standard base64 (alphabet `A-Za-z0-9+/`, `=` padding to a
 *   multiple of 4, no whitespace, no URL-safe `-`/`_`), decoding to valid
 *   UTF-8 of at most `limits.maxScriptBytes` (default `MAX_SCRIPT_BYTES`) bytes;
 * - `env`: key non-empty without `=` or NUL, value without NUL; a later
 *   duplicate key wins (its value is kept at the key's first position);
 * - `cwd`: an absolute path (existence is checked when the run starts);
 * - `backoff`: `firstMs` > 0, `maxMs` ≥ `firstMs`, `factor` finite and ≥ 1;
 * - `labels`: at most 64, keys 1..63 characters of `[A-Za-z0-9._/-]`, values
 *   at most 256 characters (Unicode code points);
 * - every free-text string (command, args, env, cwd, custom runtime, label
 *   values) is well-formed Unicode: no unpaired surrogate.
 *
 * A valid spec whose text is larger than `limits.maxSpecBytes` (default
 * `MAX_SPEC_TEXT_BYTES`, see `specTextBytes`) is an AgentError
 * `PayloadTooLarge` (REST 413, gRPC RESOURCE_EXHAUSTED): it could not be read
 * back in one gRPC message.
 */
export function parseTaskSpec(input: unknown, limits?: { maxScriptBytes?: number; maxSpecBytes?: number }): TaskSpec {
  // The compiled check is cheap; errors (and their messages) are only built for bad input.
  specChecker ??= TypeCompiler.Compile(TaskSpecInputSchema);
  if (!specChecker.Check(input)) {
    checkStructure(TaskSpecInputSchema, input, []);
    fail([], "does not match the task spec schema");
  }
  const spec = normalize(input, limits?.maxScriptBytes ?? MAX_SCRIPT_BYTES);
  checkSpecSize(spec, limits?.maxSpecBytes ?? MAX_SPEC_TEXT_BYTES);
  return spec;
}

let specChecker: TypeCheck<typeof TaskSpecInputSchema> | undefined;

// ---------------------------------------------------------------------------
// Size: every accepted task must fit one gRPC message

/**
 * Fixed part of `specTextBytes`: an upper bound of everything in a spec's
 * protobuf encoding that is not a string or an env / label entry (nested
 * message headers, numbers, enums, booleans — about 200 bytes at most).
 */
const SPEC_FIXED_BYTES = 256;

/** Bytes of `v` (a non-negative integer) as a protobuf varint. */
function varintBytes(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n += 1;
  }
  return n;
}

/** Share of a string known to be ASCII (checked by an earlier rule): exact from its length. */
function asciiString(s: string): number {
  return 1 + varintBytes(s.length) + s.length;
}

/**
 * Sum over a spec's strings and entries: `str` gives a string's share,
 * `entry` an env or label entry's given the shares of its key and value.
 * The slot, the script body (base64) and label keys are ASCII by the rules
 * above, so they are counted exactly from their length in either case.
 */
function sizeOf(spec: TaskSpec, str: (s: string) => number, entry: (kv: number) => number): number {
  const sp = spec.kind.subprocess;
  let n = SPEC_FIXED_BYTES + asciiString(spec.slot);
  const mode = sp.mode;
  if ("command" in mode) {
    n += str(mode.command.command);
    for (const arg of mode.command.args) n += str(arg);
  } else {
    const { runtime, body, args } = mode.script;
    if (typeof runtime !== "string") n += str(runtime.custom.command) + str(runtime.custom.flag);
    n += asciiString(body);
    for (const arg of args) n += str(arg);
  }
  for (const kv of sp.env) n += entry(str(kv.key) + str(kv.value));
  if (sp.cwd !== undefined) n += str(sp.cwd);
  const labels = spec.labels;
  for (const key of Object.keys(labels)) n += entry(asciiString(key) + str(labels[key] ?? ""));
  return n;
}

/** A string's exact share: its UTF-8 bytes behind a tag and a length. */
function exactString(s: string): number {
  const bytes = Buffer.byteLength(s, "utf8");
  return 1 + varintBytes(bytes) + bytes;
}

/** An entry's exact share: its key and value behind a tag and a length. */
function exactEntry(kv: number): number {
  return 1 + varintBytes(kv) + kv;
}

/** A string's share at most: 3 UTF-8 bytes per UTF-16 unit, 5 of framing (lengths below 2^28). */
function boundString(s: string): number {
  return 3 * s.length + 5;
}

function boundEntry(kv: number): number {
  return kv + 5;
}

/**
 * The text of a spec, in bytes: the UTF-8 bytes of every string in it (slot,
 * command or script body, args, runtime, env, cwd, labels) plus the framing
 * each string and each env or label entry gets in the protobuf encoding (a tag
 * and a length), plus a constant for the rest. For a spec `parseTaskSpec`
 * returned it is an upper bound of the size of its `CreateSpec` encoding,
 * which is what makes `MAX_SPEC_TEXT_BYTES` a guarantee rather than an
 * estimate (tested in test/grpc/encode-task.test.ts).
 */
export function specTextBytes(spec: TaskSpec): number {
  return sizeOf(spec, exactString, exactEntry);
}

/**
 * Reject a spec with more than `max` bytes of text. A bound from string
 * lengths alone settles the common case; only a spec that might be too large
 * has its UTF-8 measured.
 */
function checkSpecSize(spec: TaskSpec, max: number): void {
  if (sizeOf(spec, boundString, boundEntry) <= max) return;
  const size = specTextBytes(spec);
  if (size <= max) return;
  throw new AgentError(
    "PayloadTooLarge",
    `spec: ${size} bytes of text, more than the ${max} a task may hold (it must fit one 4 MiB gRPC message)`,
  );
}

// ---------------------------------------------------------------------------
// Paths and values in messages

/** A path segment: an object key, or an array index. */
type Seg = string | number;

function fail(path: readonly Seg[], text: string): never {
  throw invalid(`${formatPath(path)}: ${text}`);
}

function formatPath(path: readonly Seg[]): string {
  let out = "spec";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else {
      const name = fieldName(seg);
      out += name.startsWith('"') ? `[${name}]` : `.${name}`;
    }
  }
  return out;
}

/** Render a bad value for a message: strings JSON-quoted, everything cut after 80 characters. */
function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(clip(value));
  if (value === undefined || typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return String(value);
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? typeof value;
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return clip(text);
}

function quoteList(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(", ");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Turn a TypeBox JSON pointer into segments, using `root` to tell array indexes from keys. */
function pointerToPath(pointer: string, root: unknown): Seg[] {
  if (pointer === "") return [];
  const out: Seg[] = [];
  let current: unknown = root;
  for (const raw of pointer.split("/").slice(1)) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(current)) {
      const index = Number(key);
      out.push(index);
      current = current[index];
    } else {
      out.push(key);
      current = isRecord(current) ? current[key] : undefined;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Pass 1: structure

/** Throw the first structural problem of `value` against `schema`; `base` is the path of `value`. */
function checkStructure(schema: TSchema, value: unknown, base: readonly Seg[]): void {
  const errors = Value.Errors(schema, value);
  const first = errors.First();
  if (first === undefined) return;
  const path = [...base, ...pointerToPath(first.path, value)];
  switch (first.type) {
    case ValueErrorType.Union:
      return checkUnion(first.schema, first.value, path);
    case ValueErrorType.ObjectAdditionalProperties:
      return fail(path, "unknown field");
    case ValueErrorType.ObjectRequiredProperty:
      return missing(first, path, value, errors);
    default:
      return fail(path, `must be ${expectation(first.schema, path)}, got ${show(first.value)}`);
  }
}

/** A required field is absent; mention unknown siblings, which are often its misspelling. */
function missing(first: ValueError, path: readonly Seg[], root: unknown, rest: Iterable<ValueError>): never {
  const parentPointer = first.path.slice(0, first.path.lastIndexOf("/"));
  const unknown: string[] = [];
  for (const e of rest) {
    if (e.type !== ValueErrorType.ObjectAdditionalProperties) continue;
    if (e.path.slice(0, e.path.lastIndexOf("/")) !== parentPointer) continue;
    const seg = pointerToPath(e.path, root).at(-1);
    if (typeof seg === "string") unknown.push(seg);
  }
  const parent = path.slice(0, -1);
  if (parent.length === 1 && parent[0] === "kind" && path.at(-1) === "subprocess") {
    const other = unknown[0];
    if (other !== undefined) fail([...parent, other], 'unsupported kind (only "subprocess" is supported)');
  }
  const hint = unknown.length > 0 ? `; unknown field ${quoteList(unknown.slice(0, 3).map((k) => clip(k)))} present` : "";
  return fail(path, `required field missing (expected ${expectation(first.schema, path)})${hint}`);
}

function variantsOf(schema: TUnion): TSchema[] {
  return schema.anyOf.flatMap((v) => (KindGuard.IsUnion(v) ? variantsOf(v) : [v]));
}

function literalsOf(schema: TUnion): unknown[] {
  return variantsOf(schema)
    .filter(KindGuard.IsLiteral)
    .map((v) => v.const);
}

function literalValue(schema: TSchema | undefined): unknown {
  return schema !== undefined && KindGuard.IsLiteral(schema) ? schema.const : undefined;
}

function requiredKeys(schema: TObject): string[] {
  return schema.required ?? [];
}

/** A key that every object variant requires and pins to a literal (restart's `type`). */
function tagKey(objects: readonly TObject[]): string | undefined {
  const first = objects[0];
  if (first === undefined || objects.length < 2) return undefined;
  return requiredKeys(first).find((key) =>
    objects.every((o) => requiredKeys(o).includes(key) && KindGuard.IsLiteral(o.properties[key])),
  );
}

/** Human description of a union, built from its literal members and object variants. */
function describeUnion(schema: TUnion): string {
  const variants = variantsOf(schema);
  const literals = literalsOf(schema);
  const objects = variants.filter(KindGuard.IsObject);
  if (objects.length === 0) return `one of ${quoteList(literals)}`;
  const tag = tagKey(objects);
  if (tag !== undefined && literals.length === 0) {
    return `an object with ${JSON.stringify(tag)} one of ${quoteList(objects.map((o) => literalValue(o.properties[tag])))}`;
  }
  const shapes = objects.map((o) => requiredKeys(o).map((k) => JSON.stringify(k)).join(", "));
  if (literals.length === 0) return `an object with exactly one of ${shapes.join(" or ")}`;
  return `one of ${quoteList(literals)} or ${shapes.map((s) => `{${s}: …}`).join(" or ")}`;
}

/**
 * The value matched no member of a union. Pick the member the client meant
 * (by tag value or by which key is present) and report its first problem;
 * if no member fits, list what is allowed.
 */
function checkUnion(schema: TSchema, value: unknown, path: readonly Seg[]): never {
  if (!KindGuard.IsUnion(schema)) return fail(path, `must be ${expectation(schema, path)}, got ${show(value)}`);
  const objects = variantsOf(schema).filter(KindGuard.IsObject);
  const allowed = describeUnion(schema);
  if (!isRecord(value) || objects.length === 0) return fail(path, `must be ${allowed}, got ${show(value)}`);

  const tag = tagKey(objects);
  if (tag !== undefined) {
    const tags = quoteList(objects.map((o) => literalValue(o.properties[tag])));
    if (!Object.hasOwn(value, tag)) fail([...path, tag], `required field missing (expected one of ${tags})`);
    const chosen = objects.find((o) => literalValue(o.properties[tag]) === value[tag]);
    if (chosen === undefined) fail([...path, tag], `must be one of ${tags}, got ${show(value[tag])}`);
    checkStructure(chosen, value, path);
  } else {
    const matching = objects.filter((o) => requiredKeys(o).every((k) => Object.hasOwn(value, k)));
    const chosen = matching.length === 1 ? matching[0] : undefined;
    if (chosen !== undefined) checkStructure(chosen, value, path);
    if (literalsOf(schema).length === 0) {
      const keys = objects.map((o) => requiredKeys(o).map((k) => JSON.stringify(k)).join(", "));
      const got = matching.length > 1 ? "more than one" : "none";
      fail(path, `must have exactly one of ${keys.join(" or ")}, got ${got}: ${show(value)}`);
    }
  }
  return fail(path, `must be ${allowed}, got ${show(value)}`);
}

/** What a schema accepts, for "must be …" messages. `path` gives the field name (for the "ms" unit). */
function expectation(schema: TSchema, path: readonly Seg[]): string {
  if (KindGuard.IsUnion(schema)) return describeUnion(schema);
  if (KindGuard.IsLiteral(schema)) return JSON.stringify(schema.const);
  if (KindGuard.IsString(schema)) return "a string";
  if (KindGuard.IsBoolean(schema)) return "a boolean";
  if (KindGuard.IsArray(schema)) return `an array of ${plural(expectation(schema.items, path))}`;
  if (KindGuard.IsObject(schema) || KindGuard.IsRecord(schema)) return "an object";
  if (KindGuard.IsInteger(schema)) return `an integer${bounds(schema, path)}`;
  if (KindGuard.IsNumber(schema)) return `a finite number${bounds(schema, path)}`;
  return "valid";
}

function plural(noun: string): string {
  return noun.replace(/^an? (\w+)/, "$1s");
}

function bounds(schema: TSchema, path: readonly Seg[]): string {
  const parts: string[] = [];
  const num = (key: string): number | undefined => {
    const v: unknown = schema[key];
    return typeof v === "number" ? v : undefined;
  };
  const exMin = num("exclusiveMinimum");
  const min = num("minimum");
  const max = num("maximum");
  const exMax = num("exclusiveMaximum");
  if (exMin !== undefined) parts.push(`> ${exMin}`);
  if (min !== undefined) parts.push(`≥ ${min}`);
  if (max !== undefined) parts.push(`≤ ${max}`);
  if (exMax !== undefined) parts.push(`< ${exMax}`);
  const key = path.at(-1);
  const unit = typeof key === "string" && (key === "timeout" || key.endsWith("Ms")) ? " ms" : "";
  return parts.length > 0 ? ` ${parts.join(" and ")}${unit}` : unit;
}

// ---------------------------------------------------------------------------
// Pass 2: semantic rules and normalization

const SLOT = /^[A-Za-z0-9._-]{1,64}$/;
const LABEL_KEY = /^[A-Za-z0-9._/-]{1,63}$/;
const MAX_LABEL_VALUE = 256;
/**
 * Labels per task. Each is an indexed row written on the agent's thread: a
 * 4 MiB body of 280 000 labels held the agent ≈ 2 s (GCP allows 64 labels per
 * resource, AWS 50 tags).
 */
export const MAX_LABELS = 64;
const BASE64_HINT = 'standard base64 (A-Z a-z 0-9 + /, "=" padding, no whitespace)';

function normalize(s: TaskSpecInput, maxScriptBytes: number): TaskSpec {
  if (!SLOT.test(s.slot)) fail(["slot"], `must be 1..64 characters of [A-Za-z0-9._-], got ${show(s.slot)}`);
  if (s.slot === "." || s.slot === "..") fail(["slot"], `must not be "." or "..", got ${show(s.slot)}`);

  const sub = s.kind.subprocess;
  const subPath = ["kind", "subprocess"] as const;
  const mode = normalizeMode(sub.mode, [...subPath, "mode"], maxScriptBytes);
  const env = normalizeEnv(sub.env ?? SPEC_DEFAULTS.env, [...subPath, "env"]);
  if (sub.cwd !== undefined) {
    cString(sub.cwd, [...subPath, "cwd"]);
    if (!sub.cwd.startsWith("/")) fail([...subPath, "cwd"], `must be an absolute path, got ${show(sub.cwd)}`);
  }

  const backoff: Backoff = s.backoff !== undefined ? { ...s.backoff } : { ...SPEC_DEFAULTS.backoff };
  if (!Number.isFinite(backoff.firstMs) || backoff.firstMs <= 0) {
    fail(["backoff", "firstMs"], `must be a finite number > 0 ms, got ${show(backoff.firstMs)}`);
  }
  if (!(backoff.maxMs >= backoff.firstMs) || !Number.isFinite(backoff.maxMs)) {
    fail(["backoff", "maxMs"], `must be ≥ backoff.firstMs (${backoff.firstMs} ms), got ${show(backoff.maxMs)}`);
  }
  if (!Number.isFinite(backoff.factor) || backoff.factor < 1) {
    fail(["backoff", "factor"], `must be a finite number ≥ 1, got ${show(backoff.factor)}`);
  }

  const labels = normalizeLabels(s.labels ?? SPEC_DEFAULTS.labels);

  const spec: TaskSpec = {
    slot: s.slot,
    kind: {
      subprocess: {
        mode,
        env,
        ...(sub.cwd !== undefined ? { cwd: sub.cwd } : {}),
        failOnNonZero: sub.failOnNonZero ?? SPEC_DEFAULTS.failOnNonZero,
      },
    },
    timeout: s.timeout ?? SPEC_DEFAULTS.timeout,
    restart: normalizeRestart(s.restart),
    backoff,
    admission: s.admission ?? SPEC_DEFAULTS.admission,
    labels,
  };
  if (s.maxAttempts !== undefined) spec.maxAttempts = s.maxAttempts;
  if (s.killGraceMs !== undefined) spec.killGraceMs = s.killGraceMs;
  if (s.priority !== undefined) spec.priority = s.priority;
  if (s.hold !== undefined) spec.hold = s.hold;
  if (s.resources !== undefined) spec.resources = normalizeResources(s.resources);
  return spec;
}

/** A string the process gets as a C string (UTF-8): no NUL, and well-formed Unicode. */
function cString(value: string, path: readonly Seg[]): void {
  if (value.includes("\0")) fail(path, `must not contain NUL characters, got ${show(value)}`);
  wellFormed(value, path);
}

/**
 * A string with an unpaired UTF-16 surrogate (`"\ud800"` in JSON) has no
 * UTF-8 form: the process, SQLite's indexes and gRPC would each see U+FFFD
 * while the stored spec kept the escape, so one field would have two values.
 */
function wellFormed(value: string, path: readonly Seg[]): void {
  if (!value.isWellFormed()) fail(path, `must be valid Unicode (an unpaired surrogate has no UTF-8 form), got ${show(value)}`);
}

function notBlank(value: string, path: readonly Seg[]): void {
  if (value.trim() === "") fail(path, `must not be empty or blank, got ${show(value)}`);
  cString(value, path);
}

function normalizeArgs(args: readonly string[] | undefined, path: readonly Seg[]): string[] {
  const out = [...(args ?? SPEC_DEFAULTS.args)];
  out.forEach((arg, i) => cString(arg, [...path, i]));
  return out;
}

function normalizeMode(
  mode: TaskSpecInput["kind"]["subprocess"]["mode"],
  path: readonly Seg[],
  maxScriptBytes: number,
): CommandMode | ScriptMode {
  if ("command" in mode) {
    const p = [...path, "command"];
    notBlank(mode.command.command, [...p, "command"]);
    return { command: { command: mode.command.command, args: normalizeArgs(mode.command.args, [...p, "args"]) } };
  }
  const p = [...path, "script"];
  const { runtime, body, args } = mode.script;
  let normalizedRuntime: ScriptRuntime;
  if (typeof runtime === "string") {
    normalizedRuntime = runtime;
  } else {
    const rp = [...p, "runtime", "custom"];
    notBlank(runtime.custom.command, [...rp, "command"]);
    notBlank(runtime.custom.flag, [...rp, "flag"]);
    normalizedRuntime = { custom: { command: runtime.custom.command, flag: runtime.custom.flag } };
  }
  checkScriptBody(body, [...p, "body"], maxScriptBytes);
  return { script: { runtime: normalizedRuntime, body, args: normalizeArgs(args, [...p, "args"]) } };
}

function isBase64Char(code: number): boolean {
  return (
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x30 && code <= 0x39) || // 0-9
    code === 0x2b || // +
    code === 0x2f // /
  );
}

/** Strict RFC 4648 §4 check, then decode and require UTF-8 within the size limit. */
function checkScriptBody(body: string, path: readonly Seg[], maxBytes: number): void {
  let end = body.length;
  while (end > 0 && body.charCodeAt(end - 1) === 0x3d) end -= 1;
  for (let i = 0; i < end; i += 1) {
    if (isBase64Char(body.charCodeAt(i))) continue;
    const ch = String.fromCodePoint(body.codePointAt(i) ?? 0);
    const why =
      ch === "-" || ch === "_"
        ? " (URL-safe base64 is not accepted)"
        : /\s/.test(ch)
          ? " (no whitespace or line breaks; encode with base64 -w0)"
          : ch === "="
            ? ' ("=" is only allowed as trailing padding)'
            : "";
    fail(path, `must be ${BASE64_HINT}; invalid character ${JSON.stringify(ch)} at offset ${i}${why}, got ${show(body)}`);
  }
  const padding = body.length - end;
  if (padding > 2 || body.length % 4 !== 0) {
    fail(path, `must be ${BASE64_HINT}; length must be a multiple of 4 with at most 2 "=", got ${show(body)}`);
  }
  const size = (body.length / 4) * 3 - padding;
  if (size > maxBytes) fail(path, `decoded script must be ≤ ${maxBytes} bytes, got ${size} bytes`);
  const bytes = Buffer.from(body, "base64");
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    fail(path, `decoded script must be valid UTF-8, got ${show(body)}`);
  }
}

function normalizeEnv(env: readonly KeyValue[], path: readonly Seg[]): KeyValue[] {
  const byKey = new Map<string, string>();
  env.forEach(({ key, value }, i) => {
    const kp = [...path, i, "key"];
    if (key === "") fail(kp, `must not be empty, got ""`);
    if (key.includes("=")) fail(kp, `must not contain "=", got ${show(key)}`);
    cString(key, kp);
    cString(value, [...path, i, "value"]);
    byKey.set(key, value); // Map keeps the first insertion position, takes the last value
  });
  return [...byKey].map(([key, value]) => ({ key, value }));
}

function normalizeRestart(restart: TaskSpecInput["restart"]): RestartPolicy {
  if (restart === undefined) return { ...SPEC_DEFAULTS.restart };
  switch (restart.type) {
    case "never":
      return { type: "never" };
    case "onFailure":
      return { type: "onFailure" };
    case "always":
      return { type: "always", intervalMs: restart.intervalMs ?? SPEC_DEFAULTS.alwaysIntervalMs };
  }
}

function normalizeLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) fail(["labels"], `at most ${MAX_LABELS} labels, got ${entries.length}`);
  for (const [key, value] of entries) {
    if (!LABEL_KEY.test(key)) fail(["labels", key], `key must be 1..63 characters of [A-Za-z0-9._/-], got ${show(key)}`);
    wellFormed(value, ["labels", key]);
    let count = 0;
    for (const _ of value) count += 1;
    if (count > MAX_LABEL_VALUE) {
      fail(["labels", key], `value must be at most ${MAX_LABEL_VALUE} characters, got ${count}: ${show(value)}`);
    }
  }
  return Object.fromEntries(entries);
}

function normalizeResources(r: Resources): Resources {
  const out: Resources = {};
  if (r.memoryBytes !== undefined) out.memoryBytes = r.memoryBytes;
  if (r.cpuMillis !== undefined) out.cpuMillis = r.cpuMillis;
  if (r.pids !== undefined) out.pids = r.pids;
  return out;
}
