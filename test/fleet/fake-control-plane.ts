/**
 * Fake solti control planes for fleet tests: a real HTTP sync route
 * (Bun.serve) and a real gRPC `DiscoverService` (grpc-js), both on port 0.
 * They decode every heartbeat with the proto schema (strictly: an unknown or
 * mistyped field fails the request), record it, and answer what the test says.
 * Tests wait for the n-th recorded request — never for time.
 */
import { create, fromJson, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { DiscoverService, SyncRequestSchema, SyncResponseSchema, type SyncRequest } from "../../src/gen/solti/discover/v1/discovery_pb.ts";
import { createServiceDefinition, DecodeFailure, type Decoded } from "../../src/grpc/service-definition.ts";

/** One heartbeat as the control plane saw it. */
export interface Recorded {
  message: SyncRequest;
  /** proto3-JSON of `message` with every field present (the shape the agent posts). */
  json: JsonObject;
  /** HTTP only: the body exactly as posted. */
  raw?: JsonValue;
  /** `Authorization` header / `authorization` metadata, if any. */
  authorization?: string;
  /** Arrival, `performance.now()` ms. */
  at: number;
}

/** What to answer: a SyncResponse, or "unavailable" (HTTP 503 / gRPC UNAVAILABLE). */
export type Reply = { success: boolean; reason?: string; retryAfterS?: number } | "unavailable";

export interface FakeControlPlane extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` or `grpc://127.0.0.1:<port>`. */
  readonly url: string;
  readonly requests: readonly Recorded[];
  /** Decides the answer to each request (default: success). */
  reply: (req: Recorded, index: number) => Reply;
  /** Resolves with the `n`-th request (1-based) once it has arrived. */
  request(n: number): Promise<Recorded>;
  /** Stop listening (connections refused) — an outage. */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
}

function createRecorder() {
  const requests: Recorded[] = [];
  const waiters = new Map<number, Array<(r: Recorded) => void>>();
  return {
    requests,
    add(r: Recorded): number {
      requests.push(r);
      const n = requests.length;
      for (const w of waiters.get(n) ?? []) w(r);
      waiters.delete(n);
      return n - 1;
    },
    request(n: number): Promise<Recorded> {
      const have = requests[n - 1];
      if (have) return Promise.resolve(have);
      const { promise, resolve } = Promise.withResolvers<Recorded>();
      waiters.set(n, [...(waiters.get(n) ?? []), resolve]);
      return promise;
    },
  };
}

const record = (message: SyncRequest, extra: Partial<Recorded>): Recorded => ({
  message,
  json: toJson(SyncRequestSchema, message, { alwaysEmitImplicit: true }) as JsonObject,
  at: performance.now(),
  ...extra,
});

/** An HTTP control plane serving `POST /api/v1/discovery/sync`. */
export async function startHttpControlPlane(): Promise<FakeControlPlane> {
  const rec = createRecorder();
  let port = 0;
  const serve = () =>
    Bun.serve({
      hostname: "127.0.0.1",
      port,
      async fetch(req) {
        const url = new URL(req.url);
        if (req.method !== "POST" || url.pathname !== "/api/v1/discovery/sync") return new Response("not found", { status: 404 });
        if (req.headers.get("content-type") !== "application/json") return new Response("want application/json", { status: 415 });
        const raw = (await req.json()) as JsonValue;
        let message: SyncRequest;
        try {
          message = fromJson(SyncRequestSchema, raw);
        } catch (err) {
          return new Response(`bad SyncRequest: ${(err as Error).message}`, { status: 400 });
        }
        const authorization = req.headers.get("authorization") ?? undefined;
        const r = record(message, { raw, ...(authorization ? { authorization } : {}) });
        const answer = fake.reply(r, rec.add(r));
        if (answer === "unavailable") return new Response("control plane unavailable", { status: 503 });
        return Response.json(toJson(SyncResponseSchema, create(SyncResponseSchema, answer)));
      },
    });
  let server = serve();
  port = server.port ?? 0;
  const fake: FakeControlPlane = {
    url: `http://127.0.0.1:${port}`,
    requests: rec.requests,
    reply: () => ({ success: true }),
    request: rec.request,
    async down() {
      await server.stop(true);
    },
    async up() {
      server = serve();
    },
    async [Symbol.asyncDispose]() {
      await server.stop(true);
    },
  };
  return fake;
}

/** A gRPC control plane serving `solti.discover.v1.DiscoverService/Sync`. */
/** The gRPC fake; with `tls` (PEM certificate and key) it serves TLS and its url is `grpcs://`. */
export async function startGrpcControlPlane(tls?: { cert: Buffer; key: Buffer }): Promise<FakeControlPlane> {
  const rec = createRecorder();
  const definition = createServiceDefinition(DiscoverService);
  const implementation: grpc.UntypedServiceImplementation = {
    Sync(call: grpc.ServerUnaryCall<Decoded<typeof SyncRequestSchema>, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const req = call.request;
      if (req instanceof DecodeFailure) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: req.message });
        return;
      }
      const authorization = call.metadata.get("authorization")[0]?.toString();
      const r = record(req, authorization ? { authorization } : {});
      const answer = fake.reply(r, rec.add(r));
      if (answer === "unavailable") callback({ code: grpc.status.UNAVAILABLE, details: "control plane unavailable" });
      else callback(null, create(SyncResponseSchema, answer));
    },
  };
  let port = 0;
  let server: grpc.Server;
  const listen = async () => {
    server = new grpc.Server();
    server.addService(definition, implementation);
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        `127.0.0.1:${port}`,
        tls ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false) : grpc.ServerCredentials.createInsecure(),
        (err, p) => (err ? reject(err) : resolve(p)),
      ),
    );
  };
  await listen();
  const fake: FakeControlPlane = {
    url: `${tls ? "grpcs" : "grpc"}://127.0.0.1:${port}`,
    requests: rec.requests,
    reply: () => ({ success: true }),
    request: rec.request,
    async down() {
      server.forceShutdown();
    },
    up: listen,
    async [Symbol.asyncDispose]() {
      server.forceShutdown();
    },
  };
  return fake;
}

/** Both fakes, for suites that run the same scenarios over each transport. */
export const TRANSPORTS = [
  { name: "http", start: startHttpControlPlane },
  { name: "grpc", start: startGrpcControlPlane },
] as const;
