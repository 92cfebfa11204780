/**
 * Process checks for tests. A killed process whose parent never reaps it (an
 * orphan under a PID 1 that does not reap) stays a zombie: it is dead, but
 * `kill(pid, 0)` still succeeds, so "gone" means missing or a zombie.
 */
import { readProcStat } from "../../src/runner/proc-stat.ts";

/** True when `pid` no longer runs (absent, or a zombie). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  return readProcStat(pid)?.state === "Z";
}

/**
 * Read `stream` (a child's stdout) until `enough(text read so far)` holds or
 * it ends. The reader's lock is released after, so the rest can still be
 * read. `ended`: the stream ended before `enough` held.
 */
export async function readUntil(stream: ReadableStream<Uint8Array>, enough: (text: string) => boolean): Promise<{ text: string; ended: boolean }> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (!enough(text)) {
      const { done, value } = await reader.read();
      if (done) return { text, ended: true };
      text += decoder.decode(value, { stream: true });
    }
    return { text, ended: false };
  } finally {
    reader.releaseLock();
  }
}

/**
 * Run an agent start that is expected to fail: its exit code and the last
 * line of its stderr (where the reason goes), killed after 20 s if it serves
 * instead.
 */
export async function failedStart(argv: string[], opts: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<{ code: number; lastLine: string; stderr: string }> {
  const proc = Bun.spawn(argv, { ...opts, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  clearTimeout(timer);
  return { code, lastLine: stderr.trimEnd().split("\n").at(-1) ?? "", stderr };
}
