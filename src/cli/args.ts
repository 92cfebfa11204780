/**
 * Flag parsing for client commands: declarative flag specs, GNU-style
 * `--name value` / `--name=value`, repeatable flags, `--` ending the flags.
 * Mistakes become usage errors (exit 2) whose message names the flag.
 */
import { usage } from "./cli-error.ts";

/** `boolean`: a switch; `string`: one value (last wins); `list`: repeatable, values collected in order. */
export type FlagKind = "boolean" | "string" | "list";

/** One flag a command accepts. */
export interface FlagSpec {
  /** Long name without dashes, e.g. `timeout`. */
  name: string;
  /** One-letter alias without the dash, e.g. `f`. */
  short?: string;
  kind: FlagKind;
  /** Placeholder shown in help, e.g. `DURATION`. */
  value?: string;
  help: string;
  /** Allowed values (checked here, offered by shell completion). */
  choices?: readonly string[];
}

/** Result of parsing one command line. */
export interface ParsedArgs {
  flags: Flags;
  /** Words that are not flags, before `--`. */
  positionals: string[];
  /** Words after `--` (or, with `stopAtPositional`, from the first positional on); `undefined` when there were none. */
  rest: string[] | undefined;
}

/** Typed read access to parsed flag values. */
export class Flags {
  readonly #values: Map<string, string | boolean | string[]>;
  constructor(values: Map<string, string | boolean | string[]>) {
    this.#values = values;
  }
  /** Whether the flag was given at all. */
  has(name: string): boolean {
    return this.#values.has(name);
  }
  string(name: string): string | undefined {
    const v = this.#values.get(name);
    return typeof v === "string" ? v : undefined;
  }
  bool(name: string): boolean {
    return this.#values.get(name) === true;
  }
  list(name: string): string[] {
    const v = this.#values.get(name);
    return Array.isArray(v) ? v : [];
  }
}

function parseBool(flag: string, raw: string): boolean {
  if (["true", "1", "yes"].includes(raw)) return true;
  if (["false", "0", "no"].includes(raw)) return false;
  throw usage(`--${flag}: must be true or false (or yes/no, 1/0), got ${JSON.stringify(raw)}`);
}

/**
 * Parse `argv` against `specs`. With `stopAtPositional`, the first word that
 * is not a flag starts `rest` (so `tasklane run echo -n hi` passes `-n` on).
 */
export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[], opts: { stopAtPositional?: boolean; command?: string } = {}): ParsedArgs {
  const values = new Map<string, string | boolean | string[]>();
  const positionals: string[] = [];
  let rest: string[] | undefined;
  const where = opts.command ? ` for "tasklane ${opts.command}" (see tasklane ${opts.command} --help)` : "";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      rest = argv.slice(i + 1);
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      if (opts.stopAtPositional) {
        rest = argv.slice(i);
        break;
      }
      positionals.push(arg);
      continue;
    }
    const long = arg.startsWith("--");
    const eq = long ? arg.indexOf("=") : -1;
    const name = long ? arg.slice(2, eq >= 0 ? eq : undefined) : arg.slice(1);
    const spec = long ? specs.find((s) => s.name === name) : specs.find((s) => s.short === name);
    if (!spec) throw usage(`unknown flag ${long ? `--${name}` : arg}${where}`);
    const inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (spec.kind === "boolean") {
      values.set(spec.name, inline === undefined ? true : parseBool(spec.name, inline));
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      raw = argv[++i];
      if (raw === undefined) throw usage(`--${spec.name}: missing value${spec.value ? ` (${spec.value})` : ""}`);
    }
    if (spec.choices && !spec.choices.includes(raw)) {
      throw usage(`--${spec.name}: must be one of ${spec.choices.join(", ")}, got ${JSON.stringify(raw)}`);
    }
    if (spec.kind === "list") {
      const prev = values.get(spec.name);
      values.set(spec.name, [...(Array.isArray(prev) ? prev : []), raw]);
    } else values.set(spec.name, raw);
  }
  return { flags: new Flags(values), positionals, rest };
}
