/** Resident memory and CPU time of a process from /proc (Linux). */
import { readFileSync } from "node:fs";

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

/** CPU time (user + system, all threads) `pid` has used so far, in ms, from /proc/<pid>/stat (Linux, 100 ticks/s). */
export function readCpuMs(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "latin1");
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
