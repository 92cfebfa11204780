/**
 * The environment a task's process gets: the base environment plus the
 * task's variables. When the base is the agent's own environment, a task
 * without variables inherits it (no env object built per spawn) and sees the
 * same variables; a task with variables gets both.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isOwnEnvironment } from "../../src/runner/run-process.ts";
import { createServiceRig, type ServiceRig } from "../helpers/service-rig.ts";

const own = () => Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));

const printEnv = (env: { key: string; value: string }[] = []) => ({
  slot: `env-${crypto.randomUUID().slice(0, 8)}`,
  kind: { subprocess: { mode: { command: { command: "/usr/bin/env", args: [] } }, env } },
});

let rig: ServiceRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe("task environment", () => {
  test("isOwnEnvironment: exactly process.env, nothing more, less or changed", () => {
    expect(isOwnEnvironment(own())).toBe(true);
    expect(isOwnEnvironment({ ...own(), TASKLANE_EXTRA: "1" })).toBe(false);
    const less = own();
    delete less[Object.keys(less)[0]!];
    expect(isOwnEnvironment(less)).toBe(false);
    const [k] = Object.keys(own());
    expect(isOwnEnvironment({ ...own(), [k!]: `${own()[k!]}-changed` })).toBe(false);
  });

  test("with the agent's own environment as base: inherited as is, and extended by the task's variables", async () => {
    rig = createServiceRig({ baseEnv: own(), outputTail: 10_000 });
    const lines = async (env?: { key: string; value: string }[]) =>
      (await rig!.service.run(printEnv(env), {}, 10_000)).output.stdout.slice().sort();
    const expected = Object.entries(own()).map(([k, v]) => `${k}=${v}`).filter((l) => !l.includes("\n")).sort();
    const inherited = await lines();
    for (const l of expected) expect(inherited).toContain(l);
    const extended = await lines([{ key: "TASKLANE_TASK_VAR", value: "x y" }]);
    expect(extended).toContain("TASKLANE_TASK_VAR=x y");
    for (const l of expected) expect(extended).toContain(l);
  });

  test("the command is found where the run will look: ./x in its cwd, a bare name on the PATH of its env", async () => {
    rig = createServiceRig({ baseEnv: own() });
    const dir = mkdtempSync(join(tmpdir(), "tasklane-lookup-"));
    try {
      writeFileSync(join(dir, "run.sh"), "#!/bin/sh\necho from-cwd\n", { mode: 0o755 });
      mkdirSync(join(dir, "bin"));
      writeFileSync(join(dir, "bin", "mytool-xyz"), "#!/bin/sh\necho from-path\n", { mode: 0o755 });
      const spec = (command: string, extra: Record<string, unknown>) => ({
        slot: `lookup-${crypto.randomUUID().slice(0, 8)}`,
        kind: { subprocess: { mode: { command: { command, args: [] } }, ...extra } },
      });
      const relative = await rig.service.run(spec("./run.sh", { cwd: dir }), {}, 10_000);
      expect({ phase: relative.task.status.phase, out: relative.output.stdout }).toEqual({ phase: "succeeded", out: ["from-cwd"] });
      const onPath = await rig.service.run(spec("mytool-xyz", { env: [{ key: "PATH", value: `${dir}/bin:/usr/bin:/bin` }] }), {}, 10_000);
      expect({ phase: onPath.task.status.phase, out: onPath.output.stdout }).toEqual({ phase: "succeeded", out: ["from-path"] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("with a filtered base: only the base and the task's variables", async () => {
    rig = createServiceRig({ baseEnv: { PATH: "/usr/bin:/bin", ONLY_THIS: "1" } });
    const out = await rig.service.run(printEnv(), {}, 10_000);
    expect(out.output.stdout.slice().sort()).toEqual(["ONLY_THIS=1", "PATH=/usr/bin:/bin"]);
  });
});
