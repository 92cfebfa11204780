/** Resident memory and CPU time of a process from /proc (Linux). */
import { readFileSync } from "node:fs";
import { readProcStat } from "../../src/runner/proc-stat.ts";

export interface Rss {
  /** VmRSS in MiB: what the target is about. */
  total: number;
  /** RssAnon in MiB: heap, malloc, JIT. */
  anon: number;
  /** RssFile in MiB: pages of the executable (the Bun runtime and the embedded bundle). */
  file: number;
}

const MIB = 1024;

/** RSS of `pid` in MiB; throws if the process is gone. */
export function readRss(pid: number): Rss {
  const text = readFileSync(`/proc/${pid}/status`, "latin1");
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(text)?.[1] ?? Number.NaN);
  return { total: kb("VmRSS") / MIB, anon: kb("RssAnon") / MIB, file: kb("RssFile") / MIB };
}

/** CPU time (user + system, all threads) `pid` has used so far, in ms (Linux, 100 ticks/s); throws if the process is gone. */
export function readCpuMs(pid: number): number {
  const stat = readProcStat(pid);
  if (!stat) throw new Error(`no /proc/${pid}/stat`);
  return (stat.utime + stat.stime) * 10;
}
