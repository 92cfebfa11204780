/**
 * Client commands of the `tasklane` binary (`tasklane <command> …`): parse
 * the global and command flags, run the command against the agent's REST
 * API, and turn failures into `tasklane: <message>` and an exit status
 * (1 API error, 2 usage error, 3 agent unreachable, 130/143 interrupted).
 */
import { bearerTokenProblem } from "../auth/hash-token.ts";
import { parseDuration } from "../config.ts";
import { createApiClient, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_SERVER, type ApiClient } from "./api-client.ts";
import { parseArgs } from "./args.ts";
import { CliError, exitCodeOf, usage } from "./cli-error.ts";
import type { Command, CommandContext } from "./command.ts";
import { COMMANDS } from "./commands.ts";
import { colourWanted, createStyle } from "./format.ts";
import { commandHelp, GLOBAL_FLAGS } from "./help-text.ts";
import { createOutput, type Output } from "./output.ts";

/** Exit status per interrupting signal (128 + signal number, as a shell reports it). */
const INTERRUPT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
type InterruptSignal = keyof typeof INTERRUPT_CODES;

/**
 * Normalize `--server` / TASKLANE_SERVER: a scheme-less `host:port` means http.
 * The result is the parsed URL (origin and path, no trailing slash), so the
 * API paths appended to it land where they should.
 */
export function serverUrl(raw: string, source: string): string {
  const bad = (why: string) => usage(`${source}: ${why}, got ${JSON.stringify(raw)}`);
  if (/[\s\x00-\x1f\x7f]/.test(raw)) throw bad("must not contain spaces or control characters");
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw bad(`must be a URL like ${DEFAULT_SERVER}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw bad("must be an http:// or https:// URL");
  if (url.search !== "" || url.hash !== "") throw bad("must not have a query (?…) or fragment (#…)");
  return (url.origin + url.pathname).replace(/\/+$/, "");
}

/**
 * The bearer token of `--token` / TASKLANE_TOKEN. Surrounding whitespace (a
 * trailing CR or newline from a file) is dropped, as HTTP would; a line break
 * or control character inside cannot be sent in a header, nor a space or a
 * non-ASCII character (`bearerTokenProblem`). Messages never show the token.
 */
export function bearerToken(raw: string | undefined, source: string): string | undefined {
  const token = raw?.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
  if (!token) return undefined;
  const problem = bearerTokenProblem(token);
  if (problem !== undefined) throw usage(`${source}: ${problem} (the token is not shown)`);
  return token;
}

/** TASKLANE_REQUEST_TIMEOUT: how long the agent has to answer an ordinary request (`0`: no limit). */
export function requestTimeout(raw: string | undefined): number {
  if (raw === undefined || raw === "") return DEFAULT_REQUEST_TIMEOUT_MS;
  if (raw === "0") return 0;
  const bad = (why: string) => usage(`TASKLANE_REQUEST_TIMEOUT: ${why}, got ${JSON.stringify(raw)}`);
  if (/^\d+$/.test(raw)) throw bad("needs a unit, e.g. 30s or 2m (0: no limit)");
  const ms = parseDuration(raw);
  if (ms === undefined || ms <= 0) throw bad("must be a duration like 30s or 2m (0: no limit)");
  return ms;
}

function suggest(name: string): string {
  const near = COMMANDS.find((c) => c.name.startsWith(name) || name.startsWith(c.name) || distance(c.name, name) <= 2);
  return near ? `; did you mean "${near.name}"?` : "";
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * What is wrong with a command line that starts with client global flags
 * but names no command, or mixes in a flag that may not come first
 * (`tasklane --json --bogus ls`, `tasklane --server URL`). `route-args.ts`
 * hands such a line to the client with an empty command name.
 */
function leadingFlagsProblem(args: readonly string[]): string {
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    if (!word.startsWith("-")) break;
    const name = word.includes("=") ? word.slice(0, word.indexOf("=")) : word;
    const flag = GLOBAL_FLAGS.find((g) => g.name !== "help" && `--${g.name}` === name);
    if (!flag) return `unknown flag ${JSON.stringify(name)} before the command: only --server, --token and --json may come first (see tasklane help)`;
    if (flag.kind !== "boolean" && !word.includes("=") && ++i >= args.length) return `--${flag.name}: missing value${flag.value ? ` (${flag.value})` : ""}`;
  }
  return "missing command after the global flags (see tasklane help)";
}

/** Everything `execute` needs from the process; `runCli` passes the real one. */
export interface CliIo {
  out: Output;
  err: Output;
  env: Record<string, string | undefined>;
  cwd: string;
  readStdin(): Promise<string>;
  /** Interrupts (SIGINT / SIGTERM) abort this signal. */
  signal: AbortSignal;
  interruptedBy(): InterruptSignal | undefined;
}

/** Run one client command (`name` "": only global flags were given); never throws. */
export async function execute(name: string, args: readonly string[], io: CliIo): Promise<number> {
  try {
    if (name === "") throw usage(leadingFlagsProblem(args));
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) throw usage(`unknown command ${JSON.stringify(name)}${suggest(name)} (see tasklane help)`);
    return await runCommand(cmd, args, io);
  } catch (err) {
    if (io.signal.aborted && !(err instanceof CliError)) return INTERRUPT_CODES[io.interruptedBy() ?? "SIGINT"];
    if (err instanceof CliError) {
      await io.err.line(`tasklane: ${err.message}`);
      return exitCodeOf(err.kind);
    }
    // A bug of the CLI: one line; the stack trace only on request.
    const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const stack = io.env.TASKLANE_DEBUG && err instanceof Error && err.stack ? `\n${err.stack}` : " (TASKLANE_DEBUG=1 shows where)";
    await io.err.line(`tasklane: internal error: ${what}${stack}`);
    return 1;
  }
}

async function runCommand(cmd: Command, args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseArgs(args, [...cmd.flags, ...GLOBAL_FLAGS], { stopAtPositional: cmd.stopAtPositional, command: cmd.name });
  const f = parsed.flags;
  if (f.bool("help")) {
    await io.out.line(commandHelp(cmd));
    return 0;
  }
  if (f.bool("json") && !cmd.json) throw usage(`--json: not supported by "tasklane ${cmd.name}"`);
  // Checked when a command first needs the agent: `hash-token` or `help` must not fail over a bad TASKLANE_TOKEN.
  const connect = (): ApiClient => {
    const serverFlag = f.string("server");
    const server =
      serverFlag !== undefined ? serverUrl(serverFlag, "--server") : io.env.TASKLANE_SERVER ? serverUrl(io.env.TASKLANE_SERVER, "TASKLANE_SERVER") : DEFAULT_SERVER;
    const tokenFlag = f.string("token");
    const token = tokenFlag !== undefined ? bearerToken(tokenFlag, "--token") : bearerToken(io.env.TASKLANE_TOKEN, "TASKLANE_TOKEN");
    return createApiClient({ server, token, signal: io.signal, requestTimeoutMs: requestTimeout(io.env.TASKLANE_REQUEST_TIMEOUT) });
  };
  let api: ApiClient | undefined;
  const ctx: CommandContext = {
    flags: f,
    // For commands without a `-- CMD` part, words after `--` are ordinary arguments (`hash-token -- -tok`).
    positionals: cmd.stopAtPositional ? parsed.positionals : [...parsed.positionals, ...(parsed.rest ?? [])],
    rest: parsed.rest,
    json: f.bool("json"),
    api: () => (api ??= connect()),
    out: io.out,
    err: io.err,
    style: createStyle(colourWanted(io.out.isTTY, io.env)),
    env: io.env,
    cwd: io.cwd,
    readStdin: io.readStdin,
    signal: io.signal,
    interruptCode: () => INTERRUPT_CODES[io.interruptedBy() ?? "SIGINT"],
    commands: COMMANDS,
    now: Date.now,
  };
  return cmd.run(ctx);
}

/**
 * Entry point called by `main.ts` for every first word other than `serve` or
 * a flag. Wires the real stdout/stderr/stdin and SIGINT/SIGTERM (a first
 * signal aborts the command, which may clean up — `run` cancels its task; a
 * second one exits at once), and flushes output before returning the status.
 */
export async function runCli(cmd: string, args: string[], env: Record<string, string | undefined>): Promise<number> {
  const out = createOutput(process.stdout);
  const err = createOutput(process.stderr);
  const abort = new AbortController();
  let interruptedBy: InterruptSignal | undefined;
  const onSignal = (sig: InterruptSignal) => {
    if (interruptedBy !== undefined) process.exit(INTERRUPT_CODES[sig]);
    interruptedBy = sig;
    abort.abort(new DOMException(`interrupted by ${sig}`, "AbortError"));
  };
  const onInt = () => onSignal("SIGINT");
  const onTerm = () => onSignal("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  try {
    return await execute(cmd, args, {
      out,
      err,
      env,
      cwd: process.cwd(),
      readStdin: () =>
        Promise.race([
          Bun.stdin.text(),
          new Promise<never>((_, reject) => {
            if (abort.signal.aborted) reject(abort.signal.reason);
            abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true });
          }),
        ]),
      signal: abort.signal,
      interruptedBy: () => interruptedBy,
    });
  } finally {
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
    await out.flush();
    await err.flush();
  }
}
