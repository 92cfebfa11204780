/**
 * supervisord as a peer for benchmark 1: `programs` copies of /bin/true,
 * driven over XML-RPC the way a control script drives it — startProcess with
 * wait=true, then getProcessInfo until the program has exited — one worker
 * per program, for a fixed time. Absent `supervisord` → undefined (skipped).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function call(method: string, params: string[]): string {
  const ps = params.map((p) => `<param><value>${p}</value></param>`).join("");
  return `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${ps}</params></methodCall>`;
}

async function rpc(url: string, method: string, params: string[]): Promise<string> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "text/xml" }, body: call(method, params) });
  return res.text();
}

export interface PeerResult {
  rate: number;
  runs: number;
}

/** Programs run to completion per second under supervisord, or undefined when it is not installed. */
export async function supervisordRate(opts: { programs: number; durationMs: number }): Promise<PeerResult | undefined> {
  const exe = Bun.which("supervisord");
  if (!exe) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "tasklane-bench-supervisord-"));
  const port = freePort();
  const programs = Array.from({ length: opts.programs }, (_, i) => `p${i}`);
  const conf = [
    "[supervisord]",
    "nodaemon=true",
    `logfile=${join(dir, "supervisord.log")}`,
    `pidfile=${join(dir, "supervisord.pid")}`,
    `childlogdir=${dir}`,
    "loglevel=warn",
    "[inet_http_server]",
    `port=127.0.0.1:${port}`,
    "[rpcinterface:supervisor]",
    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ...programs.flatMap((p) => [
      `[program:${p}]`,
      "command=/bin/true",
      "autostart=false",
      "autorestart=false",
      "startsecs=0",
      "startretries=0",
      "stdout_logfile=NONE",
      "stderr_logfile=NONE",
    ]),
  ].join("\n");
  const confPath = join(dir, "supervisord.conf");
  writeFileSync(confPath, conf);
  const proc = Bun.spawn([exe, "-c", confPath], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  const url = `http://127.0.0.1:${port}/RPC2`;
  try {
    const ready = performance.now() + 10_000;
    for (;;) {
      try {
        if ((await rpc(url, "supervisor.getState", [])).includes("RUNNING")) break;
      } catch {
        // not listening yet
      }
      if (performance.now() > ready) throw new Error("supervisord did not come up");
      await Bun.sleep(20);
    }
    let runs = 0;
    const t0 = performance.now();
    const end = t0 + opts.durationMs;
    await Promise.all(
      programs.map(async (name) => {
        const arg = `<string>${name}</string>`;
        while (performance.now() < end) {
          const started = await rpc(url, "supervisor.startProcess", [arg, "<boolean>1</boolean>"]);
          // ABNORMAL_TERMINATION: /bin/true exited before supervisord looked at it — it did run.
          const ran = !started.includes("<fault>") || started.includes("ABNORMAL_TERMINATION");
          if (!ran && !started.includes("ALREADY_STARTED")) throw new Error(`supervisord: ${started}`);
          for (;;) {
            const info = await rpc(url, "supervisor.getProcessInfo", [arg]);
            if (/<name>statename<\/name><value><string>(EXITED|FATAL|BACKOFF)</.test(info.replace(/\s+/g, ""))) break;
          }
          if (ran) runs++;
        }
      }),
    );
    return { rate: (runs / (performance.now() - t0)) * 1000, runs };
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}
