/** `tasklane info`: what the agent says about itself. */
import type { Command } from "../command.ts";
import { formatDuration, formatFields, formatTime } from "../format.ts";

function flatten(prefix: string, value: unknown, out: [string, unknown][]): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(prefix ? `${prefix}.${k}` : k, v, out);
  } else out.push([prefix, value]);
}

function render(key: string, value: unknown, now: number): string {
  if (typeof value === "number") {
    if (/(?:^|\.)(?:startedAt|createdAt)$/.test(key)) return formatTime(value, now);
    if (/Ms$/.test(key)) return formatDuration(value);
    if (/Bytes$/.test(key)) return `${value} B`;
  }
  if (Array.isArray(value)) return value.map(String).join(", ");
  return String(value);
}

/** Show the agent's version, uptime, limits and capabilities. */
export const infoCommand: Command = {
  name: "info",
  summary: "show the agent's version, uptime, limits and capabilities",
  usage: "",
  details: "With --json, prints the agent's /api/v1/info answer as is.",
  flags: [],
  json: true,
  examples: ["tasklane info --server http://edge-7:8080"],
  async run(ctx) {
    const info = await ctx.api().info();
    if (ctx.json) {
      await ctx.out.line(JSON.stringify(info));
      return 0;
    }
    const rows: [string, unknown][] = [];
    flatten("", info, rows);
    const now = ctx.now();
    await ctx.out.line(formatFields([["server", ctx.api().server], ...rows.map(([k, v]): [string, string] => [k, render(k, v, now)])]));
    return 0;
  },
};
