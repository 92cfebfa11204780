/**
 * The gRPC port listens before grpc-js is loaded: the first connection loads
 * the services, connections made meanwhile wait and are then served, a failed
 * load closes them and is tried again, and close works in every state.
 */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { connect } from "node:net";
import { createGrpcServer, type LoadGrpcServices } from "../../src/grpc/grpc-server.ts";
import { createFakeTaskService } from "./fake-service.ts";
import { failure, protoClient, unary } from "./proto-client.ts";
import { TEST_INFO } from "./start-server.ts";

const realLoad: LoadGrpcServices = () => import("../../src/grpc/grpc-services.ts");

/** A loader that counts its calls and waits for `release()` before loading (or failing). */
function heldLoader() {
  const gate = Promise.withResolvers<void>();
  const asked = Promise.withResolvers<void>();
  let calls = 0;
  let failNext = false;
  const load: LoadGrpcServices = async () => {
    calls++;
    asked.resolve();
    await gate.promise;
    if (failNext) {
      failNext = false;
      throw new Error("cannot load");
    }
    return realLoad();
  };
  return {
    load,
    asked: asked.promise,
    release: () => gate.resolve(),
    failOnce: () => {
      failNext = true;
    },
    get calls() {
      return calls;
    },
  };
}

function start(load: LoadGrpcServices, errors: unknown[] = []) {
  const fake = createFakeTaskService();
  const server = createGrpcServer({ service: fake, version: "0.0.0-test", info: () => TEST_INFO, onError: (e) => errors.push(e) }, load);
  return { fake, server };
}

/** `start`, listening on a free port and serving. */
async function serving(load: LoadGrpcServices, errors: unknown[] = []) {
  const started = start(load, errors);
  const port = await started.server.listen("127.0.0.1:0");
  started.server.setServing(true);
  return { ...started, port };
}

describe("gRPC port loaded on the first connection", () => {
  test("listening loads nothing; the first call loads the services once and later calls reuse them", async () => {
    const loader = heldLoader();
    const { fake, server, port } = await serving(loader.load);
    expect([server.loaded, loader.calls]).toEqual([false, 0]);

    const clients = [0, 1, 2, 3, 4].map(() => protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", port));
    // Five connections, all opened and sending while the load is held.
    const calls = clients.map((c) => unary<{ version: string }>(c, "GetInfo", {}));
    await loader.asked;
    expect(server.loaded).toBe(false);
    loader.release();
    expect((await Promise.all(calls)).map((r) => r.version)).toEqual(["0.0.0-test", "0.0.0-test", "0.0.0-test", "0.0.0-test", "0.0.0-test"]);
    expect([server.loaded, loader.calls]).toEqual([true, 1]);

    // Health reflects what was set before the load.
    const health = protoClient("grpc/health/v1/health.proto", "grpc.health.v1.Health", port);
    expect(await unary(health, "Check", { service: "" })).toEqual({ status: "SERVING" });
    for (const c of [...clients, health]) c.close();
    await server.close(0);
    fake.close();
  });

  test("a large request sent while the load is held (the socket is paused past 64 KiB) is served whole", async () => {
    const loader = heldLoader();
    const { fake, server, port } = await serving(loader.load);
    const solti = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", port);
    const arg = "z".repeat(600_000);
    const spec = { slot: "big", kind: { subprocess: { command: { command: "echo", args: [arg] } } }, timeoutMs: "1000", restart: "RESTART_STRATEGY_NEVER", admission: "ADMISSION_STRATEGY_QUEUE" };
    const call = unary<{ taskId: string }>(solti, "SubmitTask", { spec });
    await loader.asked;
    loader.release();
    const { taskId } = await call;
    expect(typeof taskId).toBe("string");
    expect(JSON.stringify(fake.inputs)).toContain(arg);
    solti.close();
    await server.close(0);
    fake.close();
  });

  test("a failed load is reported once, closes the waiting connections, and the next connection loads again", async () => {
    const loader = heldLoader();
    const errors: unknown[] = [];
    const { fake, server, port } = await serving(loader.load, errors);
    loader.failOnce();
    const first = protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", port);
    const second = protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", port);
    const failed = [failure(unary(first, "GetInfo", {})), failure(unary(second, "GetInfo", {}))];
    await loader.asked;
    loader.release();
    expect((await Promise.all(failed)).map((f) => f.code)).toEqual([grpc.status.UNAVAILABLE, grpc.status.UNAVAILABLE]);
    expect(errors.map((e) => (e as Error).message)).toEqual(["cannot load"]);
    expect(server.loaded).toBe(false);
    first.close();
    second.close();

    const third = protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", port);
    expect((await unary<{ version: string }>(third, "GetInfo", {})).version).toBe("0.0.0-test");
    expect([server.loaded, loader.calls, errors.length]).toEqual([true, 2, 1]);
    third.close();
    await server.close(0);
    fake.close();
  });

  test("close while the load is held ends the waiting connection and resolves once the load is through", async () => {
    const loader = heldLoader();
    const { fake, server, port } = await serving(loader.load);
    const client = protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", port);
    const call = failure(unary(client, "GetInfo", {}));
    await loader.asked;
    const closed = server.close(60_000);
    loader.release();
    await closed;
    expect((await call).code).toBe(grpc.status.UNAVAILABLE);
    client.close();
    // The port is closed: a new connection is refused.
    const refused = await new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.on("connect", () => resolve("connected"));
      s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
    });
    expect(refused).toBe("ECONNREFUSED");
    fake.close();
  });

  test("close before any connection loads nothing; a client that connects and leaves before the load is dropped", async () => {
    const loader = heldLoader();
    const { fake, server } = start(loader.load);
    const port = await server.listen("127.0.0.1:0");
    const gone = Promise.withResolvers<void>();
    const s = connect(port, "127.0.0.1", () => s.end(() => gone.resolve()));
    await loader.asked;
    await gone.promise;
    loader.release();
    const client = protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", port);
    expect((await unary<{ version: string }>(client, "GetInfo", {})).version).toBe("0.0.0-test");
    client.close();
    await server.close(0);
    fake.close();

    const idle = heldLoader();
    const other = start(idle.load);
    await other.server.listen("127.0.0.1:0");
    await other.server.close();
    expect([idle.calls, other.server.loaded]).toEqual([0, false]);
    other.fake.close();
  });

  test("an address that is taken is refused by listen", async () => {
    const { fake, server } = start(realLoad);
    const port = await server.listen("127.0.0.1:0");
    const second = start(realLoad);
    await expect(second.server.listen(`127.0.0.1:${port}`)).rejects.toThrow("EADDRINUSE");
    await expect(second.server.listen("no-port")).rejects.toThrow("expected host:port");
    await Promise.all([server.close(0), second.server.close(0)]);
    fake.close();
    second.fake.close();
  });

  test("a connection that sends no handshake is closed after handshakeMs; one that sent the HTTP/2 preface is not", async () => {
    const fake = createFakeTaskService();
    const server = createGrpcServer({ service: fake, version: "0.0.0-test", info: () => TEST_INFO, handshakeMs: 300 }, realLoad);
    const port = await server.listen("127.0.0.1:0");
    server.setServing(true);
    try {
      const open = (bytes?: string) => {
        const closed = Promise.withResolvers<number>();
        const s = connect(port, "127.0.0.1", () => bytes !== undefined && s.write(bytes));
        const t0 = performance.now();
        s.on("close", () => closed.resolve(performance.now() - t0));
        s.on("error", () => {});
        return { s, closed: closed.promise };
      };
      const talker = open("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      const silent = open();
      const half = open("PRI * HTTP/2.0"); // 14 of the 24 bytes: still no handshake
      expect(await silent.closed).toBeGreaterThanOrEqual(250);
      expect(await half.closed).toBeGreaterThanOrEqual(250);
      // Opened together with the silent one: still connected when that was closed.
      expect(talker.s.destroyed).toBe(false);
      talker.s.destroy();
    } finally {
      await server.close(100);
    }
  });

  test("a connection without a call for connectionIdleMs gets GOAWAY and is closed", async () => {
    const fake = createFakeTaskService();
    const server = createGrpcServer({ service: fake, version: "0.0.0-test", info: () => TEST_INFO, connectionIdleMs: 300 }, realLoad);
    const port = await server.listen("127.0.0.1:0");
    server.setServing(true);
    const client = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", port);
    try {
      await unary(client, "GetTaskStatus", { taskId: "tsk_missing" });
      const t0 = performance.now();
      const state = Promise.withResolvers<void>();
      // The channel leaves READY when the server closes its idle connection.
      const watch = () => {
        const now = client.getChannel().getConnectivityState(false);
        if (now !== grpc.connectivityState.READY) return state.resolve();
        client.getChannel().watchConnectivityState(now, Date.now() + 10_000, watch);
      };
      watch();
      await state.promise;
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    } finally {
      client.close();
      await server.close(100);
    }
  });
});
