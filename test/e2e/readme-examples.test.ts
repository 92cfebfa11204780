/**
 * The README's curl and grpcurl examples, run as written against the
 * compiled binary: every `curl` command of "REST examples" with the real
 * curl, every `grpcurl` command of "gRPC examples" parsed as grpcurl would
 * (its `-d` JSON through the proto3 JSON mapping of the method's request
 * type) and sent with a C-core gRPC client (grpcurl itself is not packaged
 * for Debian). Only the address and the placeholder task id change: each
 * command gets a task in the state it is meant for (a held task for
 * `start`, a running one for `cancel`, a finished one otherwise). The CLI
 * lines run in a directory holding the scripts they name, with the binary
 * on PATH as `tasklane`. A README example that drifts from the agent fails
 * here.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromJson, toBinary, type DescMessage, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { Health } from "../../src/gen/grpc/health/v1/health_pb.ts";
import { ServerReflectionRequestSchema } from "../../src/gen/grpc/reflection/v1/reflection_pb.ts";
import { SoltiApi } from "../../src/gen/solti/v1/api_pb.ts";
import { AgentService } from "../../src/gen/tasklane/v1/agent_pb.ts";
import { cCore, Code, hasGrpcio, type CCoreCall } from "../helpers/c-core-client.ts";
import { readUntil } from "../helpers/process.ts";
import { binaryPath, startBinary, type RunningBinary } from "./binary.ts";

const README = readFileSync(join(import.meta.dir, "../../README.md"), "utf8");
const PLACEHOLDER_ID = "tsk_01JR…";

/** The text of the README between two `## ` headings (the first one included). */
function section(from: string, to: string): string {
  const start = README.indexOf(`\n## ${from}\n`);
  const end = README.indexOf(`\n## ${to}\n`, start + 1);
  if (start < 0 || end < 0) throw new Error(`README: no section "${from}" before "${to}"`);
  return README.slice(start, end);
}

/**
 * The commands of the ```bash blocks of `text`, as argument vectors, split
 * as bash would: quotes, backslash-newline continuations, `#` comments.
 */
function commands(text: string): string[][] {
  const out: string[][] = [];
  for (const [, block] of text.matchAll(/```bash\n([\s\S]*?)```/g)) {
    let words: string[] = [];
    let word: string | undefined;
    let quote: "'" | '"' | undefined;
    const endWord = () => {
      if (word !== undefined) words.push(word);
      word = undefined;
    };
    const endCommand = () => {
      endWord();
      if (words.length > 0) out.push(words);
      words = [];
    };
    for (let i = 0; i < block!.length; i++) {
      const c = block![i]!;
      if (quote) {
        if (c === quote) quote = undefined;
        else word = (word ?? "") + c;
      } else if (c === "'" || c === '"') {
        quote = c;
        word ??= "";
      } else if (c === "\\" && block![i + 1] === "\n") i++;
      else if (c === "#" && word === undefined) while (i + 1 < block!.length && block![i + 1] !== "\n") i++;
      else if (c === "\n") endCommand();
      else if (c === " " || c === "\t") endWord();
      else word = (word ?? "") + c;
    }
    endCommand();
  }
  return out;
}

let agent: RunningBinary;
let base: string;

async function rest(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}
const spec = (argv: string[], extra: Record<string, unknown> = {}) => ({
  spec: { slot: `readme-${crypto.randomUUID().slice(0, 8)}`, kind: { subprocess: { mode: { command: { command: argv[0], args: argv.slice(1) } } } }, ...extra },
});

/** A fresh task in the state the command is meant for. */
async function taskFor(command: string): Promise<string> {
  if (/\/start\b|StartTask/.test(command)) return (await rest("POST", "/api/v1/tasks", spec(["true"], { hold: true }))).task_id;
  if (/\/cancel\b|CancelTask/.test(command)) return (await rest("POST", "/api/v1/tasks", spec(["sleep", "60"]))).task_id;
  // finished, with a little output
  return (await rest("POST", "/api/v1/tasks?wait=true", spec(["echo", "hello"]))).task.metadata.id;
}

/** A command's words with the README's address and placeholder id replaced. */
async function localize(words: string[]): Promise<string[]> {
  const host = agent.grpcAddr;
  const text = words.join(" ");
  const id = text.includes(PLACEHOLDER_ID) ? await taskFor(text) : undefined;
  return words.map((w) => {
    let v = w.replaceAll("http://localhost:8080", base).replaceAll("localhost:50051", host);
    if (id !== undefined) v = v.replaceAll(PLACEHOLDER_ID, id);
    return v;
  });
}

beforeAll(async () => {
  agent = await startBinary();
  base = agent.url;
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
});

const curlCommands = commands(section("REST examples (curl)", "gRPC examples (grpcurl)")).filter((w) => w[0] === "curl");
const grpcurlCommands = commands(section("gRPC examples (grpcurl)", "CLI")).filter((w) => w[0] === "grpcurl");

describe("README: curl examples", () => {
  test("the section has its commands", () => {
    expect(curlCommands.length).toBeGreaterThanOrEqual(20);
  });

  test.each(curlCommands.map((w) => [w.join(" ").replace(/\s+/g, " ").slice(0, 110), w] as const))("%s", async (_name, words) => {
    const argv = await localize(words);
    // -i: the status line and headers come first on stdout; -sS: errors only.
    const p = Bun.spawn(["curl", "-sS", "-i", "--max-time", "30", ...argv.slice(1)], { stdout: "pipe", stderr: "pipe" });
    const url = argv.find((a) => a.startsWith(base)) ?? "";
    // A watch stream never ends by itself: read its first event, then stop curl.
    const endless = url.includes("/api/v1/events");
    const firstEvent = (text: string) => {
      const head = text.indexOf("\r\n\r\n");
      return head >= 0 && text.indexOf("\n\n", head + 4) >= 0;
    };
    const { text: out } = await readUntil(p.stdout, (text) => endless && firstEvent(text));
    if (endless) p.kill();
    const code = await p.exited;
    if (!endless) expect({ code, stderr: await new Response(p.stderr).text() }).toEqual({ code: 0, stderr: "" });
    const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(out)?.[1]);
    const body = out.slice(out.indexOf("\r\n\r\n") + 4);
    // A 2xx, or the status with the agent's error body when not.
    expect({ ok: status >= 200 && status < 300, status, body: status >= 200 && status < 300 ? "" : body }).toEqual({ ok: true, status, body: "" });
    // What the README promises in the command's comment or the line after it.
    if (url.includes("/api/v1/tasks/") && argv[2] === "DELETE") expect(status).toBe(204);
  });
});

const services: DescService[] = [SoltiApi, AgentService, Health];

/** grpcurl's reading of a command: its flags, the address, then `list`, `describe X` or a method. */
function grpcurlCall(words: string[]): { data?: string; headers: [string, string][]; verb: string; arg?: string } {
  const headers: [string, string][] = [];
  let data: string | undefined;
  const rest: string[] = [];
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!;
    if (w === "-plaintext") continue;
    if (w === "-d") data = words[++i];
    else if (w === "-H") {
      const h = words[++i]!;
      headers.push([h.slice(0, h.indexOf(":")).trim().toLowerCase(), h.slice(h.indexOf(":") + 1).trim()]);
    } else rest.push(w);
  }
  const [, verb, arg] = rest; // rest[0] is the address
  return { data, headers, verb: verb!, arg };
}

describe.skipIf(!hasGrpcio && !process.env.CI)("README: grpcurl examples (the same requests through a C-core client)", () => {
  test("the section has its commands", () => {
    expect(grpcurlCommands.length).toBeGreaterThanOrEqual(16);
  });

  test.each(grpcurlCommands.map((w) => [w.join(" ").replace(/\s+/g, " ").slice(0, 110), w] as const))("%s", async (_name, words) => {
    const host = agent.grpcAddr;
    const argv = await localize(words);
    const { data, headers, verb, arg } = grpcurlCall(argv);
    const reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    let call: CCoreCall;
    if (verb === "list") call = { path: reflection, kind: "bidi", request: toBinary(ServerReflectionRequestSchema, fromJson(ServerReflectionRequestSchema, { listServices: "" })) };
    else if (verb === "describe") {
      call = { path: reflection, kind: "bidi", request: toBinary(ServerReflectionRequestSchema, fromJson(ServerReflectionRequestSchema, { fileContainingSymbol: arg! })) };
    } else {
      const [serviceName, methodName] = [verb.slice(0, verb.lastIndexOf("/")), verb.slice(verb.lastIndexOf("/") + 1)];
      const service = services.find((s) => s.typeName === serviceName);
      const method = service?.methods.find((m) => m.name === methodName);
      expect({ verb, known: method !== undefined }).toEqual({ verb, known: true });
      // grpcurl reads -d with the proto3 JSON mapping; a field or value it would refuse throws here.
      const input: DescMessage = method!.input;
      const request = toBinary(input, fromJson(input, JSON.parse(data ?? "{}") as JsonValue));
      const streaming = method!.methodKind === "server_streaming";
      // A watch replays the slot's retained changes and then waits for more: its first message will do.
      call = { path: `/${verb}`, kind: streaming ? "stream" : "unary", request, timeout: 30, ...(methodName === "WatchTasks" ? { cancelAfter: 1 } : {}) };
    }
    const [answer] = await cCore(host, [{ ...call, metadata: headers }]);
    const expected = call.cancelAfter ? Code.CANCELLED : Code.OK;
    expect({ code: answer!.code, details: answer!.code === expected ? "" : answer!.details }).toEqual({ code: expected, details: "" });
    expect(answer!.messages.length).toBeGreaterThan(0);
  });
});

/** The CLI section's lines, one shell line each (comments dropped), split at `;` and `&&` into commands. */
const cliLines = commands(section("CLI", "Auth (optional)"))
  .filter((w) => w[0] === "tasklane" && !w.includes("<command>"))
  .map((words) => {
    const parts: string[][] = [[]];
    for (const w of words) {
      if (w === ";" || w === "&&") parts.push([]);
      else parts.at(-1)!.push(w);
    }
    return parts.filter((p) => p.length > 0);
  });

describe("README: CLI examples", () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tasklane-readme-cli-"));
    // What the examples name: ./backup.sh and job.py in the working directory, the binary on PATH.
    writeFileSync(join(dir, "backup.sh"), '#!/bin/sh\necho "backup $*"\n');
    chmodSync(join(dir, "backup.sh"), 0o755);
    writeFileSync(join(dir, "job.py"), 'print("job")\n');
    symlinkSync(await binaryPath(), join(dir, "tasklane"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the section has its commands", () => {
    expect(cliLines.length).toBeGreaterThanOrEqual(8);
  });

  test.each(cliLines.map((parts) => [parts.map((p) => p.join(" ")).join(" ; "), parts] as const))("%s", async (_name, parts) => {
    const id = parts.some((p) => p.includes(PLACEHOLDER_ID)) ? await taskFor(parts.flat().join(" ")) : undefined;
    for (const words of parts) {
      // `completion bash > /etc/…`: the script goes to stdout here instead.
      const gt = words.indexOf(">");
      const argv = (gt >= 0 ? words.slice(0, gt) : words).map((w) => (id === undefined ? w : w.replaceAll(PLACEHOLDER_ID, id)));
      const p = Bun.spawn([join(dir, "tasklane"), ...argv.slice(1)], {
        cwd: dir,
        env: { PATH: `${dir}:${process.env.PATH ?? "/usr/bin:/bin"}`, HOME: dir, TASKLANE_SERVER: base },
        stdin: argv[1] === "hash-token" ? new TextEncoder().encode("a-token\n") : "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      if (argv[1] === "events") {
        // A watch does not end by itself: its first line will do.
        const { text: out } = await readUntil(p.stdout, (text) => text.includes("\n"));
        p.kill();
        expect(out).toContain("tsk_");
        continue;
      }
      const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      expect({ command: argv.join(" "), code, err: code === 0 ? "" : err }).toEqual({ command: argv.join(" "), code: 0, err: "" });
      expect(out.length + err.length).toBeGreaterThan(0); // `ls` with nothing to list says so on stderr
    }
  });
});
