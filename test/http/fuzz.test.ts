/**
 * Seeded, bounded fuzzing of the REST API (CONTRACT §1 "Validation", §2 routes
 * and errors) against a real in-process agent with a SQLite store.
 *
 * From one seed (default below; `FUZZ_SEED=<n>` replays another) it generates:
 * - submit bodies: valid domain-shaped and proto3-JSON specs, mutated (fields
 *   dropped, duplicated, renamed, retyped; extreme numbers such as 1e309 or
 *   2^64; long, unicode and NUL strings and keys; deep nesting; unknown
 *   fields; bad base64 script bodies; label maps of up to 1000 entries), plus
 *   bodies that are not JSON objects, wrong content types and odd
 *   `?wait=`/`?timeoutMs=` queries;
 * - query strings for the list (and lists read page by page), the event
 *   stream, and ids and queries for a task, its runs, logs and wait, in plain
 *   and odd percent-encodings;
 * - random methods, bodies and X-Request-Id headers on every known path;
 * - bursts of concurrent start/cancel/restart/delete/wait/submit on the tasks
 *   of one slot (the inputs are seeded; their interleaving is the scheduler's).
 *
 * Every answer must hold: no 5xx except a 503 `Unavailable`; every error is
 * the `{"error", "message"}` envelope with a label of the contract's table and
 * that label's status; a 2xx submit names a task that GET then finds, and
 * whose spec, submitted again, is accepted and stored unchanged (validation
 * is idempotent). Where the contract states a rule outright — an unknown
 * field, a value of the wrong JSON type, a missing required field, NUL in a
 * string, bad base64, more than 64 labels, an unknown or repeated query
 * parameter, a bad cursor — the answer must be a 400 whose message names the
 * field and stays short; where a request is valid by the contract, it must
 * succeed, and a list page must match its filters, order and total. A task
 * whose DELETE answered 204 stays gone. Afterwards the agent is healthy, every
 * accepted task is still there and no rejected request left one behind.
 *
 * Three findings of this fuzzing have their own tests after the parts (F1
 * unpaired surrogates in strings, F2 and F3 messages that echoed input
 * whole).
 *
 * Accepted tasks are held (`hold: true`) or run /bin/true-like commands that
 * end at once; long polls always carry a small `timeoutMs`; streams are
 * dropped after their headers unless they end by themselves.
 * A failure message names the seed and the case number.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mulberry32 } from "../helpers/seeded-random.ts";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";

// ---------------------------------------------------------------------------
// Seed, PRNG and counts

const SEED = Number(process.env.FUZZ_SEED ?? "") || 0x7a51a9e;

const SUBMIT_CASES = 1500;
const LIST_CASES = 800;
const TASK_ROUTE_CASES = 800;
const METHOD_CASES = 500;
const BURSTS = 60;
const PAGING_CASES = 40;
const EVENTS_CASES = 150;

/** Longest any one request may take before it counts as hung (none should come near). */
const GUARD_MS = 10_000;

type Rand = () => number;

const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;
const chance = (r: Rand, p: number): boolean => r() < p;

// ---------------------------------------------------------------------------
// The contract's vocabulary

/** CONTRACT §2 "Errors": every label and its status. */
const LABEL_STATUS: Readonly<Record<string, number>> = {
  InvalidRequest: 400,
  Unauthenticated: 401,
  PermissionDenied: 403,
  TaskNotFound: 404,
  NotFound: 404,
  PayloadTooLarge: 413,
  RateLimited: 429,
  Unavailable: 503,
  Internal: 500,
};
const PHASES = ["pending", "running", "succeeded", "failed", "timeout", "canceled", "exhausted"] as const;
const JITTERS = ["none", "full", "equal", "decorrelated"] as const;
const ADMISSIONS = ["dropIfRunning", "replace", "queue"] as const;
const TASK_ID = /^tsk_[0-9A-HJKMNP-TV-Z]{26}$/;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

type Json = Record<string, any>;

// ---------------------------------------------------------------------------
// Value pools

/** Strings that are odd for most fields: empty, blank, non-ASCII, NUL, unpaired surrogates, long, look-alikes. */
const ODD_STRINGS: readonly string[] = [
  "",
  " ",
  "\t\n",
  "true",
  "null",
  "0",
  "-1",
  "é",
  "日本語",
  "🙂",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff\ud800",
  "\u202e\u200b",
  "../../etc/passwd",
  "%00",
  "%zz",
  "$(reboot)",
  "<script>",
  "RESTART_STRATEGY_ALWAYS",
  "x".repeat(65),
  "y".repeat(5000),
];
/** Raw JSON number tokens, sent as written (JSON.stringify cannot produce most of them). */
const RAW_NUMBERS: readonly string[] = [
  "1e309",
  "-1e309",
  "1" + "0".repeat(400),
  "1e-400",
  "-0",
  "0.0",
  "1.0",
  "1E2",
  "2.5",
  "-1",
  "0",
  "1",
  "4294967296",
  "604800001",
  "9007199254740993",
  "-9007199254740993",
  "18446744073709551616",
  "1.7976931348623157e308",
  "5e-324",
];
/** Keys no object of a spec or a body has. */
const UNKNOWN_KEYS: readonly string[] = [
  "timout",
  "Slot",
  "SPEC",
  "x",
  "",
  " ",
  "\u0000",
  "é",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "a.b",
  "a/b",
  "~1",
  "$ref",
  "k".repeat(300),
];
/** Keys a required field of the domain shape has (dropping one is always a 400). */
const REQUIRED_KEYS = new Set(["spec", "slot", "kind", "subprocess", "mode", "command", "script", "runtime", "body", "custom", "flag", "key", "value", "jitter", "firstMs", "maxMs", "factor", "type"]);
/** Proto3-JSON spellings of domain names (and the other way round). */
const RENAMES: Readonly<Record<string, readonly string[]>> = {
  timeout: ["timeoutMs", "timeout_ms"],
  timeoutMs: ["timeout", "timeout_ms"],
  failOnNonZero: ["fail_on_non_zero"],
  fail_on_non_zero: ["failOnNonZero"],
  firstMs: ["first_ms"],
  maxMs: ["max_ms"],
  first_ms: ["firstMs"],
  max_ms: ["maxMs"],
  maxAttempts: ["max_attempts"],
  killGraceMs: ["kill_grace_ms"],
  intervalMs: ["restartIntervalMs"],
  wellKnown: ["well_known", "runtime"],
  runtime: ["wellKnown"],
  mode: ["command", "script"],
  slot: ["Slot", "SLOT"],
};
/** Label values that are valid (≤ 256 characters) but hard on URLs, SQL and JSON. */
const LABEL_VALUES: readonly string[] = ["edge", "", "a=b", "a&b", "a+b c", "%41", "é", "🙂", "\u0000", "'; DROP TABLE tasks; --", "\\", "\"", "v".repeat(256)];
const SLOTS = ["fz-a", "fz-b", "fz.c", "fz_d", "FZ-e"];
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

const b64 = (s: string): string => Buffer.from(s).toString("base64");

// ---------------------------------------------------------------------------
// JSON trees with raw tokens and duplicate keys

/** A JSON token sent as written (e.g. `1e309`). */
class Raw {
  constructor(readonly text: string) {}
}
/** An object sent with a key more than once. */
class Dup {
  constructor(readonly pairs: [string, unknown][]) {}
}
type Seg = string | number;
type Path = Seg[];

function encode(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Dup) return `{${v.pairs.map(([k, x]) => `${JSON.stringify(k)}:${encode(x)}`).join(",")}}`;
  if (Array.isArray(v)) return `[${v.map(encode).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${encode(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** Set an own, enumerable property (works for "__proto__" too). */
function put(obj: Json, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

const isPlainObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Raw) && !(v instanceof Dup);

/** Every node of a tree (not inside raw tokens or duplicate-key objects), with its path. */
function nodes(v: unknown, path: Path = [], out: { path: Path; value: unknown }[] = []): { path: Path; value: unknown }[] {
  out.push({ path, value: v });
  if (Array.isArray(v)) v.forEach((x, i) => nodes(x, [...path, i], out));
  else if (isPlainObject(v)) for (const [k, x] of Object.entries(v)) nodes(x, [...path, k], out);
  return out;
}

function parentOf(root: unknown, path: Path): any {
  let node: any = root;
  for (const seg of path.slice(0, -1)) node = node[seg];
  return node;
}

/** Replace the node at `path`; answers the new root. */
function replaceAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = parentOf(root, path);
  const last = path[path.length - 1]!;
  if (Array.isArray(parent)) parent[last as number] = value;
  else put(parent, last as string, value);
  return root;
}

/** The JSON type of what the agent parses out of `v`. */
function jsonType(v: unknown): string {
  const parsed = JSON.parse(encode(v));
  if (parsed === null) return "null";
  if (Array.isArray(parsed)) return "array";
  return typeof parsed;
}

/** True for the node that is the value of a labels map entry, or the map itself. */
const inLabels = (path: Path): boolean => path.includes("labels");

// ---------------------------------------------------------------------------
// Valid specs

function commandMode(r: Rand): Json {
  switch (int(r, 5)) {
    case 0:
      return { command: { command: "/bin/true" } };
    case 1:
      return { command: { command: "/bin/echo", args: ["fuzz", pick(r, ["é", "🙂", "a b", "--", "$HOME"])] } };
    case 2:
      return { command: { command: "true", args: [] } };
    case 3:
      return { script: { runtime: "bash", body: b64(pick(r, ["true", "echo fuzz ✓", ""])), args: chance(r, 0.5) ? ["x"] : [] } };
    default:
      return { script: { runtime: { custom: { command: "/bin/sh", flag: "-c" } }, body: b64("true") } };
  }
}

function labelsOf(r: Rand): Json {
  const labels: Json = { fuzz: "yes" };
  if (chance(r, 0.6)) labels.team = pick(r, ["edge", "core"]);
  if (chance(r, 0.5)) labels["app.kubernetes.io/name"] = pick(r, LABEL_VALUES);
  if (chance(r, 0.3)) labels[pick(r, ["z", "Z_9", "a-b"])] = pick(r, LABEL_VALUES);
  return labels;
}

/**
 * A valid domain-shaped spec. Mostly held; when not, it runs a command that
 * ends at once, and a restart policy other than never is capped so nothing loops.
 */
function domainSpec(r: Rand): Json {
  const spec: Json = { slot: chance(r, 0.85) ? pick(r, SLOTS) : `fz-${int(r, 1e6)}`, kind: { subprocess: { mode: commandMode(r) } } };
  const sub = spec.kind.subprocess;
  if (chance(r, 0.3)) sub.env = [{ key: "A", value: "1" }, { key: "LANG", value: "C.UTF-8" }].slice(0, 1 + int(r, 2));
  if (chance(r, 0.2)) sub.cwd = "/";
  if (chance(r, 0.3)) sub.failOnNonZero = chance(r, 0.5);
  if (chance(r, 0.4)) spec.timeout = pick(r, [1, 1000, 30_000, 604_800_000]);
  if (chance(r, 0.4)) {
    spec.restart = pick(r, [{ type: "never" }, { type: "onFailure" }, { type: "always", intervalMs: 3_600_000 }]);
    if (spec.restart.type !== "never") spec.maxAttempts = 1 + int(r, 2);
  } else if (chance(r, 0.2)) spec.maxAttempts = 1 + int(r, 10);
  if (chance(r, 0.4)) spec.backoff = { jitter: pick(r, JITTERS), firstMs: 100, maxMs: 1000, factor: pick(r, [1, 1.5, 2]) };
  if (chance(r, 0.4)) spec.admission = pick(r, ADMISSIONS);
  if (chance(r, 0.6)) spec.labels = labelsOf(r);
  if (chance(r, 0.2)) spec.killGraceMs = pick(r, [0, 100, 600_000]);
  if (chance(r, 0.2)) spec.priority = int(r, 11);
  if (chance(r, 0.1)) spec.resources = { pids: 64 }; // refused where the host cannot enforce it (see submitCase)
  if (chance(r, 0.9)) spec.hold = true;
  else if (chance(r, 0.5)) spec.hold = false;
  return spec;
}

/** A valid proto3-JSON spec (CONTRACT §5 names, camelCase or the proto's snake_case), always held. */
function protoSpec(r: Rand): Json {
  const snake = chance(r, 0.3);
  const n = (camel: string, snakeName: string) => (snake ? snakeName : camel);
  const sub: Json = chance(r, 0.6)
    ? { command: { command: "/bin/true", args: chance(r, 0.5) ? ["x"] : [] } }
    : { script: { [n("wellKnown", "well_known")]: "SCRIPT_RUNTIME_BASH", body: b64("true") } };
  if (chance(r, 0.5)) sub[n("failOnNonZero", "fail_on_non_zero")] = true;
  const spec: Json = {
    slot: pick(r, SLOTS),
    kind: { subprocess: sub },
    [n("timeoutMs", "timeout_ms")]: pick(r, ["30000", 30000, "1000"]),
    restart: pick(r, ["RESTART_STRATEGY_NEVER", 1]),
    admission: pick(r, ["ADMISSION_STRATEGY_QUEUE", "ADMISSION_STRATEGY_DROP_IF_RUNNING", 3]),
    hold: true,
  };
  if (chance(r, 0.5)) spec.backoff = { jitter: "JITTER_STRATEGY_FULL", [n("firstMs", "first_ms")]: "100", [n("maxMs", "max_ms")]: "1000", factor: 2 };
  if (chance(r, 0.5)) spec.labels = labelsOf(r);
  if (chance(r, 0.3)) spec[n("maxAttempts", "max_attempts")] = 3;
  if (chance(r, 0.3)) spec.priority = int(r, 11);
  return spec;
}

/**
 * Conservative: true only for a body nothing in it makes look like proto3 JSON
 * (the contract's domain-shape rules apply to it without doubt).
 */
function surelyDomainShaped(text: string, parsed: unknown): boolean {
  if (/timeout_?[mM]s|restart_?[iI]nterval|STRATEGY_|"wasm"|"container"|"well_?[kK]nown"/.test(text)) return false;
  const sub = (parsed as any)?.spec?.kind?.subprocess;
  return !(isPlainObject(sub) && ("command" in sub || "script" in sub));
}

// ---------------------------------------------------------------------------
// Mutations

interface Mutated {
  root: unknown;
  what: string;
  /** Why the contract rejects the result (400), when a single mutation settles it. */
  rejects?: string;
  /** The rule holds for proto3-JSON bodies too, not only the domain shape. */
  bothShapes?: boolean;
  /** The field the 400's message must name (any of these, as the message spells a path segment). */
  names?: string[];
}
type Mutation = (r: Rand, root: unknown) => Mutated | undefined;

function oddValue(r: Rand): unknown {
  switch (int(r, 9)) {
    case 0:
      return pick(r, ODD_STRINGS);
    case 1:
      return new Raw(pick(r, RAW_NUMBERS));
    case 2:
      return pick(r, [0, -1, 1.5, NaN, Infinity, 2 ** 53, -(2 ** 31), 1e21]);
    case 3:
      return chance(r, 0.5);
    case 4:
      return null;
    case 5:
      return pick(r, [[], [1, "a"], [null], [[[]]], [{}]]);
    case 6:
      return pick(r, [{}, { x: 1 }, { "": null }, { spec: {} }]);
    case 7:
      return "z".repeat(pick(r, [300, 20_000, 100_000]));
    default:
      return pick(r, ["NaN", "Infinity", "1e309", "30000", "0x10"]);
  }
}

const objectNodes = (root: unknown) => nodes(root).filter((n) => isPlainObject(n.value) && Object.keys(n.value as Json).length > 0);

const drop: Mutation = (r, root) => {
  const objs = objectNodes(root);
  if (objs.length === 0) return undefined;
  const { path, value } = pick(r, objs);
  const key = pick(r, Object.keys(value as Json));
  delete (value as Json)[key];
  const required = REQUIRED_KEYS.has(key) && path.at(-1) !== "labels";
  return { root, what: `drop ${fmt([...path, key])}`, rejects: required ? `required field ${JSON.stringify(key)} missing` : undefined, names: [segName(key)] };
};

const duplicate: Mutation = (r, root) => {
  const objs = objectNodes(root);
  if (objs.length === 0) return undefined;
  const { path, value } = pick(r, objs);
  const entries = Object.entries(value as Json);
  const [key, old] = pick(r, entries);
  const again = chance(r, 0.5) ? old : oddValue(r);
  const pairs: [string, unknown][] = chance(r, 0.5) ? [...entries, [key, again]] : [[key, again], ...entries];
  return { root: replaceAt(root, path, new Dup(pairs)), what: `duplicate ${fmt([...path, key])}` };
};

const retype: Mutation = (r, root) => {
  const { path, value } = pick(r, nodes(root));
  const before = jsonType(value);
  let next = oddValue(r);
  for (let i = 0; i < 5 && jsonType(next) === before; i++) next = oddValue(r);
  const changed = jsonType(next) !== before;
  return {
    root: replaceAt(root, path, next),
    what: `retype ${fmt(path)} (${before} → ${jsonType(next)})`,
    rejects: changed ? `${fmt(path)}: a ${jsonType(next)} where a ${before} belongs` : undefined,
    names: lastName(path),
  };
};

const insertUnknown: Mutation = (r, root) => {
  const objs = nodes(root).filter((n) => isPlainObject(n.value) && n.path.at(-1) !== "labels");
  if (objs.length === 0) return undefined;
  const { path, value } = pick(r, objs);
  const key = pick(r, UNKNOWN_KEYS);
  if (Object.hasOwn(value as Json, key)) return undefined;
  put(value as Json, key, oddValue(r));
  return { root, what: `insert unknown ${fmt([...path, key])}`, rejects: `unknown field ${JSON.stringify(key)}`, bothShapes: true, names: keyNames([key]) };
};

const rename: Mutation = (r, root) => {
  const objs = objectNodes(root).filter((n) => n.path.at(-1) !== "labels");
  if (objs.length === 0) return undefined;
  const { path, value } = pick(r, objs);
  const obj = value as Json;
  const key = pick(r, Object.keys(obj));
  const weird = !(key in RENAMES) || chance(r, 0.3);
  const to = weird ? pick(r, UNKNOWN_KEYS) : pick(r, RENAMES[key]!);
  if (to === key || Object.hasOwn(obj, to)) return undefined;
  const v = obj[key];
  delete obj[key];
  put(obj, to, v);
  return { root, what: `rename ${fmt([...path, key])} → ${JSON.stringify(to)}`, ...(weird ? { rejects: `unknown field ${JSON.stringify(to)}`, bothShapes: true, names: keyNames([to, key]) } : {}) };
};

const extremeNumber: Mutation = (r, root) => {
  const nums = nodes(root).filter((n) => typeof n.value === "number" || (typeof n.value === "string" && /^\d+$/.test(n.value)));
  if (nums.length === 0) return undefined;
  const { path } = pick(r, nums);
  const raw = chance(r, 0.8) ? new Raw(pick(r, RAW_NUMBERS)) : pick(r, [-1, 0.5, 1e21, -(2 ** 63), 2 ** 64]);
  const parsed = JSON.parse(encode(raw)) as number;
  const isFactor = path.at(-1) === "factor";
  const bad = !Number.isFinite(parsed) || parsed < 0 || (!isFactor && !Number.isInteger(parsed));
  return { root: replaceAt(root, path, raw), what: `number ${fmt(path)} = ${encode(raw).slice(0, 40)}`, rejects: bad ? `${fmt(path)}: ${encode(raw).slice(0, 40)} is no valid value` : undefined, names: lastName(path) };
};

const oddString: Mutation = (r, root) => {
  const strs = nodes(root).filter((n) => typeof n.value === "string");
  if (strs.length === 0) return undefined;
  const { path } = pick(r, strs);
  const s = chance(r, 0.8) ? pick(r, ODD_STRINGS) : `${pick(r, ODD_STRINGS)}${"\u0000"}${pick(r, ODD_STRINGS)}`;
  const nul = s.includes("\u0000") && !inLabels(path);
  return { root: replaceAt(root, path, s), what: `string ${fmt(path)} = ${JSON.stringify(s.slice(0, 20))}`, ...(nul ? { rejects: `${fmt(path)} holds NUL`, bothShapes: true, names: lastName(path) } : {}) };
};

const oddKey: Mutation = (r, root) => {
  // A key with NUL or non-ASCII where the shape has fixed names, or in the labels map (label keys are [A-Za-z0-9._/-]).
  const objs = nodes(root).filter((n) => isPlainObject(n.value));
  if (objs.length === 0) return undefined;
  const { path, value } = pick(r, objs);
  const key = pick(r, ["a\u0000b", "é", "🙂", "\ud800", " k", "k=v", "x".repeat(64)]);
  if (Object.hasOwn(value as Json, key)) return undefined;
  put(value as Json, key, "v");
  return { root, what: `odd key ${fmt([...path, key])}`, rejects: `bad key ${JSON.stringify(key)}`, bothShapes: true, names: keyNames([key]) };
};

const badBase64: Mutation = (r, root) => {
  const bodies = nodes(root).filter((n) => n.path.at(-1) === "body" && typeof n.value === "string");
  if (bodies.length === 0) return undefined;
  const { path, value } = pick(r, bodies);
  const s = value as string;
  const at = int(r, s.length + 1);
  const bad = s.slice(0, at) + pick(r, ["-", "_", " ", "\n", "!", "*", "é", "=", ".", "~", "\u0000"]) + s.slice(at);
  return { root: replaceAt(root, path, bad), what: `base64 ${JSON.stringify(bad.slice(0, 40))}`, rejects: "script body is not standard base64", bothShapes: true, names: ["body"] };
};

const nest: Mutation = (r, root) => {
  const { path, value } = pick(r, nodes(root));
  const depth = pick(r, [1, 2, 8, 64, 1000, 3000]);
  const asArray = chance(r, 0.5);
  let v: unknown = value;
  for (let i = 0; i < depth; i++) v = asArray ? [v] : { a: v };
  return { root: replaceAt(root, path, v), what: `nest ${fmt(path)} ${depth} deep in ${asArray ? "arrays" : "objects"}`, rejects: "a value nested where none belongs", bothShapes: true, names: lastName(path) };
};

const bigLabels: Mutation = (r, root) => {
  const spec = isPlainObject(root) ? root.spec : undefined;
  if (!isPlainObject(spec)) return undefined;
  const n = pick(r, [0, 1, 63, 64, 65, 100, 1000]);
  const labels: Json = {};
  for (let i = 0; i < n; i++) labels[`k${i}`] = pick(r, LABEL_VALUES);
  put(spec, "labels", labels);
  return { root, what: `${n} labels`, ...(n > 64 ? { rejects: "more than 64 labels", bothShapes: true, names: ["labels"] } : {}) };
};

const MUTATIONS: readonly Mutation[] = [drop, duplicate, retype, retype, insertUnknown, rename, extremeNumber, extremeNumber, oddString, oddString, oddKey, badBase64, nest, bigLabels];

/** A path segment as a message spells it: `[3]` for an index, else the key (JSON-escaped, cut after 80 characters). */
function segName(seg: Seg): string {
  return typeof seg === "number" ? `[${seg}]` : JSON.stringify(seg.slice(0, 80)).slice(1, -1);
}
const lastName = (path: Path): string[] | undefined => (path.length > 0 ? [segName(path[path.length - 1]!)] : undefined);
/**
 * The names a message about `keys` of the object at `path` must hold.
 */
const keyNames = (keys: string[]): string[] => keys.map(segName);

function fmt(path: Path): string {
  return path.length === 0 ? "(body)" : path.map((s) => (typeof s === "number" ? `[${s}]` : `.${JSON.stringify(s).slice(1, -1).slice(0, 30)}`)).join("").slice(1);
}

// ---------------------------------------------------------------------------
// Bodies that are not a JSON object

function notAnObject(r: Rand, valid: string): string | Uint8Array {
  switch (int(r, 6)) {
    case 0:
      return Uint8Array.from({ length: 1 + int(r, 200) }, () => int(r, 256));
    case 1:
      return valid.slice(0, 1 + int(r, valid.length - 1));
    case 2:
      return valid + pick(r, ["x", "}", "{}", ",", "]", "\u0000"]);
    case 3:
      return pick(r, ["{'spec': {}}", '{"spec": {},}', '{"spec": {} /* c */}', '{"spec": NaN}', '{"spec": undefined}', "{spec: {}}", '{"spec": 0x10}']);
    case 4:
      return pick(r, ["null", "[]", '"spec"', "42", "true", "[{}]", '[{"spec": {}}]', "", " ", "\n"]);
    default:
      return "[".repeat(5000) + "]".repeat(5000);
  }
}

// ---------------------------------------------------------------------------
// Requests and the invariants every answer must hold

interface Answer {
  status: number;
  type: string;
  text: string;
  json?: any;
  /** The X-Request-Id response header. */
  requestId: string | null;
}

/** Collects broken invariants (at most a few dozen, each naming the seed and case). */
class Problems {
  readonly list: string[] = [];
  constructor(
    readonly part: string,
    readonly seed: number,
  ) {}
  add(caseNo: number, what: string, input: string): void {
    if (this.list.length < 40) this.list.push(`[${this.part} seed=${this.seed} case=${caseNo}] ${what} ← ${preview(input)}`);
  }
}

function preview(s: string, max = 400): string {
  const t = s.replace(/[\u0000-\u001f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return t.length > max ? `${t.slice(0, max)}… (${s.length} chars)` : t;
}

let a: TestAgent;

/** Send a request; SSE bodies are read to their end only when `readStream`, else dropped after the headers. */
async function send(method: string, path: string, init: { body?: string | Uint8Array; headers?: Record<string, string>; readStream?: boolean } = {}): Promise<Answer> {
  const res = await fetch(a.url + path, { method, body: init.body, headers: init.headers, signal: AbortSignal.timeout(GUARD_MS) });
  const type = res.headers.get("content-type") ?? "";
  let text = "";
  if (type.startsWith("text/event-stream") && !init.readStream) await res.body?.cancel();
  else text = await res.text();
  let json: any;
  if (type.startsWith("application/json") && text !== "") {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, type, text, json, requestId: res.headers.get("x-request-id") };
}

/** What is wrong with an answer whatever the request was: a 5xx, or an error that is not the envelope. */
function envelopeProblem(ans: Answer, method: string): string | undefined {
  if (ans.status < 400) return undefined;
  if (method === "HEAD") return ans.status >= 500 && ans.status !== 503 ? `HEAD answered ${ans.status}` : undefined;
  if (!ans.type.startsWith("application/json")) return `${ans.status} with content-type ${JSON.stringify(ans.type)}: ${preview(ans.text, 200)}`;
  const body = ans.json;
  if (!isPlainObject(body)) return `${ans.status} body is not a JSON object: ${preview(ans.text, 200)}`;
  const keys = Object.keys(body).sort().join(",");
  if (keys !== "error,message") return `${ans.status} envelope has keys ${keys}: ${preview(ans.text, 200)}`;
  if (typeof body.error !== "string" || typeof body.message !== "string" || body.message === "") return `${ans.status} envelope fields are not non-empty strings: ${preview(ans.text, 200)}`;
  const expected = LABEL_STATUS[body.error];
  if (expected === undefined) return `${ans.status} has unknown label ${JSON.stringify(body.error)}`;
  if (body.error === "Internal") return `Internal error: ${body.message}`;
  // 426 Upgrade Required is the one status outside the table (a plain GET of the WebSocket route).
  if (expected !== ans.status && !(ans.status === 426 && body.error === "InvalidRequest")) return `${ans.status} labelled ${body.error} (expected ${expected})`;
  if (ans.status >= 500 && ans.status !== 503) return `${ans.status}: ${preview(ans.text, 200)}`;
  return undefined;
}

/** Send and check the envelope; a request that never answers is a problem too. */
async function exchange(
  problems: Problems,
  caseNo: number,
  method: string,
  path: string,
  init: { body?: string | Uint8Array; headers?: Record<string, string>; readStream?: boolean } = {},
  input = `${method} ${path}`,
): Promise<Answer | undefined> {
  let ans: Answer;
  try {
    ans = await send(method, path, init);
  } catch (err) {
    problems.add(caseNo, `no answer: ${(err as Error).message}`, input);
    return undefined;
  }
  const p = envelopeProblem(ans, method);
  if (p) problems.add(caseNo, p, input);
  return ans;
}

// ---------------------------------------------------------------------------
// What the run has created

interface Known {
  id: string;
  slot: string;
  labels: Record<string, string>;
  createdAt: number;
}
/** Every task an answer said was created, by id (removed again by a 204 DELETE). */
const known = new Map<string, Known>();

async function remember(problems: Problems, caseNo: number, id: unknown, input: string): Promise<Json | undefined> {
  if (typeof id !== "string" || !TASK_ID.test(id)) {
    problems.add(caseNo, `success without a task id: ${JSON.stringify(id)}`, input);
    return undefined;
  }
  const got = await exchange(problems, caseNo, "GET", `/api/v1/tasks/${id}`, {}, input);
  if (!got) return undefined;
  if (got.status !== 200 || got.json?.task?.metadata?.id !== id) {
    problems.add(caseNo, `accepted task ${id} not readable: ${got.status} ${preview(got.text, 200)}`, input);
    return undefined;
  }
  const task = got.json.task as Json;
  known.set(id, { id, slot: task.spec.slot, labels: task.spec.labels, createdAt: task.metadata.createdAt });
  return task;
}

beforeAll(async () => {
  a = await startAgent({ persistent: true });
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
});

// ---------------------------------------------------------------------------
// Parts

describe(`REST fuzz (seed ${SEED}; FUZZ_SEED=<n> to replay another)`, () => {
  test(`${SUBMIT_CASES} mutated submit bodies`, async () => {
    const r = mulberry32(SEED ^ 0x1);
    const problems = new Problems("submit", SEED);
    let accepted = 0;
    let rejected = 0;
    for (let i = 0; i < SUBMIT_CASES; i++) {
      const c = submitCase(r);
      const ans = await exchange(problems, i, "POST", `/api/v1/tasks${c.query}`, { body: c.body, headers: c.headers }, c.input);
      if (!ans) continue;
      if (ans.status === 201 || ans.status === 200) {
        accepted++;
        if (c.why !== undefined) problems.add(i, `accepted (${ans.status}) although ${c.why}`, c.input);
        if (ans.status === 201 && !(ADMISSION_OUTCOMES as readonly string[]).includes(ans.json?.admission)) problems.add(i, `201 without a valid admission: ${ans.text}`, c.input);
        if (ans.status === 200 && !(Array.isArray(ans.json?.runs) && Array.isArray(ans.json?.output?.stdout) && Array.isArray(ans.json?.output?.stderr))) {
          problems.add(i, `submit-and-wait answer lacks runs/output: ${preview(ans.text, 200)}`, c.input);
        }
        const task = await remember(problems, i, submittedId(ans), c.input);
        if (task && chance(r, 0.3)) await roundTrip(problems, i, task, c.input);
        continue;
      }
      rejected++;
      if (c.valid && ans.status !== 503) problems.add(i, `a valid spec was refused: ${ans.status} ${preview(ans.text, 300)}`, c.input);
      if (c.why !== undefined && ans.status !== 400) problems.add(i, `expected 400 (${c.why}), got ${ans.status} ${preview(ans.text, 200)}`, c.input);
      const message = String(ans.json?.message ?? "");
      if (ans.status === 400 && c.names && !c.names.some((n) => message.includes(n))) {
        problems.add(i, `the message does not name the field (${c.names.join(" or ")}): ${preview(message, 200)}`, c.input);
      }
      // Client-supplied text is cut in messages (80 characters a value): none comes near 1000, however large the input.
      if (message.length > 1000) problems.add(i, `a message of ${message.length} characters: ${preview(message, 200)}`, c.input);
    }
    expect(problems.list).toEqual([]);
    // The generator must reach both sides of validation.
    expect(accepted).toBeGreaterThan(SUBMIT_CASES / 10);
    expect(rejected).toBeGreaterThan(SUBMIT_CASES / 3);
  });

  test(`${LIST_CASES} list query strings, ${PAGING_CASES} lists read page by page`, async () => {
    const r = mulberry32(SEED ^ 0x2);
    const problems = new Problems("list", SEED);
    let ok = 0;
    for (let i = 0; i < LIST_CASES; i++) {
      const { qs, findable } = listQuery(r);
      const path = `/api/v1/tasks${qs}`;
      const params = new URL(a.url + path).searchParams;
      const verdict = listVerdict(params);
      const ans = await exchange(problems, i, "GET", path);
      if (!ans) continue;
      if (verdict.ok !== (ans.status === 200)) {
        problems.add(i, `expected ${verdict.ok ? "200" : `400 (${verdict.why})`}, got ${ans.status} ${preview(ans.text, 200)}`, path);
        continue;
      }
      if (ans.status !== 200) continue;
      ok++;
      const p = pageProblem(ans.json, params, findable);
      if (p) problems.add(i, p, path);
    }
    // Paging: the pages of a filter, one after the other, are the whole list of it, each with the same total.
    for (let i = 0; i < PAGING_CASES; i++) {
      const filter = pagingFilter(r);
      const full = await exchange(problems, i, "GET", `/api/v1/tasks?limit=1000${filter}`);
      if (!full || full.status !== 200) continue;
      const all = (full.json.tasks as Json[]).map((t) => t.metadata.id as string);
      const size = Math.max(pick(r, [1, 2, 7, 50]), Math.ceil(all.length / 25));
      const paged: string[] = [];
      for (let offset = 0; offset <= all.length; offset += size) {
        const page = await exchange(problems, i, "GET", `/api/v1/tasks?limit=${size}&offset=${offset}${filter}`);
        if (!page || page.status !== 200) break;
        if (page.json.total !== full.json.total) problems.add(i, `page at offset ${offset} says total ${page.json.total}, the whole list ${full.json.total}`, filter);
        paged.push(...(page.json.tasks as Json[]).map((t) => t.metadata.id as string));
      }
      if (paged.join() !== all.join()) problems.add(i, `pages of ${size} hold ${paged.length} tasks, differently from the ${all.length} of the whole list`, filter);
    }
    expect(problems.list).toEqual([]);
    expect(ok).toBeGreaterThan(LIST_CASES / 5);
  });

  test(`${TASK_ROUTE_CASES} task ids and queries on GET …/{id}, /runs, /logs, /wait`, async () => {
    const r = mulberry32(SEED ^ 0x3);
    const problems = new Problems("task-routes", SEED);
    const ids = [...known.keys()];
    expect(ids.length).toBeGreaterThan(0);
    for (let i = 0; i < TASK_ROUTE_CASES; i++) {
      const suffix = pick(r, ["", "/runs", "/logs", "/wait"] as const);
      const { raw, knownId } = taskIdSegment(r, ids);
      const { query, verdict, headers, follow } = routeQuery(r, suffix, knownId);
      const path = `/api/v1/tasks/${raw}${suffix}${query}`;
      const url = new URL(a.url + path);
      const input = `GET ${path}${headers["last-event-id"] !== undefined ? ` Last-Event-ID: ${headers["last-event-id"]}` : ""}`;
      const ans = await exchange(problems, i, "GET", path, { headers, readStream: suffix === "/logs" && follow === false }, input);
      if (!ans) continue;
      // The id the server sees: the path segment as the client's URL parser left it, percent-decoded.
      const prefix = "/api/v1/tasks/";
      const rest = url.pathname.startsWith(prefix) && url.pathname.endsWith(suffix) ? url.pathname.slice(prefix.length, url.pathname.length - suffix.length) : undefined;
      if (rest === undefined || rest === "" || rest.includes("/")) continue; // the URL parser moved it onto another route
      const id = decodeSegment(rest);
      let expected: number[];
      if (id === undefined) expected = [400];
      else if (verdict === "bad") expected = known.has(id) ? [400] : [400, 404];
      else if (verdict === "either") expected = known.has(id) ? [200, 400] : [400, 404];
      else expected = known.has(id) ? [200] : [404];
      if (!expected.includes(ans.status)) {
        problems.add(i, `expected ${expected.join(" or ")} (id ${JSON.stringify(id)}${id !== undefined && known.has(id) ? ", known" : ""}), got ${ans.status} ${preview(ans.text, 200)}`, input);
        continue;
      }
      if (ans.status === 404 && ans.json?.error !== "TaskNotFound") problems.add(i, `404 for a task route labelled ${ans.json?.error}`, input);
      if (ans.status === 200) {
        const p = routeBodyProblem(suffix, ans, id!);
        if (p) problems.add(i, p, input);
      }
    }
    expect(problems.list).toEqual([]);
  });

  test(`${EVENTS_CASES} query strings on the task event stream`, async () => {
    const r = mulberry32(SEED ^ 0x9);
    const problems = new Problems("events", SEED);
    for (let i = 0; i < EVENTS_CASES; i++) {
      const parts: string[] = [];
      for (let n = int(r, 4); n > 0; n--) {
        const key = chance(r, 0.85) ? pick(r, ["after", "slot", "label"]) : pick(r, ["slott", "follow", "limit", ""]);
        const value =
          key === "after" ? pick(r, ["0", "5", "000", "99999999999999999999", "", "-1", "abc", "1.5"]) : key === "label" ? paramValue(r, "label") : paramValue(r, "slot");
        parts.push(`${encodeComponent(r, key)}=${encodeComponent(r, value)}`);
        if (chance(r, 0.1)) parts.push(parts[parts.length - 1]!);
      }
      const headers: Record<string, string> = {};
      if (chance(r, 0.2)) headers["last-event-id"] = pick(r, ["", "7", "abc", "-1"]);
      const path = `/api/v1/events${parts.length > 0 ? `?${parts.join("&")}` : ""}`;
      const verdict = eventsVerdict(new URL(a.url + path).searchParams, headers["last-event-id"]);
      const input = `GET ${path}${headers["last-event-id"] !== undefined ? ` Last-Event-ID: ${headers["last-event-id"]}` : ""}`;
      const ans = await exchange(problems, i, "GET", path, { headers }, input);
      if (!ans) continue;
      const expected = verdict === "ok" ? [200] : verdict === "bad" ? [400] : [200, 400];
      if (!expected.includes(ans.status)) problems.add(i, `expected ${expected.join(" or ")}, got ${ans.status} ${preview(ans.text, 200)}`, input);
      if (ans.status === 200 && !ans.type.startsWith("text/event-stream")) problems.add(i, `200 with content-type ${ans.type}`, input);
    }
    expect(problems.list).toEqual([]);
  });

  test(`${METHOD_CASES} random methods on known paths`, async () => {
    const r = mulberry32(SEED ^ 0x4);
    const problems = new Problems("methods", SEED);
    const ids = [...known.keys()];
    for (let i = 0; i < METHOD_CASES; i++) {
      const method = pick(r, METHODS);
      const template = pick(r, PATHS);
      const id = chance(r, 0.7) ? pick(r, ids) : chance(r, 0.5) ? unknownId(r) : pick(r, ["x", "%41", "__proto__", "constructor"]);
      let path = template.replace("{id}", id);
      // Nothing may hang: a long poll gets a short wait (streams are dropped after their headers).
      if (template.endsWith("/wait")) path += "?timeoutMs=5";
      const bodyRoll = r();
      const canHaveBody = method !== "GET" && method !== "HEAD";
      const body = canHaveBody && bodyRoll < 0.4 ? pick(r, ["{}", '{"spec": {}}', "null", "x", '{"reason": "fuzz"}']) : undefined;
      const headers: Record<string, string> = body !== undefined ? { "content-type": "application/json" } : {};
      const sentId = chance(r, 0.4) ? pick(r, REQUEST_IDS) : undefined;
      if (sentId !== undefined) headers["x-request-id"] = sentId;
      const input = `${method} ${path}${body !== undefined ? ` body=${body}` : ""}${sentId !== undefined ? ` X-Request-Id: ${sentId}` : ""}`;
      const ans = await exchange(problems, i, method, path, { body, headers }, input);
      if (!ans) continue;
      // docs/operations.md: every response carries X-Request-Id; a sane one sent (1..128 of [A-Za-z0-9._:/+=@-]) is kept, else a UUID is made.
      const sane = sentId !== undefined && /^[A-Za-z0-9._:/+=@-]{1,128}$/.test(sentId);
      const idOk = ans.requestId !== null && (sane ? ans.requestId === sentId : /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(ans.requestId));
      if (!idOk) problems.add(i, `X-Request-Id answered ${JSON.stringify(ans.requestId)}`, input);
      const routed = routeExists(method, template);
      if (!routed && !(ans.status === 404 || (template === "/ws/tasks" && ans.status === 426))) {
        problems.add(i, `no such route, expected 404 NotFound, got ${ans.status} ${preview(ans.text, 200)}`, input);
      }
      if (routed && ans.status === 404 && ans.json?.error === "NotFound") problems.add(i, `an existing route answered NotFound`, input);
      if (method === "DELETE" && template === "/api/v1/tasks/{id}" && ans.status === 204) {
        known.delete(id);
        const gone = await exchange(problems, i, "GET", `/api/v1/tasks/${id}`);
        if (gone && gone.status !== 404) problems.add(i, `deleted task still answers ${gone.status}`, input);
      }
      if (ans.status >= 200 && ans.status < 300 && ans.type.startsWith("application/json") && ans.json === undefined && method !== "HEAD") {
        problems.add(i, `${ans.status} with a JSON content type and a body that does not parse: ${preview(ans.text, 200)}`, input);
      }
    }
    expect(problems.list).toEqual([]);
  });

  test(`${BURSTS} bursts of concurrent operations on the same tasks`, async () => {
    const r = mulberry32(SEED ^ 0x5);
    const problems = new Problems("bursts", SEED);
    for (let b = 0; b < BURSTS; b++) {
      const slot = `burst-${b}`;
      const ids: string[] = [];
      for (let k = 1 + int(r, 3); k > 0; k--) {
        const text = JSON.stringify({ spec: burstSpec(r, slot) });
        const ans = await exchange(problems, b, "POST", "/api/v1/tasks", { body: text, headers: JSON_TYPE }, text);
        if (ans?.status === 201 && (await remember(problems, b, ans.json?.task_id, text))) ids.push(ans.json.task_id);
      }
      if (ids.length === 0) continue;
      const ops = Array.from({ length: 4 + int(r, 9) }, () => burstOp(r, ids, slot));
      const input = ops.map((o) => `${o.method} ${o.path}`).join(" | ");
      const answers = await Promise.all(ops.map((o) => exchange(problems, b, o.method, o.path, o.init, `${o.method} ${o.path} in burst [${input}]`)));
      const deleted = new Set<string>();
      for (const [k, o] of ops.entries()) {
        const ans = answers[k];
        if (!ans) continue;
        if (o.id !== undefined && ans.status === 404 && ans.json?.error !== "TaskNotFound") problems.add(b, `${o.method} ${o.path}: 404 labelled ${ans.json?.error}`, input);
        if (o.method === "DELETE" && ans.status === 204) deleted.add(o.id!);
        if (o.submit && (ans.status === 201 || ans.status === 200)) await remember(problems, b, submittedId(ans), `${o.method} ${o.path} in burst [${input}]`);
      }
      // Once a DELETE has answered 204 the task is gone for good, whatever ran next to it; every other task is still there.
      for (const id of ids) {
        const ans = await exchange(problems, b, "GET", `/api/v1/tasks/${id}`);
        if (!ans) continue;
        if (deleted.has(id)) {
          known.delete(id);
          if (ans.status !== 404) problems.add(b, `task ${id} answers ${ans.status} after a DELETE answered 204: ${preview(ans.text, 200)}`, input);
        } else if (ans.status !== 200) problems.add(b, `task ${id} lost (${ans.status}) without a DELETE`, input);
      }
    }
    expect(problems.list).toEqual([]);
  });

  test("afterwards: healthy, every accepted task still there, nothing else", async () => {
    const problems = new Problems("after", SEED);
    for (const path of ["/healthz", "/readyz"]) {
      const ans = await exchange(problems, 0, "GET", path);
      if (ans && ans.status !== 200) problems.add(0, `${path} answered ${ans.status}`, path);
    }
    let n = 0;
    for (const id of known.keys()) {
      const ans = await exchange(problems, n++, "GET", `/api/v1/tasks/${id}`);
      if (ans && (ans.status !== 200 || ans.json?.task?.metadata?.id !== id)) problems.add(n, `accepted task lost: ${ans.status} ${preview(ans.text, 200)}`, id);
    }
    const list = await exchange(problems, 0, "GET", "/api/v1/tasks?limit=1");
    if (list && list.json?.total !== known.size) problems.add(0, `the agent holds ${list.json?.total} tasks, the run created ${known.size}`, "GET /api/v1/tasks?limit=1");
    expect(problems.list).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Submit: one case

interface SubmitCase {
  query: string;
  body: string | Uint8Array;
  headers: Record<string, string>;
  /** Why the contract rejects it (a 400), when it does without doubt. */
  why?: string;
  /** Substrings the 400's message must hold one of (CONTRACT §1: the message names the field). */
  names?: string[];
  /** A valid spec sent as it should be: it must be accepted. */
  valid: boolean;
  /** What was sent, for the failure message. */
  input: string;
}

const CONTENT_TYPES_BAD = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "(none)"];
const CONTENT_TYPES_OK = ["application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8", "application/problem+json"];
const SUBMIT_QUERIES_BAD = ["?wiat=true", "?wait=maybe", "?wait=true&wait=true", "?wait=true&timeoutMs=-1", "?wait=1&timeoutMs=600001", "?wait=true&timeoutMs=abc", "?wait=true&timeoutMs=1e2", "?wait=true&timeoutMs=5&timeoutMs=6", "?WAIT=true"];

/** A valid spec, mutated 0..4 times, sent as JSON (or not), with some content type and query. */
function submitCase(r: Rand): SubmitCase {
  const proto = chance(r, 0.2);
  let root: unknown = { spec: proto ? protoSpec(r) : domainSpec(r) };
  const validText = encode(root);

  // How many mutations: none for a share of the cases (must be accepted), one for most (oracles apply), a few otherwise.
  const count = chance(r, 0.08) ? 0 : chance(r, 0.7) ? 1 : 2 + int(r, 3);
  const applied: Mutated[] = [];
  for (let m = 0; m < count; m++) {
    let result: Mutated | undefined;
    for (let t = 0; t < 5 && result === undefined; t++) result = pick(r, MUTATIONS)(r, root);
    if (result) {
      root = result.root;
      applied.push(result);
    }
  }

  let body: string | Uint8Array = encode(root);
  const parsed: unknown = JSON.parse(body);
  let why: string | undefined;
  let names: string[] | undefined;
  if (applied.length === 1) {
    const only = applied[0]!;
    const domain = !proto && surelyDomainShaped(body, parsed);
    if (only.rejects && (only.bothShapes || domain)) why = only.rejects;
    if (only.rejects && domain) names = only.names;
  }
  const notObject = chance(r, 0.07);
  if (notObject) {
    body = notAnObject(r, validText);
    why = "not a JSON object";
    names = undefined;
  }
  // RFC 8259 §8.1: a parser MAY ignore a leading byte order mark, so either answer is right.
  const bom = !notObject && chance(r, 0.02);
  if (bom) body = `\ufeff${body}`;

  const headers: Record<string, string> = {};
  const ctRoll = r();
  if (ctRoll < 0.06) {
    const ct = pick(r, CONTENT_TYPES_BAD);
    if (ct !== "(none)") headers["content-type"] = ct;
    else body = typeof body === "string" ? new TextEncoder().encode(body) : body; // bytes: fetch adds no content type
    if (body.length > 0) {
      why = `content type ${ct}`;
      names = undefined;
    }
  } else {
    headers["content-type"] = ctRoll < 0.1 ? pick(r, CONTENT_TYPES_OK) : "application/json";
  }

  let query = "";
  const qRoll = r();
  if (qRoll < 0.08) query = `?wait=${pick(r, ["true", "1"])}&timeoutMs=${pick(r, ["0", "5", "20", "0050"])}`;
  else if (qRoll < 0.12) {
    query = pick(r, SUBMIT_QUERIES_BAD);
    why ??= `query ${query}`;
    names = undefined;
  }

  // Resource limits are refused on a host that cannot enforce them: such a spec is valid only where it can.
  const hostDependent = isPlainObject(parsed) && isPlainObject(parsed.spec) && "resources" in parsed.spec;
  const shown = typeof body === "string" ? body : `bytes ${Buffer.from(body).toString("hex")}`;
  const input = `POST /api/v1/tasks${query} [${applied.map((m) => m.what).join("; ") || "valid"}${notObject ? "; not an object" : ""}${bom ? "; BOM" : ""}] content-type=${headers["content-type"] ?? "(none)"} body=${shown}`;
  return {
    query,
    body,
    headers,
    why,
    names,
    valid: count === 0 && !notObject && !bom && !hostDependent && why === undefined,
    input,
  };
}

// ---------------------------------------------------------------------------
// Findings F1–F3 of this fuzzing, fixed: each case of them once more

/**
 * F1: a string holding an unpaired UTF-16 surrogate (JSON `"\ud800"`) has no
 * UTF-8 form. It used to be accepted and kept as is in the task's JSON while
 * the SQLite label index, gRPC and the process saw U+FFFD: `label=k=<U+FFFD>`
 * listed a task whose label was not U+FFFD. Such a label value, arg, env value
 * or command is now a 400 naming the field, and nothing is stored.
 */
test("F1: a string with an unpaired surrogate is refused, naming the field", async () => {
  await using b = await startAgent({ persistent: true }); // the SQLite store: its label index is where the value turned into U+FFFD
  const r = mulberry32(SEED ^ 0x6);
  const command = (c: string, args: string[] = [], env: { key: string; value: string }[] = []) => ({ subprocess: { mode: { command: { command: c, args } }, env } });
  const places: [string, (v: string) => Record<string, unknown>][] = [
    ["spec.labels.k", (v) => ({ kind: command("/bin/true"), labels: { k: v } })],
    ["spec.kind.subprocess.mode.command.args[1]", (v) => ({ kind: command("/bin/echo", ["a", v]) })],
    ["spec.kind.subprocess.mode.command.command", (v) => ({ kind: command(`/bin/${v}`) })],
    ["spec.kind.subprocess.env[0].value", (v) => ({ kind: command("/bin/true", [], [{ key: "K", value: v }]) })],
    ["spec.kind.subprocess.env[0].key", (v) => ({ kind: command("/bin/true", [], [{ key: v, value: "x" }]) })],
    ["spec.kind.subprocess.cwd", (v) => ({ kind: { subprocess: { ...command("/bin/true").subprocess, cwd: `/tmp/${v}` } } })],
  ];
  for (let i = 0; i < 20; i++) {
    const value = `${pick(r, ["", "a", "é", "🙂"])}${pick(r, ["\ud800", "\udbff", "\udc00", "\udfff"])}${pick(r, ["", "b", "x".repeat(10)])}`;
    const [field, make] = pick(r, places);
    const spec = { slot: "f1", hold: true, ...make(value) };
    const res = await fetch(`${b.url}/api/v1/tasks`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ spec }) });
    const body = (await res.json()) as { error?: string; message?: string };
    expect({ seed: SEED, case: i, status: res.status, error: body.error, names: body.message?.startsWith(`${field}: must be valid Unicode`) }).toEqual({
      seed: SEED,
      case: i,
      status: 400,
      error: "InvalidRequest",
      names: true,
    });
  }
  const page = (await (await fetch(`${b.url}/api/v1/tasks?slot=f1`)).json()) as { total: number };
  expect(page.total).toBe(0);
});

/**
 * F2: an unknown key of the body itself (next to "spec") was shown in the
 * message raw and whole: a 100 000-character key gave a 100 000-character
 * message, a NUL or line break went in as is. It is now quoted when it is not
 * an identifier and cut after 80 characters, like every other field name.
 */
test("F2: an unknown top-level key is named escaped and cut in the message, like any other", async () => {
  await using b = await startAgent();
  const r = mulberry32(SEED ^ 0x7);
  for (let i = 0; i < 20; i++) {
    const key = `${pick(r, ["", "a", "é"])}${pick(r, ["\n", "\u0000", "\r\nX-Injected: 1", " ", '"', "k".repeat(1000), "z".repeat(100_000)])}${pick(r, ["", "b"])}`;
    const res = await fetch(`${b.url}/api/v1/tasks`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ spec: {}, [key]: 1 }) });
    const { message } = (await res.json()) as { message: string };
    expect({ seed: SEED, case: i, status: res.status }).toEqual({ seed: SEED, case: i, status: 400 });
    const escaped = JSON.stringify(key.slice(0, 80)).slice(1, -1);
    expect({ seed: SEED, case: i, escaped: message.includes(escaped), short: message.length < 300 }).toEqual({ seed: SEED, case: i, escaped: true, short: true });
  }
});

/**
 * F3: a proto3-JSON body whose value cannot be decoded got the decoder's
 * error text whole in the message: a 100 000-character `timeoutMs` string
 * came back in full, NUL and line breaks included. The decoder's text is now
 * one line, cut like any other text from elsewhere.
 */
test("F3: a proto3-JSON decoding error shows the bad value cut, like a domain-shaped one", async () => {
  await using b = await startAgent();
  const r = mulberry32(SEED ^ 0x8);
  for (let i = 0; i < 20; i++) {
    const value = `${pick(r, ["", "1", "é"])}${pick(r, ["\u0000", "\n", "x"])}${"y".repeat(pick(r, [100, 5000, 100_000]))}`;
    const field = pick(r, ["timeoutMs", "restart", "admission"]);
    const spec = { slot: "f3", kind: { subprocess: { command: { command: "/bin/true" } } }, timeoutMs: "1000", hold: true, [field]: value };
    const res = await fetch(`${b.url}/api/v1/tasks`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ spec }) });
    const { message } = (await res.json()) as { message: string };
    expect({ seed: SEED, case: i, status: res.status, short: message.length < 300, control: /[\u0000-\u001f]/.test(message) }).toEqual({ seed: SEED, case: i, status: 400, short: true, control: false });
  }
});

// ---------------------------------------------------------------------------
// Submit: round trip

const ADMISSION_OUTCOMES = ["started", "queued", "replaced", "dropped"] as const;
const JSON_TYPE = { "content-type": "application/json" };

/** The task id of a successful submit: 201 `{task_id}`, or 200 `{task: …}` of submit-and-wait. */
const submittedId = (ans: Answer): unknown => (ans.status === 201 ? ans.json?.task_id : ans.json?.task?.metadata?.id);

/** The spec the agent stored, submitted again (held), is accepted and stored unchanged. */
async function roundTrip(problems: Problems, caseNo: number, task: Json, input: string): Promise<void> {
  const spec = { ...task.spec, hold: true };
  const text = JSON.stringify({ spec });
  const ans = await exchange(problems, caseNo, "POST", "/api/v1/tasks", { body: text, headers: { "content-type": "application/json" } }, `round trip of ${input}`);
  if (!ans) return;
  if (ans.status !== 201) {
    problems.add(caseNo, `the stored spec, submitted again, was refused: ${ans.status} ${preview(ans.text, 300)}`, text);
    return;
  }
  const again = await remember(problems, caseNo, ans.json?.task_id, text);
  if (again && encode(sortKeys(again.spec)) !== encode(sortKeys(spec))) {
    problems.add(caseNo, `the stored spec changed on a second submit: ${preview(JSON.stringify(again.spec), 300)}`, text);
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isPlainObject(v)) {
    const out: Json = {};
    for (const k of Object.keys(v).sort()) put(out, k, sortKeys(v[k]));
    return out;
  }
  return v;
}

// ---------------------------------------------------------------------------
// List: generator, model of the contract's rules, page checks

const LIST_KEYS = new Set(["slot", "status", "label", "owner", "createdAfter", "createdBefore", "order", "limit", "offset"]);

/** A numeric parameter value: mostly in range, sometimes one of the classic bad ones. */
function numberParam(r: Rand, max: number): string {
  if (chance(r, 0.65)) return pick(r, ["1", "7", "100", "0010", String(max), "1000", "0"]);
  return pick(r, ["", "-1", "1.5", "1e3", "0x10", " 1", "+1", "１", "NaN", "Infinity", "99999999999999999999", "9007199254740992", "1001", "1 000"]);
}

function paramValue(r: Rand, key: string): string {
  switch (key) {
    case "slot":
      // Short enough that the URL stays under the server's 16 KiB request-line limit (docs/api.md: a bare 431 beyond it).
      return chance(r, 0.7) ? pick(r, SLOTS) : pick(r, ODD_STRINGS.filter((s) => s.isWellFormed() && s.length <= 1000));
    case "status":
      return chance(r, 0.8) ? pick(r, PHASES) : pick(r, ["", "Pending", "bad", "succeeded ", "TASK_STATUS_PENDING"]);
    case "label":
      if (chance(r, 0.8)) return `${pick(r, ["fuzz", "team", "app.kubernetes.io/name", "z", "k1"])}=${pick(r, LABEL_VALUES.filter((s) => s.length < 50))}`;
      return pick(r, ["", "=v", "k", "k==", "=", "é=é"]);
    case "owner":
      return pick(r, ["alice", "", "é"]);
    case "order":
      return chance(r, 0.8) ? pick(r, ["asc", "desc"]) : pick(r, ["ASC", "up", "", "desc "]);
    case "limit":
      return chance(r, 0.7) ? pick(r, ["1", "5", "100", "1000", "0001"]) : numberParam(r, 1000);
    case "offset":
      return chance(r, 0.7) ? pick(r, ["0", "1", "3", "50"]) : numberParam(r, MAX_SAFE);
    default:
      return chance(r, 0.7) ? String(pick(r, [0, 1, 1_700_000_000_000, 4_102_444_800_000, MAX_SAFE])) : numberParam(r, MAX_SAFE);
  }
}

/** Percent-encode a query component in one of several spellings that all decode to the same text. */
function encodeComponent(r: Rand, s: string): string {
  switch (int(r, 4)) {
    case 0: // form style: spaces as "+"
      return encodeURIComponent(s).replace(/%20/g, "+");
    case 1: // every byte escaped, hex case mixed
      return [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, "0")}`).map((e) => (chance(r, 0.5) ? e.toUpperCase() : e)).join("");
    default:
      return encodeURIComponent(s);
  }
}

function listQuery(r: Rand): { qs: string; findable?: Known } {
  // A share of the queries look for a task the run created, by its slot and/or labels: it must be on the page.
  if (chance(r, 0.15) && known.size > 0) {
    const t = pick(r, [...known.values()]);
    const parts: string[] = ["limit=1000"];
    const bySlot = chance(r, 0.5);
    if (bySlot) parts.push(`slot=${encodeComponent(r, t.slot)}`);
    for (const [k, v] of Object.entries(t.labels)) if (chance(r, 0.6) && v.isWellFormed()) parts.push(`label=${encodeComponent(r, `${k}=${v}`)}`);
    if (chance(r, 0.5)) parts.push(`order=${pick(r, ["asc", "desc"])}`);
    if (chance(r, 0.3)) parts.push(`createdAfter=${t.createdAt - 1}&createdBefore=${t.createdAt + 1}`);
    return { qs: `?${parts.join("&")}`, findable: t };
  }
  const parts: string[] = [];
  const n = int(r, 6);
  for (let p = 0; p < n; p++) {
    const key = chance(r, 0.9) ? pick(r, [...LIST_KEYS]) : pick(r, ["slots", "Limit", "q", "", "label[]", "status ", "ordr", "__proto__"]);
    const value = paramValue(r, key);
    const roll = r();
    if (roll < 0.05) parts.push(encodeComponent(r, key)); // a bare key: value ""
    else if (roll < 0.12) parts.push(`${encodeComponent(r, key)}=${pick(r, ["%", "%zz", "%e9", "%00", "%C3", "a%2", "%%"])}`);
    else parts.push(`${encodeComponent(r, key)}=${encodeComponent(r, value)}`);
    if (chance(r, 0.1)) parts.push(parts[parts.length - 1]!); // the same parameter twice
  }
  const sep = chance(r, 0.1) ? "&&" : "&";
  return { qs: parts.length > 0 || chance(r, 0.5) ? `?${parts.join(sep)}${chance(r, 0.05) ? "&" : ""}` : "" };
}

const DIGITS = /^\d+$/;

/** Filters for paging (no status: a running task may change phase between two pages). */
function pagingFilter(r: Rand): string {
  let q = "";
  if (chance(r, 0.4)) q += `&slot=${pick(r, SLOTS)}`;
  if (chance(r, 0.5)) q += "&label=fuzz=yes";
  if (chance(r, 0.3)) q += `&label=team=${pick(r, ["edge", "core"])}`;
  if (chance(r, 0.5)) q += "&order=desc";
  const times = [...known.values()].map((t) => t.createdAt);
  if (times.length > 0 && chance(r, 0.3)) q += `&createdAfter=${pick(r, times)}`;
  if (times.length > 0 && chance(r, 0.3)) q += `&createdBefore=${pick(r, times)}`;
  return q;
}

/** CONTRACT §2 list parameters, as the decoded query reads: valid or not, and why. */
function listVerdict(params: URLSearchParams): { ok: boolean; why?: string } {
  const count = new Map<string, number>();
  for (const k of params.keys()) count.set(k, (count.get(k) ?? 0) + 1);
  for (const [k, n] of count) {
    if (!LIST_KEYS.has(k)) return { ok: false, why: `unknown parameter ${JSON.stringify(k)}` };
    if (k !== "label" && n > 1) return { ok: false, why: `${k} given twice` };
  }
  const intIn = (k: string, min: number, max: number) => {
    const v = params.get(k);
    return v === null || (DIGITS.test(v) && Number(v) >= min && Number(v) <= max);
  };
  if (!intIn("limit", 1, 1000)) return { ok: false, why: "limit" };
  for (const k of ["offset", "createdAfter", "createdBefore"]) if (!intIn(k, 0, MAX_SAFE)) return { ok: false, why: k };
  const status = params.get("status");
  if (status !== null && !(PHASES as readonly string[]).includes(status)) return { ok: false, why: "status" };
  const order = params.get("order");
  if (order !== null && order !== "asc" && order !== "desc") return { ok: false, why: "order" };
  // An empty value matches nothing and is refused (docs/api.md); only a resume cursor may be empty.
  for (const k of ["slot", "owner"]) if (params.get(k) === "") return { ok: false, why: `empty ${k}` };
  const labels = new Map<string, string>();
  for (const l of params.getAll("label")) {
    const eq = l.indexOf("=");
    if (eq <= 0) return { ok: false, why: `label ${JSON.stringify(l)}` };
    const [k, v] = [l.slice(0, eq), l.slice(eq + 1)];
    if (labels.has(k) && labels.get(k) !== v) return { ok: false, why: `label ${k} with two values` };
    labels.set(k, v);
  }
  if (labels.size > 64) return { ok: false, why: "more than 64 label filters" };
  return { ok: true };
}

/** CONTRACT §2 `/api/v1/events` (docs/api.md: `after slot label`): "ok", "bad" or "either" when the contract leaves it open. */
function eventsVerdict(params: URLSearchParams, lastEventId: string | undefined): "ok" | "bad" | "either" {
  const seen = new Set<string>();
  for (const k of params.keys()) {
    if (!["after", "slot", "label"].includes(k)) return "bad";
    if (seen.has(k) && k !== "label") return "bad";
    seen.add(k);
  }
  if (params.get("slot") === "") return "bad";
  const labels = new Map<string, string>();
  for (const l of params.getAll("label")) {
    const eq = l.indexOf("=");
    if (eq <= 0) return "bad";
    const [k, v] = [l.slice(0, eq), l.slice(eq + 1)];
    if (labels.has(k) && labels.get(k) !== v) return "bad";
    labels.set(k, v);
  }
  const after = params.get("after");
  if (after !== null && after !== "" && !DIGITS.test(after)) return "bad";
  const headerBad = lastEventId !== undefined && lastEventId !== "" && !DIGITS.test(lastEventId);
  // The header counts when ?after is absent or empty; with both, the contract does not say which wins.
  if (headerBad) return after === null || after === "" ? "bad" : "either";
  return "ok";
}

/** A 200 list page: its shape, and every task on it matches the filters, in order. */
function pageProblem(body: any, params: URLSearchParams, findable: Known | undefined): string | undefined {
  if (!isPlainObject(body) || !Array.isArray(body.tasks) || !Number.isInteger(body.total)) return `list answer has no tasks/total: ${preview(JSON.stringify(body), 200)}`;
  const tasks = body.tasks as Json[];
  const limit = Number(params.get("limit") ?? 100);
  const offset = Number(params.get("offset") ?? 0);
  if (tasks.length > limit) return `${tasks.length} tasks on a page of ${limit}`;
  if (tasks.length > 0 && body.total < offset + tasks.length) return `total ${body.total} < offset ${offset} + page ${tasks.length}`;
  const slot = params.get("slot");
  const status = params.get("status");
  const after = params.get("createdAfter");
  const before = params.get("createdBefore");
  const labels = params.getAll("label").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const);
  const desc = params.get("order") === "desc";
  let prev: Json | undefined;
  for (const t of tasks) {
    const id = t?.metadata?.id;
    if (slot !== null && t.spec.slot !== slot) return `${id}: slot ${t.spec.slot} on a page for slot ${JSON.stringify(slot)}`;
    if (status !== null && t.status.phase !== status) return `${id}: phase ${t.status.phase} on a page for ${status}`;
    if (after !== null && !(t.metadata.createdAt > Number(after))) return `${id}: createdAt ${t.metadata.createdAt} not after ${after}`;
    if (before !== null && !(t.metadata.createdAt < Number(before))) return `${id}: createdAt ${t.metadata.createdAt} not before ${before}`;
    for (const [k, v] of labels) if (!Object.hasOwn(t.spec.labels, k) || t.spec.labels[k] !== v) return `${id}: lacks label ${k}=${JSON.stringify(v)}`;
    if (prev) {
      const cmp = prev.metadata.createdAt - t.metadata.createdAt || (prev.metadata.id < id ? -1 : prev.metadata.id > id ? 1 : 0);
      if (desc ? cmp < 0 : cmp > 0) return `page out of ${desc ? "descending" : "ascending"} order at ${id}`;
    }
    prev = t;
  }
  if (findable && known.has(findable.id) && !tasks.some((t) => t.metadata.id === findable.id)) {
    return `task ${findable.id} (slot ${findable.slot}, labels ${JSON.stringify(findable.labels)}) missing from a page that should hold it (total ${body.total})`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Task routes: ids, queries, answers

function unknownId(r: Rand): string {
  return `tsk_${Array.from({ length: 26 }, () => pick(r, [...CROCKFORD])).join("")}`;
}

/** A path segment for the id: a known id (plain or oddly encoded), an unknown one, or junk. */
function taskIdSegment(r: Rand, ids: readonly string[]): { raw: string; knownId: boolean } {
  const roll = r();
  if (roll < 0.5) {
    const id = pick(r, ids);
    if (chance(r, 0.7)) return { raw: id, knownId: true };
    const enc = [...Buffer.from(id)].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
    return { raw: chance(r, 0.5) ? enc : enc.toUpperCase(), knownId: true };
  }
  if (roll < 0.65) return { raw: unknownId(r), knownId: false };
  const junk = [
    "%2e%2e", "%2F", "a%2Fb", "%00", "%ff", "%e9", "%C3%A9", "%zz", "%", "%%", "tsk_", "x".repeat(2000), "%20", "+", "~", ";", "a;b=c", "null",
    "undefined", "__proto__", "constructor", "hasOwnProperty", "0", "-1", "%F0%9F%99%82", "%ED%A0%80", "%C0%AF", "tsk_01%00", "*", "'", "%27%20OR%201%3D1",
  ];
  const pickJunk = pick(r, junk);
  if (chance(r, 0.15)) {
    const id = pick(r, ids);
    return { raw: pick(r, [id.toLowerCase(), `${id} `.replace(" ", "%20"), `${id}x`, id.slice(0, -1), `%20${id}`]), knownId: false };
  }
  return { raw: pickJunk, knownId: false };
}

/**
 * A query (and Last-Event-ID header) for a task route, and what the contract
 * makes of it: "ok", "bad" (400) or "either" (the contract does not settle it).
 */
function routeQuery(r: Rand, suffix: string, knownId: boolean): { query: string; verdict: "ok" | "bad" | "either"; headers: Record<string, string>; follow?: boolean } {
  const headers: Record<string, string> = {};
  if (suffix === "/logs") {
    const parts: [string, string][] = [];
    let verdict: "ok" | "bad" | "either" = "ok";
    let follow: boolean | undefined = true;
    const afterRaw = chance(r, 0.4) ? pick(r, ["0", "1", "5", "000", "99999999999999999999", "", "-1", "abc", "1.5", "1e3", " 1"]) : undefined;
    if (afterRaw !== undefined) parts.push(["after", afterRaw]);
    const followRaw = chance(r, 0.7) ? pick(r, ["false", "0", "false", "true", "1", "", "yes", "FALSE", "no"]) : undefined;
    if (followRaw !== undefined) parts.push(["follow", followRaw]);
    if (followRaw === "false" || followRaw === "0") follow = false;
    else if (followRaw !== undefined && !["true", "1"].includes(followRaw)) verdict = "bad"; // "" too: only a cursor may be empty
    const afterOk = afterRaw === undefined || afterRaw === "" || DIGITS.test(afterRaw);
    if (!afterOk) verdict = "bad";
    if (chance(r, 0.2)) {
      const h = pick(r, ["", "3", "abc", "-1", "1".repeat(30), "1 2"]);
      headers["last-event-id"] = h;
      const hOk = h === "" || DIGITS.test(h);
      // The header counts only when ?after is absent or empty; with both, the contract does not say which wins.
      if (!hOk && verdict === "ok") verdict = afterRaw === undefined || afterRaw === "" ? "bad" : "either";
    }
    if (chance(r, 0.1)) {
      parts.push([pick(r, ["folow", "After", "x"]), "1"]);
      verdict = "bad";
    }
    if (chance(r, 0.08) && parts.length > 0) {
      parts.push(parts[0]!);
      verdict = "bad";
    }
    const query = parts.length > 0 ? `?${parts.map(([k, v]) => `${k}=${encodeComponent(r, v)}`).join("&")}` : "";
    return { query, verdict, headers, follow };
  }
  if (suffix === "/wait") {
    // A known task may be pending for good: never the 30 s default, only small or invalid timeouts.
    const good = ["0", "1", "3", "0005", "10"];
    const bad = ["-1", "abc", "1.5", "1e3", "600001", "99999999999999999999", " 5", "+5", ""];
    const parts: [string, string][] = [];
    let verdict: "ok" | "bad" = "ok";
    if (!knownId && chance(r, 0.2)) {
      // No timeoutMs (the 30 s default): fine for an unknown id, which answers at once.
    } else if (chance(r, 0.7)) parts.push(["timeoutMs", pick(r, good)]);
    else {
      parts.push(["timeoutMs", pick(r, bad)]);
      verdict = "bad";
    }
    if (chance(r, 0.1)) {
      parts.push([pick(r, ["timeout", "TimeoutMs", "wait"]), "5"]);
      verdict = "bad";
    }
    if (chance(r, 0.08) && parts.length > 0) {
      parts.push(["timeoutMs", "7"]);
      verdict = "bad";
    }
    if (parts.length === 0 && knownId) parts.push(["timeoutMs", "1"]);
    const query = parts.length > 0 ? `?${parts.map(([k, v]) => `${k}=${encodeComponent(r, v)}`).join("&")}` : "";
    return { query, verdict, headers };
  }
  return { query: "", verdict: "ok", headers };
}

/** Percent-decode a path segment; undefined when it is not valid percent-encoding of UTF-8. */
function decodeSegment(seg: string): string | undefined {
  try {
    return decodeURIComponent(seg);
  } catch {
    return undefined;
  }
}

function routeBodyProblem(suffix: string, ans: Answer, id: string): string | undefined {
  switch (suffix) {
    case "":
    case "/wait":
      return ans.json?.task?.metadata?.id === id ? undefined : `200 without the task ${id}: ${preview(ans.text, 200)}`;
    case "/runs":
      return Array.isArray(ans.json?.runs) ? undefined : `200 without runs: ${preview(ans.text, 200)}`;
    default: {
      if (!ans.type.startsWith("text/event-stream")) return `logs answered ${JSON.stringify(ans.type)}`;
      for (const line of ans.text.split("\n")) {
        if (line.startsWith("data:")) {
          try {
            JSON.parse(line.slice(5));
          } catch {
            return `SSE data line is not JSON: ${preview(line, 200)}`;
          }
        }
        if (line.startsWith("id:") && !DIGITS.test(line.slice(3).trim())) return `SSE id is not a number: ${preview(line, 100)}`;
      }
      return undefined;
    }
  }
}

// ---------------------------------------------------------------------------
// Bursts: concurrent operations on the tasks of one slot

/** A spec for a burst: held, or a command that ends at once or within 20 ms. */
function burstSpec(r: Rand, slot: string): Json {
  const command = pick(r, [{ command: "/bin/true" }, { command: "/bin/echo", args: ["burst"] }, { command: "/bin/sleep", args: ["0.02"] }]);
  const spec: Json = { slot, kind: { subprocess: { mode: { command } } }, admission: pick(r, ADMISSIONS), killGraceMs: 100 };
  if (chance(r, 0.4)) spec.hold = true;
  return spec;
}

interface BurstOp {
  method: string;
  path: string;
  init: { body?: string; headers?: Record<string, string>; readStream?: boolean };
  id?: string;
  submit?: boolean;
}

function burstOp(r: Rand, ids: readonly string[], slot: string): BurstOp {
  const id = pick(r, ids);
  const base = `/api/v1/tasks/${id}`;
  switch (int(r, 10)) {
    case 0:
      return { method: "GET", path: base, init: {}, id };
    case 1:
      return { method: "GET", path: `${base}/runs`, init: {}, id };
    case 2:
      return { method: "GET", path: `${base}/wait?timeoutMs=${pick(r, ["0", "5", "20"])}`, init: {}, id };
    case 3:
      return { method: "GET", path: `${base}/logs?follow=false`, init: { readStream: true }, id };
    case 4:
      return { method: "POST", path: `${base}/cancel`, init: {}, id };
    case 5:
      return { method: "POST", path: `${base}/start`, init: {}, id };
    case 6:
      return { method: "POST", path: `${base}/restart`, init: {}, id };
    case 7:
      return { method: "DELETE", path: base, init: {}, id };
    default: {
      const wait = chance(r, 0.3) ? "?wait=true&timeoutMs=20" : "";
      return { method: "POST", path: `/api/v1/tasks${wait}`, init: { body: JSON.stringify({ spec: burstSpec(r, slot) }), headers: JSON_TYPE }, submit: true };
    }
  }
}

// ---------------------------------------------------------------------------
// Methods: which (method, path) pairs are routes

/** X-Request-Id values: kept when sane, else replaced (fetch refuses line breaks and NUL in a header). */
const REQUEST_IDS = ["abc", "a".repeat(128), "a".repeat(129), "x:y/z+=@-._", "", " ", "a b", "a,b", "<x>", "%41", "\u00e9t\u00e9", "12345678-1234-1234-1234-1234567890ab", "'; --", "a\tb"];

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "patch"] as const;
const PATHS = [
  "/api/v1/tasks",
  "/api/v1/tasks/{id}",
  "/api/v1/tasks/{id}/runs",
  "/api/v1/tasks/{id}/logs",
  "/api/v1/tasks/{id}/cancel",
  "/api/v1/tasks/{id}/start",
  "/api/v1/tasks/{id}/restart",
  "/api/v1/tasks/{id}/wait",
  "/api/v1/events",
  "/ws/tasks",
  "/api/v1/info",
  "/api/v1/metrics",
  "/metrics",
  "/healthz",
  "/readyz",
  "/openapi.json",
  "/api/v1",
  "/api/v1/tasks/{id}/nope",
  "/api/v2/tasks",
] as const;

/** CONTRACT §2: the methods each path answers (HEAD with GET). */
const ROUTES: Readonly<Record<string, readonly string[]>> = {
  "/api/v1/tasks": ["GET", "POST"],
  "/api/v1/tasks/{id}": ["GET", "DELETE"],
  "/api/v1/tasks/{id}/runs": ["GET"],
  "/api/v1/tasks/{id}/logs": ["GET"],
  "/api/v1/tasks/{id}/cancel": ["POST"],
  "/api/v1/tasks/{id}/start": ["POST"],
  "/api/v1/tasks/{id}/restart": ["POST"],
  "/api/v1/tasks/{id}/wait": ["GET"],
  "/api/v1/events": ["GET"],
  "/ws/tasks": [],
  "/api/v1/info": ["GET"],
  "/api/v1/metrics": ["GET"],
  "/metrics": ["GET"],
  "/healthz": ["GET"],
  "/readyz": ["GET"],
  "/openapi.json": ["GET"],
};

function routeExists(method: string, template: string): boolean {
  const methods = ROUTES[template] ?? [];
  const m = method.toUpperCase();
  return methods.includes(m) || (m === "HEAD" && methods.includes("GET"));
}
