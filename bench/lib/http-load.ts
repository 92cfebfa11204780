/**
 * Closed-loop HTTP GET load with keep-alive connections: wrk when installed
 * (a C client leaves the 2 cores to the server), otherwise a small Bun
 * generator (`connections` fetch loops). Bounded by time.
 */
export interface LoadResult {
  rps: number;
  tool: "wrk" | "bun-fetch";
  errors: number;
}

async function withWrk(wrk: string, url: string, connections: number, durationMs: number): Promise<LoadResult> {
  const p = Bun.spawn([wrk, "-t1", `-c${connections}`, `-d${Math.max(1, Math.round(durationMs / 1000))}s`, url], { stdout: "pipe", stderr: "pipe" });
  const [out, , code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  if (code !== 0 || !Number.isFinite(rps)) throw new Error(`wrk failed (${code}): ${out}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return { rps, tool: "wrk", errors };
}

async function withFetch(url: string, connections: number, durationMs: number): Promise<LoadResult> {
  let done = 0;
  let errors = 0;
  const end = performance.now() + durationMs;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const res = await fetch(url);
        await res.arrayBuffer();
        if (res.status === 200) done++;
        else errors++;
      }
    }),
  );
  return { rps: (done / (performance.now() - t0)) * 1000, tool: "bun-fetch", errors };
}

/** Requests/s of GET `url` with `connections` concurrent keep-alive connections for `durationMs`. */
export function httpLoad(url: string, connections: number, durationMs: number): Promise<LoadResult> {
  const wrk = Bun.which("wrk");
  return wrk ? withWrk(wrk, url, connections, durationMs) : withFetch(url, connections, durationMs);
}
