/**
 * Spawn test/fixtures/store-writer.ts and wait until it prints "flushed".
 */
import { join } from "node:path";

const WRITER = join(import.meta.dir, "..", "fixtures", "store-writer.ts");

export type Writer = Bun.Subprocess<"ignore", "pipe", "pipe">;

/** Start a writer child; resolves once its writes are flushed (or throws with its stderr). */
export async function startWriter(dataDir: string, flushed: number, unflushed: number): Promise<Writer> {
  const proc = Bun.spawn([process.execPath, WRITER, dataDir, String(flushed), String(unflushed)], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const decoder = new TextDecoder();
  let out = "";
  for await (const chunk of proc.stdout) {
    out += decoder.decode(chunk, { stream: true });
    if (out.split("\n").includes("flushed")) return proc;
  }
  const stderr = await new Response(proc.stderr).text();
  throw new Error(`store-writer exited with ${await proc.exited} before "flushed": ${stderr.trim()}`);
}

/** SIGKILL the child and wait for it to be gone. */
export async function killHard(proc: Writer): Promise<void> {
  proc.kill("SIGKILL");
  await proc.exited;
}
