/**
 * The environment a task's process gets: the base environment plus the
 * task's variables. When the base is the agent's own environment, a task
 * without variables inherits it (no env object built per spawn) and sees the
 * same variables; a task with variables gets both.
 */
import { afterEach, describe, expect, test } from "bun:test";
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

  test("with a filtered base: only the base and the task's variables", async () => {
    rig = createServiceRig({ baseEnv: { PATH: "/usr/bin:/bin", ONLY_THIS: "1" } });
    const out = await rig.service.run(printEnv(), {}, 10_000);
    expect(out.output.stdout.slice().sort()).toEqual(["ONLY_THIS=1", "PATH=/usr/bin:/bin"]);
  });
});
