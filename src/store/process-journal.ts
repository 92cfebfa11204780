/**
 * The processes started lately — every one since the store's last commit, and
 * committed ones before them until the file is a page long — in a small file
 * beside the database (`<db>-procs`, one line per process: `pid pgid startTime`).
 *
 * A run's process identity is written to the store right after its spawn,
 * but commits come a little later (group commit: the next turn, or after the
 * fsync in flight). An agent killed in between (`kill -9`, OOM) would leave
 * a process that no stored run names, and recovery could not kill it: the
 * contract says no process of a task outlives it. So the identity also goes
 * to this file at once, one `write(2)` with `O_APPEND` and no fsync — what it
 * guards against is the agent's process dying, which keeps the page cache;
 * a machine that loses power loses the processes too. After a commit every
 * identity in the file is in the database. The file is emptied by the first
 * commit that finds it holding {@link EMPTY_AT_BYTES} or more, not by every
 * commit: a truncate per commit (several hundred a second when tasks turn over
 * fast) cost ≈ 1.5 % of the main thread in benchmark 1, and freed and
 * allocated the file's block each time. The committed lines left meanwhile are
 * checked by recovery like those of stored runs (the same processes), and are
 * harmless: a process is killed only when /proc shows it alive with the
 * recorded start time.
 *
 * The next agent reads the file when it opens the store and kills what is
 * still alive of those processes like the leftovers of stored runs (only when
 * /proc confirms the recorded start time: see `killLeftoverGroup`).
 */
import { closeSync, ftruncateSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import type { RunProcess } from "../tasks/model.ts";

/** See the module comment. */
export interface ProcessJournal {
  /** The identities the file held when it was opened: a previous agent's processes whose runs may not be stored. */
  readonly leftovers: readonly RunProcess[];
  /** Record a process just started. Never throws (a journal that cannot be written only narrows what recovery finds). */
  append(p: RunProcess): void;
  /** Every identity appended so far is committed to the database (the file is emptied once it holds EMPTY_AT_BYTES). Never throws. */
  committed(): void;
  /** Close the file, and remove it when every identity in it is committed (a clean stop leaves no journal). */
  close(): void;
}

/** Size at which a commit empties the file: a page, ≈ 130 lines. */
export const EMPTY_AT_BYTES = 4096;

/** One line of the file: `pid pgid startTime` (`-` for no start time). */
function line(p: RunProcess): string {
  return `${p.pid} ${p.pgid} ${p.startTime ?? "-"}\n`;
}

/** The identities in `text`; lines that are not whole (a write cut short by the crash) are skipped. */
export function parseProcessJournal(text: string): RunProcess[] {
  const out: RunProcess[] = [];
  for (const l of text.split("\n")) {
    const m = /^(\d+) (\d+) (\d+|-)$/.exec(l);
    if (!m) continue;
    const pid = Number(m[1]);
    const pgid = Number(m[2]);
    if (pid < 1 || pgid < 1 || !Number.isSafeInteger(pid) || !Number.isSafeInteger(pgid)) continue;
    out.push(m[3] === "-" ? { pid, pgid } : { pid, pgid, startTime: m[3] as string });
  }
  return out;
}

/** Open (or create) the journal at `path`, reading what a previous agent left in it. */
export function openProcessJournal(path: string): ProcessJournal {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const leftovers = parseProcessJournal(text);
  // "a": O_APPEND, so that each line lands at the end whatever the offset after a truncate.
  let fd: number | undefined = openSync(path, "a", 0o600);
  /** Lines not yet committed: the previous agent's, until this one's first commit, then those appended since the last. */
  let pending = text.length > 0;
  /** Bytes in the file (the lines are ASCII). */
  let size = text.length;
  return {
    leftovers,
    append(p) {
      if (fd === undefined) return;
      const l = line(p);
      try {
        writeSync(fd, l);
        pending = true;
        size += l.length;
      } catch {
        // Disk full or an I/O error: the store's own writes report such trouble.
      }
    },
    committed() {
      if (fd === undefined) return;
      pending = false;
      if (size < EMPTY_AT_BYTES) return;
      try {
        ftruncateSync(fd, 0);
        size = 0;
      } catch {
        // Left as it is: the next agent finds processes that are stored anyway, and checks them the same way.
      }
    },
    close() {
      if (fd === undefined) return;
      closeSync(fd);
      fd = undefined;
      if (pending) return;
      try {
        unlinkSync(path);
      } catch {
        // Already gone, or the directory is read-only: an empty journal is harmless.
      }
    },
  };
}
