/**
 * openStore: the data dir, and every way opening must fail loudly without
 * touching what it cannot read.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, readlinkSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openStore } from "../../src/store/open-store.ts";
import { makeTask } from "./make-task.ts";
import { asNobody, canRunAsNobody, giveToNobody } from "../helpers/as-nobody.ts";
import { failedStart, readUntil } from "../helpers/process.ts";
import { killHard, startWriter } from "./start-writer.ts";
import { tempDir } from "./temp-dir.ts";

/** Snapshot of a directory: names and bytes of every file, to prove nothing was written. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    out[name] = st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : st.isDirectory() ? "<dir>" : readFileSync(p).toString("base64");
  }
  return out;
}

describe("openStore", () => {
  test('":memory:" gives the memory store', async () => {
    const store = openStore(":memory:");
    expect(store.kind).toBe("memory");
    await store.close();
  });

  test("creates a missing data dir (mode 0700) holding tasklane.db", async () => {
    using tmp = tempDir();
    const dataDir = join(realpathSync(tmp.path), "nested", "data");
    const store = openStore(dataDir);
    store.putTask(makeTask({ id: "a" }));
    await store.close();
    expect({
      kind: store.kind,
      mode: statSync(dataDir).mode & 0o777,
      files: readdirSync(dataDir),
    }).toEqual({ kind: `sqlite:${dataDir}/tasklane.db`, mode: 0o700, files: ["tasklane.db"] });
  });

  test("the database and its WAL are owner-only (0600), also in a data dir made beforehand with mode 0755", async () => {
    using tmp = tempDir();
    const dataDir = join(realpathSync(tmp.path), "data");
    mkdirSync(dataDir, { mode: 0o755 });
    const store = openStore(dataDir);
    store.putTask(makeTask({ id: "a" }));
    await store.flush();
    const mode = (f: string) => statSync(join(dataDir, f)).mode & 0o777;
    expect([mode("tasklane.db"), mode("tasklane.db-wal")]).toEqual([0o600, 0o600]);
    await store.close();
    // A database left 0644 (by an older build) is narrowed when it is opened again.
    chmodSync(join(dataDir, "tasklane.db"), 0o644);
    const again = openStore(dataDir);
    expect(mode("tasklane.db")).toBe(0o600);
    await again.close();
  });

  test("an empty (0-byte) or missing tasklane.db next to earlier tasks' scripts is refused, not opened as a new store", () => {
    using tmp = tempDir();
    const dataDir = realpathSync(tmp.path);
    writeFileSync(join(dataDir, "tasklane.db"), "");
    mkdirSync(join(dataDir, "scripts"));
    writeFileSync(join(dataDir, "scripts", "tsk_01"), "echo hi");
    const before = snapshot(dataDir);
    expect(() => openStore(dataDir)).toThrow(
      `cannot open store: ${dataDir}/tasklane.db is empty (0 bytes) but ${dataDir}/scripts holds 1 script file(s) of earlier tasks: the database was truncated, replaced or removed`,
    );
    expect(snapshot(dataDir)).toEqual(before);
    // Missing altogether: the same.
    rmSync(join(dataDir, "tasklane.db"));
    expect(() => openStore(dataDir)).toThrow(`cannot open store: ${dataDir}/tasklane.db is missing but ${dataDir}/scripts holds 1 script file(s)`);
    expect(existsSync(join(dataDir, "tasklane.db"))).toBe(false);
  });

  test("an empty tasklane.db with no scripts beside it opens as a new store", async () => {
    using tmp = tempDir();
    const dataDir = realpathSync(tmp.path);
    writeFileSync(join(dataDir, "tasklane.db"), "");
    const store = openStore(dataDir);
    store.putTask(makeTask({ id: "a" }));
    await store.flush();
    expect(store.getTask("a")?.metadata.id).toBe("a");
    await store.close();
  });

  test("a data dir below a regular file fails with ENOTDIR", () => {
    using tmp = tempDir();
    const file = join(realpathSync(tmp.path), "plain-file");
    writeFileSync(file, "x");
    expect(() => openStore(join(file, "data"))).toThrow(
      `cannot open store: cannot create data dir ${file}/data: a parent path is not a directory (ENOTDIR)`,
    );
  });

  test("a data dir that is a file fails", () => {
    using tmp = tempDir();
    const file = join(realpathSync(tmp.path), "plain-file");
    writeFileSync(file, "keep me");
    expect(() => openStore(file)).toThrow(`cannot open store: data dir ${file} is a file, not a directory`);
    expect(readFileSync(file, "utf8")).toBe("keep me");
  });

  test("a tasklane.db that is a directory fails", () => {
    using tmp = tempDir();
    const dir = realpathSync(tmp.path);
    mkdirSync(join(dir, "tasklane.db"));
    expect(() => openStore(dir)).toThrow(`cannot open store: ${dir}/tasklane.db is a directory, not a database file`);
  });

  test("a tasklane.db that is a FIFO or a symlink to nothing fails naming what it is", () => {
    using tmp = tempDir();
    const dir = realpathSync(tmp.path);
    const db = join(dir, "tasklane.db");
    expect(Bun.spawnSync(["mkfifo", db]).exitCode).toBe(0);
    expect(() => openStore(dir)).toThrow(`cannot open store: ${db} is a FIFO, not a database file; move it away`);
    rmSync(db);
    symlinkSync(join(dir, "gone", "x.db"), db);
    expect(() => openStore(dir)).toThrow(`cannot open store: ${db} is a symbolic link to a missing file (${join(dir, "gone", "x.db")})`);
  });

  test.each([
    ["-wal", "a directory", "the store's write-ahead log"],
    ["-shm", "a directory", "the store's WAL index"],
    ["-journal", "a directory", "the store's rollback journal"],
    ["-wal", "a dangling symlink", ""],
  ])("a tasklane.db%s that is %s fails before SQLite opens anything, naming the file", (suffix, kind, what) => {
    using tmp = tempDir();
    const dir = realpathSync(tmp.path);
    const side = join(dir, `tasklane.db${suffix}`);
    if (kind === "a directory") mkdirSync(side);
    else symlinkSync("/nonexistent/wal", side);
    const before = snapshot(dir);
    expect(() => openStore(dir)).toThrow(
      kind === "a directory" ? `cannot open store: ${side} is a directory, not ${what}; move it away` : `cannot open store: ${side} is a symbolic link to a missing file (/nonexistent/wal)`,
    );
    expect(snapshot(dir)).toEqual(before);
  });

  test.each([
    ["garbage", Buffer.from("this is not a database, it is a shopping list\n".repeat(100))],
    ["a SQLite header followed by garbage", Buffer.concat([Buffer.from("SQLite format 3\0"), Buffer.alloc(4080, 0xa5)])],
  ])("a corrupt tasklane.db (%s) fails and is left untouched", (_case, bytes) => {
    using tmp = tempDir();
    const dir = realpathSync(tmp.path);
    writeFileSync(join(dir, "tasklane.db"), bytes);
    const before = snapshot(dir);
    expect(() => openStore(dir)).toThrow(
      `cannot open store: ${dir}/tasklane.db is not a SQLite database (file is not a database); left untouched`,
    );
    expect(snapshot(dir)).toEqual(before);
  });

  test("a data dir locked by a live agent fails; once that agent is killed -9 the lock is gone", async () => {
    using tmp = tempDir();
    const dir = realpathSync(tmp.path);
    const holder = await startWriter(dir, 2, 0);
    try {
      expect(() => openStore(dir, { busyTimeoutMs: 50 })).toThrow(
        `cannot open store: ${dir}/tasklane.db is in use by another tasklane agent (database is locked)`,
      );
    } finally {
      await killHard(holder);
    }
    const store = openStore(dir, { busyTimeoutMs: 50 });
    expect(store.stats()).toEqual({ tasks: 2, runs: 2, logEvents: 2 });
    await store.close();
  });

  test("two agents opening one data dir at the same moment: exactly one gets it, the other is refused as in use", async () => {
    const fixture = join(import.meta.dir, "../fixtures/store-race.ts");
    const outcomes: string[] = [];
    for (let trial = 0; trial < 8; trial++) {
      using tmp = tempDir();
      const dir = realpathSync(tmp.path);
      // Half the trials on a store that exists already (its first read is the race), half on a new one.
      if (trial % 2 === 1) await openStore(dir).close();
      const startAt = Date.now() + 300;
      const procs = [0, 1].map(() => Bun.spawn([process.execPath, fixture, dir, String(startAt)], { stdin: "pipe", stdout: "pipe", stderr: "inherit" }));
      try {
        const lines = await Promise.all(procs.map((p) => readUntil(p.stdout, (out) => out.includes("\n")).then((out) => out.text.trim())));
        outcomes.push(lines.map((l) => (l.startsWith("refused: ") ? l.replace(dir, "DIR") : l)).sort().join(" | "));
      } finally {
        for (const p of procs) {
          p.stdin.end();
          await p.exited;
        }
      }
    }
    // Before: both took a shared lock with their first read, each then waited for the other to let go, and both were refused.
    expect(outcomes).toEqual(Array(8).fill("opened | refused: cannot open store: DIR/tasklane.db is in use by another tasklane agent (database is locked)"));
  }, 60_000);

  test("missing parents of the data dir get the usual mode; only the data dir itself is private (0700)", async () => {
    using tmp = tempDir();
    const root = realpathSync(tmp.path);
    const dir = join(root, "srv", "apps", "data");
    await openStore(dir).close();
    const modeOf = (p: string) => statSync(p).mode & 0o777;
    expect([modeOf(join(root, "srv")), modeOf(join(root, "srv", "apps")), modeOf(dir)]).toEqual([0o777 & ~process.umask(), 0o777 & ~process.umask(), 0o700]);
  });

  test.skipIf(!canRunAsNobody)("a database the agent's user may not read or write is named as such (not a disk I/O error)", async () => {
    using tmp = tempDir();
    const dir = join(realpathSync(tmp.path), "data");
    await openStore(dir).close();
    const db = join(dir, "tasklane.db");
    chmodSync(tmp.path, 0o755);
    giveToNobody(dir); // the dir alone: the database stays root's
    const open = async () => {
      const proc = Bun.spawn(asNobody([process.execPath, "-e", `import { openStore } from ${JSON.stringify(join(import.meta.dir, "../../src/store/open-store.ts"))}; try { openStore(${JSON.stringify(dir)}); console.log("opened"); } catch (e) { console.log(e.message); }`]), {
        env: { ...process.env, HOME: tmp.path },
        stdout: "pipe",
        stderr: "inherit",
      });
      return (await new Response(proc.stdout).text()).trim();
    };
    const refused = `cannot open store: ${db} is not readable and writable by this user (EACCES)`;
    expect(await open()).toBe(refused); // 0600: before, a raw "EACCES: permission denied, open …"
    chmodSync(db, 0o644);
    expect(await open()).toBe(refused); // readable only: before, "disk I/O error"
  });

  test("the same data dir cannot be opened twice in one process; it can after close", async () => {
    using tmp = tempDir();
    const dir = realpathSync(tmp.path);
    const first = openStore(dir);
    expect(() => openStore(dir)).toThrow(`cannot open store: ${dir}/tasklane.db is already open in this process`);
    first.putTask(makeTask({ id: "a" }));
    await first.close();
    const second = openStore(dir);
    expect(second.getTask("a")).toEqual(makeTask({ id: "a" }));
    await second.close();
  });

  test("an agent whose data dir holds a file named scripts fails to start, naming it (absolute path)", async () => {
    using tmp = tempDir();
    const dataDir = join(realpathSync(tmp.path), "data");
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, "scripts"), "x");
    const { startAgent } = await import("../helpers/start-agent.ts");
    await expect(startAgent({ dataDir })).rejects.toThrow(`cannot use the script dir ${dataDir}/scripts: a file of that name is in the way`);
  });

  test.skipIf(!canRunAsNobody)("an agent whose script dir it may not write fails to start, naming it (it was ready, and every script task failed)", async () => {
    using tmp = tempDir();
    const dataDir = join(realpathSync(tmp.path), "data");
    await openStore(dataDir).close();
    mkdirSync(join(dataDir, "scripts"), { mode: 0o700 });
    chmodSync(tmp.path, 0o755);
    giveToNobody(dataDir, join(dataDir, "tasklane.db")); // a chown of the dir and the database, not of scripts/
    const main = join(import.meta.dir, "../../src/main.ts");
    const { code, lastLine } = await failedStart(asNobody([process.execPath, main, "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", dataDir]), {
      env: { ...process.env, HOME: tmp.path },
    });
    expect([code, lastLine]).toEqual([1, `tasklane: cannot start: cannot use the script dir ${dataDir}/scripts: not writable (EACCES)`]);
  });
});
