/**
 * The shape of a client command and of what it gets to work with. Commands
 * are plain objects (name, flags, help, `run`) so help text and shell
 * completion are generated from the same definitions that parse the flags.
 */
import type { ApiClient } from "./api-client.ts";
import type { Flags, FlagSpec } from "./args.ts";
import type { Style } from "./format.ts";
import type { Output } from "./output.ts";

/** Everything a command may use; nothing is read from globals. */
export interface CommandContext {
  flags: Flags;
  /** Non-flag words before `--`. */
  positionals: string[];
  /** Words after `--` (or from the first positional on, for `stopAtPositional` commands). */
  rest: string[] | undefined;
  /** `--json`: machine output that parses. */
  json: boolean;
  /** The REST client (created lazily; commands that need no agent never touch it). */
  api(): ApiClient;
  out: Output;
  err: Output;
  /** Colour for stdout. */
  style: Style;
  env: Record<string, string | undefined>;
  /** The CLI's working directory. */
  cwd: string;
  /** Read all of stdin as text. */
  readStdin(): Promise<string>;
  /** Aborted on SIGINT / SIGTERM. */
  signal: AbortSignal;
  /** Exit status for an interrupt: 130 (SIGINT) or 143 (SIGTERM). */
  interruptCode(): number;
  /** All commands (for `help` and `completion`). */
  commands: readonly Command[];
  now(): number;
}

/** One client subcommand. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Arguments after the flags, e.g. `ID [ID…]` or `-- CMD [ARGS…]`. */
  usage: string;
  /** Longer explanation (exit codes, defaults), optional. */
  details?: string;
  flags: readonly FlagSpec[];
  examples: readonly string[];
  /** Flags stop at the first positional word (for `run echo -n hi`). */
  stopAtPositional?: boolean;
  /** What a positional argument is, for shell completion. */
  completes?: "task-id" | "shell" | "command";
  /** Whether `--json` applies. */
  json?: boolean;
  run(ctx: CommandContext): Promise<number>;
}
