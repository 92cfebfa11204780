/** Read a byte stream to its end, discarding it; resolves with the byte count. */
export async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  const reader = stream.getReader();
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes;
    bytes += value.length;
  }
}

/**
 * Spawn `argv` with piped stdout/stderr, drain both, wait for the exit (what any runner does per task).
 * `detached`: in a session of its own, as the agent starts every task (`setsid()`).
 */
export async function spawnAndWait(argv: string[], detached = false): Promise<number> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", detached });
  const [, , code] = await Promise.all([drain(p.stdout), drain(p.stderr), p.exited]);
  return code;
}
