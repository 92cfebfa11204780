/**
 * Help text generated from the command definitions: the overview
 * (`tasklane help`) and one page per command (`tasklane <cmd> --help`).
 */
import type { FlagSpec } from "./args.ts";
import type { Command } from "./command.ts";
import { DEFAULT_SERVER } from "./api-client.ts";

/** Flags every client command accepts. */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [
  { name: "server", kind: "string", value: "URL", help: `agent URL (env TASKLANE_SERVER, default ${DEFAULT_SERVER})` },
  { name: "token", kind: "string", value: "TOKEN", help: "bearer token (env TASKLANE_TOKEN)" },
  { name: "json", kind: "boolean", help: "machine-readable JSON output" },
  { name: "help", short: "h", kind: "boolean", help: "show help" },
];

function flagRows(flags: readonly FlagSpec[]): string[] {
  const lefts = flags.map((f) => `${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.value ? ` ${f.value}` : ""}`);
  const w = Math.max(...lefts.map((l) => l.length));
  return flags.map((f, i) => `  ${lefts[i]!.padEnd(w)}   ${f.help}`);
}

/** Help page of one command. */
export function commandHelp(cmd: Command): string {
  const globals = GLOBAL_FLAGS.filter((g) => cmd.json || g.name !== "json");
  const lines = [`tasklane ${cmd.name} — ${cmd.summary}`, "", `Usage: tasklane ${cmd.name} ${cmd.usage}`.trimEnd()];
  if (cmd.details) lines.push("", cmd.details);
  if (cmd.flags.length > 0) lines.push("", "Flags:", ...flagRows(cmd.flags));
  lines.push("", "Global flags:", ...flagRows(globals));
  lines.push("", cmd.examples.length > 1 ? "Examples:" : "Example:", ...cmd.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

/** The overview listing every command. */
export function overviewHelp(commands: readonly Command[]): string {
  const w = Math.max(...commands.map((c) => c.name.length));
  return [
    "tasklane — single-binary task agent; the same binary is its client",
    "",
    "Usage: tasklane [serve] [flags]             run the agent (tasklane serve --help)",
    "       tasklane <command> [flags] [args]    talk to a running agent",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(w)}   ${c.summary}`),
    "",
    "Global flags:",
    ...flagRows(GLOBAL_FLAGS),
    "",
    "Environment: TASKLANE_SERVER, TASKLANE_TOKEN, TASKLANE_REQUEST_TIMEOUT (how long the agent",
    "has to answer a request, default 30s; 0: no limit).",
    "",
    "Exit status: 0 ok, 1 the agent answered with an error, 2 usage error, 3 agent unreachable",
    "(or not a tasklane agent), 130 interrupted; run and wait document their own codes",
    "(tasklane run --help).",
    "",
    "Run 'tasklane <command> --help' for the flags and an example of each command.",
  ].join("\n");
}
