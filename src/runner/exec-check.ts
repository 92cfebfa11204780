/**
 * Whether the kernel would `exec` a file, checked without running it.
 *
 * A run with resource limits starts its command through a wrapper (`prlimit`,
 * or `sh` joining a cgroup; see resource-limits.ts) that `exec`s it in turn.
 * That second `exec` is not the agent's: `prlimit`'s `execvp` runs a file the
 * kernel refuses as "not an executable format" with `/bin/sh` instead, and
 * both wrappers turn every other failure into a bare exit code (126, 127).
 * The same spec would then run, or fail for a different reason, depending on
 * whether it asks for a limit. So before a wrapped run starts, its command is
 * checked the way `execve(2)` checks it, and a failure is reported with the
 * errno the agent's own spawn would have got (see `spawnErrorText` in
 * run-process.ts).
 *
 * What is checked: the file exists, is a regular file with execute
 * permission; it starts with `#!` (its interpreter is checked the same way,
 * four levels deep like Linux) or with the ELF magic. Anything else is
 * `ENOEXEC`, unless `binfmt_misc` has formats registered, which the kernel
 * may accept. Not checked: an ELF program's own loader (`PT_INTERP`); a file
 * that is executable but not readable by the agent passes.
 */
import { accessSync, closeSync, constants, openSync, readSync, readdirSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";

/** The errno `execve` fails with for a file that cannot run; undefined when it would run. */
export type ExecErrno = "ENOENT" | "EACCES" | "ENOEXEC";

/** How much of a file the kernel reads to find its format and `#!` line (BINPRM_BUF_SIZE). */
const HEAD_BYTES = 256;
/** Linux follows at most this many `#!` interpreters in a chain. */
const MAX_INTERPRETER_DEPTH = 4;
const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];

/**
 * The errno `execve(path)` would fail with, from a process in `cwd` (a
 * relative `path` or `#!` interpreter is taken from there); undefined when it
 * would start.
 */
export function execErrno(path: string, cwd: string = process.cwd()): ExecErrno | undefined {
  return check(resolve(cwd, path), cwd, 0);
}

function check(path: string, cwd: string, depth: number): ExecErrno | undefined {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (err) {
    return (err as { code?: string }).code === "EACCES" ? "EACCES" : "ENOENT";
  }
  if (!isFile) return "EACCES";
  try {
    accessSync(path, constants.X_OK);
  } catch {
    return "EACCES";
  }
  const head = readHead(path);
  if (head === undefined) return undefined;
  if (head[0] === 0x23 && head[1] === 0x21) {
    const interpreter = shebangInterpreter(head);
    if (interpreter === undefined) return "ENOEXEC";
    if (depth + 1 >= MAX_INTERPRETER_DEPTH) return undefined;
    return check(resolve(cwd, interpreter), cwd, depth + 1);
  }
  if (ELF_MAGIC.every((b, i) => head[i] === b)) return undefined;
  return binfmtMiscFormats() ? undefined : "ENOEXEC";
}

/** The first bytes of `path`, or undefined when it cannot be read (execute-only files still run). */
function readHead(path: string): Uint8Array | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const buf = new Uint8Array(HEAD_BYTES);
    return buf.subarray(0, readSync(fd, buf, 0, HEAD_BYTES, 0));
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The interpreter of a `#!` line as Linux reads it: after blanks, up to the next blank or line end. */
export function shebangInterpreter(head: Uint8Array): string | undefined {
  const end = head.indexOf(0x0a);
  const line = Buffer.from(head.subarray(2, end < 0 ? head.length : end)).toString("latin1");
  const interpreter = line.trimStart().split(/[ \t]/, 1)[0];
  return interpreter === undefined || interpreter === "" ? undefined : interpreter;
}

/** Whether `binfmt_misc` is enabled with at least one format registered. */
function binfmtMiscFormats(): boolean {
  const dir = "/proc/sys/fs/binfmt_misc";
  try {
    if (readFileSync(`${dir}/status`, "utf8").trim() !== "enabled") return false;
    return readdirSync(dir).some((name) => name !== "status" && name !== "register");
  } catch {
    return false;
  }
}
