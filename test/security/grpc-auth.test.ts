/**
 * Every gRPC method (enumerated from the generated service descriptors, so a
 * new RPC is covered without touching this file) answers UNAUTHENTICATED
 * without a token or with a wrong one, and PERMISSION_DENIED to a viewer that
 * tries to change something. Reflection is protected too; health is public.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { SoltiApi } from "../../src/gen/solti/v1/api_pb.ts";
import { AgentService } from "../../src/gen/tasklane/v1/agent_pb.ts";
import { collect, failure, serverStream, unary } from "../grpc/proto-client.ts";
import { FRAME, rawGrpcRequest } from "../helpers/raw-h2.ts";
import { commandSpec } from "../helpers/start-agent.ts";
import { protoSpec, startSecureAgent, type Name, type SecureAgent } from "./secure-agent.ts";

/** RPCs that change tasks: a viewer must get PERMISSION_DENIED. */
const WRITES = new Set(["SubmitTask", "DeleteTask", "CancelTask", "StartTask", "RestartTask", "RunTask"]);

let a: SecureAgent;
let taskId: string;

beforeAll(async () => {
  a = await startSecureAgent();
  const r = await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true") }, a.bearer("bob"));
  taskId = r.body.task_id;
});
afterAll(() => a[Symbol.asyncDispose]());

function requestFor(method: string): Record<string, unknown> {
  switch (method) {
    case "SubmitTask":
      return { spec: protoSpec("true") };
    case "RunTask":
      return { spec: protoSpec("true"), timeoutMs: "1000" };
    case "WaitTask":
      return { taskId, timeoutMs: "0" };
    case "ListTasks":
    case "WatchTasks":
    case "GetInfo":
      return {};
    default:
      return { taskId };
  }
}

type Who = Name | { token: string } | undefined;

/** Call `method` of `client` and return the status code it ends with (OK for a stream that opened and was cancelled). */
async function codeOf(client: grpc.Client, method: string, kind: string, who: Who): Promise<{ code: number; details: string }> {
  const md = a.md(who);
  if (kind === "unary") {
    try {
      await unary(client, method, requestFor(method), md);
      return { code: grpc.status.OK, details: "" };
    } catch (err) {
      const e = err as grpc.ServiceError;
      return { code: e.code, details: e.details };
    }
  }
  const stream = serverStream(client, method, requestFor(method), md);
  // A stream that authenticates stays open (watch) or ends (logs of a finished task); either is "past auth".
  const first = new Promise<{ code: number; details: string }>((resolve) => {
    stream.on("data", () => resolve({ code: grpc.status.OK, details: "" }));
    stream.on("metadata", () => resolve({ code: grpc.status.OK, details: "" }));
  });
  const result = await Promise.race([collect(stream), first]);
  stream.cancel();
  return result;
}

const services = [
  { svc: SoltiApi, client: () => a.solti },
  { svc: AgentService, client: () => a.agentSvc },
];

describe("gRPC auth on every RPC", () => {
  for (const { svc, client } of services) {
    for (const m of svc.methods) {
      test(`${svc.typeName}/${m.name}: UNAUTHENTICATED without a token or with a wrong one`, async () => {
        for (const who of [undefined, { token: "wrong-token" }] as Who[]) {
          const r = await codeOf(client(), m.name, m.methodKind, who);
          expect(r.code).toBe(grpc.status.UNAUTHENTICATED);
          expect(r.details).toMatch(/bearer token/);
        }
      });
      if (WRITES.has(m.name)) {
        test(`${svc.typeName}/${m.name}: PERMISSION_DENIED for a viewer`, async () => {
          expect(await codeOf(client(), m.name, m.methodKind, "vic")).toEqual({
            code: grpc.status.PERMISSION_DENIED,
            details: "principal vic (viewer) may not change tasks",
          });
        });
      } else {
        test(`${svc.typeName}/${m.name}: a reader's token gets past auth`, async () => {
          // vic owns nothing, so a watch stream of vic stays silent: the admin's sees bob's task at once.
          const who: Name = m.name === "WatchTasks" ? "root" : "vic";
          const r = await codeOf(client(), m.name, m.methodKind, who);
          expect([grpc.status.OK, grpc.status.NOT_FOUND]).toContain(r.code);
        });
      }
    }
  }

  test("the suite covers every RPC a WRITES entry names", () => {
    const all = new Set([...SoltiApi.methods, ...AgentService.methods].map((m) => m.name));
    for (const w of WRITES) expect(all.has(w)).toBe(true);
  });

  for (const version of ["v1", "v1alpha"]) {
    test(`reflection ${version}: UNAUTHENTICATED without a token, service list with one`, async () => {
      const c = a.client(`grpc/reflection/${version}/reflection.proto`, `grpc.reflection.${version}.ServerReflection`);
      const ask = (who: Who) =>
        new Promise<{ code: number; services: string[] }>((resolve) => {
          const call = (c as unknown as Record<string, (md: grpc.Metadata) => grpc.ClientDuplexStream<unknown, { listServicesResponse?: { service: { name: string }[] } }>>)
            .ServerReflectionInfo!.call(c, a.md(who));
          call.on("data", (res) => {
            resolve({ code: grpc.status.OK, services: (res.listServicesResponse?.service ?? []).map((s: { name: string }) => s.name).sort() });
            call.cancel();
          });
          call.on("error", (e: grpc.ServiceError) => resolve({ code: e.code, services: [] }));
          call.write({ host: "", listServices: "" });
        });
      expect((await ask(undefined)).code).toBe(grpc.status.UNAUTHENTICATED);
      expect((await ask({ token: "nope" })).code).toBe(grpc.status.UNAUTHENTICATED);
      const ok = await ask("vic");
      expect(ok.code).toBe(grpc.status.OK);
      expect(ok.services).toEqual(expect.arrayContaining(["solti.v1.SoltiApi", "tasklane.v1.AgentService"]));
    });
  }

  test("health is public", async () => {
    const c = a.client("grpc/health/v1/health.proto", "grpc.health.v1.Health");
    expect(await unary(c, "Check", { service: "" })).toEqual({ status: "SERVING" });
  });

  test("a call without a token is refused before its bytes are decoded: UNAUTHENTICATED, not INVALID_ARGUMENT", async () => {
    const undecodable = Buffer.from([0x0a, 0xff]); // field 1, a length that runs past the end
    const call = (md: grpc.Metadata) =>
      new Promise<number>((resolve) =>
        a.solti.makeUnaryRequest("/solti.v1.SoltiApi/SubmitTask", (b: Buffer) => b, (b: Buffer) => b, undecodable, md, (err) => resolve(err?.code ?? grpc.status.OK)),
      );
    expect(await call(new grpc.Metadata())).toBe(grpc.status.UNAUTHENTICATED);
    // With a valid token the same bytes are a bad request.
    expect(await call(a.md("bob"))).toBe(grpc.status.INVALID_ARGUMENT);
  });

  test("a viewer's SubmitTask and RunTask are PERMISSION_DENIED whatever the spec holds (as REST answers 403)", async () => {
    const invalid = { spec: { slot: "x" } }; // no kind: INVALID_ARGUMENT for a user
    expect((await failure(unary(a.solti, "SubmitTask", invalid, a.md("vic")))).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await failure(unary(a.agentSvc, "RunTask", { ...invalid, timeoutMs: "1000" }, a.md("vic")))).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await failure(unary(a.solti, "SubmitTask", invalid, a.md("bob")))).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  test("two authorization values are refused in either order (none of them acts), as REST answers 401", async () => {
    // grpc-js and node:http2 clients refuse to send two; a raw HTTP/2 request sends both header fields.
    // An answer with a DATA frame is a ListTasks that went through; a refusal is headers only.
    const answered = async (tokens: string[]) => {
      const auth = tokens.map((t) => ["authorization", `Bearer ${t}`] as const);
      const { frames, ended } = await rawGrpcRequest(a.grpcAddr, "/solti.v1.SoltiApi/ListTasks", auth, new Uint8Array(5), (_f, end) => end, 3000);
      if (!ended) return "no answer";
      return frames.includes(FRAME.DATA) ? "listed" : "refused";
    };
    const { root, vic, alice } = a.tokens;
    expect(await answered([alice])).toBe("listed");
    expect(await answered(["not-a-token"])).toBe("refused");
    // Before: the first value acted (a viewer's token before an admin's listed as the viewer), and a bad second one passed.
    for (const pair of [[vic, root], [root, vic], [alice, "not-a-token"]]) expect(await answered(pair)).toBe("refused");
    const rest = await a.request("GET", "/api/v1/tasks", undefined, { authorization: `Bearer ${vic}, Bearer ${root}` });
    expect(rest.status).toBe(401);
  });

  test("a token in the wrong metadata key does not authenticate", async () => {
    const md = new grpc.Metadata();
    md.set("x-token", a.tokens.root);
    expect((await failure(unary(a.solti, "ListTasks", {}, md))).code).toBe(grpc.status.UNAUTHENTICATED);
  });
});
