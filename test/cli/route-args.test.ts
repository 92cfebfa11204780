/**
 * Which half of the binary a command line goes to: the agent for `serve` and
 * for flags only, the client for any other first word — also after the
 * client's global flags (`tasklane --server host:8080 ls`).
 */
import { describe, expect, test } from "bun:test";
import { GLOBAL_FLAGS } from "../../src/cli/help-text.ts";
import { LEADING_CLIENT_FLAGS, routeArgs } from "../../src/route-args.ts";

describe("routeArgs", () => {
  test("serve, nothing, or agent flags: the agent", () => {
    expect(routeArgs([])).toEqual({ kind: "serve", args: [] });
    expect(routeArgs(["serve", "--http-addr", "127.0.0.1:0"])).toEqual({ kind: "serve", args: ["--http-addr", "127.0.0.1:0"] });
    expect(routeArgs(["--http-addr", "127.0.0.1:0", "--data-dir", "x"])).toEqual({ kind: "serve", args: ["--http-addr", "127.0.0.1:0", "--data-dir", "x"] });
    expect(routeArgs(["--help"])).toEqual({ kind: "serve", args: ["--help"] });
    // The overview points to serve; its help is the agent's.
    expect(routeArgs(["help", "serve"])).toEqual({ kind: "serve", args: ["--help"] });
    expect(routeArgs(["help", "run"])).toEqual({ kind: "client", cmd: "help", args: ["run"] });
  });

  test("a first word: the client, with the rest as it is", () => {
    expect(routeArgs(["ls", "--status", "running"])).toEqual({ kind: "client", cmd: "ls", args: ["--status", "running"] });
    expect(routeArgs(["run", "--", "echo", "--server"])).toEqual({ kind: "client", cmd: "run", args: ["--", "echo", "--server"] });
  });

  test("client global flags before the command go to the client, ahead of its own arguments", () => {
    expect(routeArgs(["--server", "h:1", "ls"])).toEqual({ kind: "client", cmd: "ls", args: ["--server", "h:1"] });
    expect(routeArgs(["--server=h:1", "--json", "--token", "t", "get", "tsk_1"])).toEqual({
      kind: "client",
      cmd: "get",
      args: ["--server=h:1", "--json", "--token", "t", "tsk_1"],
    });
    expect(routeArgs(["--token", "t", "run", "--", "sh", "-c", "x"])).toEqual({ kind: "client", cmd: "run", args: ["--token", "t", "--", "sh", "-c", "x"] });
  });

  test("a line that starts with a client flag and then goes wrong is the client's, which names the real problem (cmd \"\")", () => {
    for (const argv of [["--server", "h:1", "--http-addr", "x", "ls"], ["--server"], ["--json"], ["--json", "--bogus", "ls"]]) {
      expect(routeArgs(argv)).toEqual({ kind: "client", cmd: "", args: argv });
    }
    // A serve flag first is the agent's; a client flag before `serve` reaches the agent's parser.
    expect(routeArgs(["--http-addr", "x"]).kind).toBe("serve");
    expect(routeArgs(["--server", "h:1", "serve"]).kind).toBe("serve");
  });

  test("the leading flags are exactly the client's global flags that are not --help", () => {
    const globals = Object.fromEntries(GLOBAL_FLAGS.filter((f) => f.name !== "help").map((f) => [`--${f.name}`, f.kind !== "boolean"]));
    expect(LEADING_CLIENT_FLAGS).toEqual(globals);
  });
});
