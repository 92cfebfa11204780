/**
 * Terminal behaviour, under a real pseudo-terminal (util-linux `script`):
 * colour only on a TTY and without NO_COLOR; the spinner on long waits.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { tasklane, type CliResult } from "./cli-process.ts";

setDefaultTimeout(20_000);

const MAIN = join(import.meta.dir, "../../src/main.ts");
const hasScript = Bun.which("script") !== null;

let agent: TestAgent;
beforeAll(async () => {
  agent = await startAgent({ args: ["--max-concurrent", "64"] });
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
});

/** Run the CLI with stdin/stdout/stderr on a pty; everything it printed arrives on our stdout. */
async function onTty(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const line = [process.execPath, MAIN, ...args].map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(" ");
  const proc = Bun.spawn(["script", "-qfec", line, "/dev/null"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", TERM: "xterm", TASKLANE_SERVER: agent.url, ...env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { exitCode, stdout, stderr };
}

describe.skipIf(!hasScript)("on a terminal", () => {
  test.concurrent("ls colours phases, unless NO_COLOR is set or stdout is not a TTY", async () => {
    const slot = `tty-${crypto.randomUUID().slice(0, 8)}`;
    const sub = await tasklane(["submit", "--slot", slot, "--", "true"], { server: agent.url });
    await agent.json("GET", `/api/v1/tasks/${sub.stdout.trim()}/wait?timeoutMs=10000`);
    const [tty, noColor, piped] = await Promise.all([
      onTty(["ls", "--slot", slot]),
      onTty(["ls", "--slot", slot], { NO_COLOR: "1" }),
      tasklane(["ls", "--slot", slot], { server: agent.url }),
    ]);
    expect(tty.exitCode).toBe(0);
    expect(tty.stdout).toContain("\x1b[32msucceeded");
    expect(noColor.stdout).toContain("succeeded");
    expect(noColor.stdout).not.toContain("\x1b[");
    expect(piped.stdout).not.toContain("\x1b[");
  });

  test.concurrent("wait shows a spinner on stderr while it waits, then erases it", async () => {
    const sub = await tasklane(["submit", "--", "sleep", "30"], { server: agent.url });
    const id = sub.stdout.trim();
    const r = await onTty(["wait", "--timeout", "1s", id]);
    expect(r.exitCode).toBe(124);
    expect(r.stdout).toContain(`waiting for ${id}`);
    expect(r.stdout).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] waiting for/);
    expect(r.stdout).toContain(`\r\x1b[2K${id} \x1b[36mrunning\x1b[39m exit=-`);
    await tasklane(["rm", id], { server: agent.url });
  });
});
