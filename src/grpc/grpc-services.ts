/**
 * The gRPC services: `solti.v1.SoltiApi`, `tasklane.v1.AgentService`, the
 * standard health service and server reflection on one grpc-js server, which
 * serves the connections it is handed (`accept`). Loaded by `grpc-server.ts`
 * on the first connection to the agent's gRPC port; nothing else imports it.
 * Messages are capped at 4 MiB both ways (larger → RESOURCE_EXHAUSTED).
 */
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.ts";
import { file_grpc_reflection_v1_reflection } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { file_solti_v1_api, SoltiApi } from "../gen/solti/v1/api_pb.ts";
import { AgentService, file_tasklane_v1_agent } from "../gen/tasklane/v1/agent_pb.ts";
import { instrumentCalls, type ServedMethod } from "../observability/grpc-instrument.ts";
import type { Caller } from "../tasks/model.ts";
import { createAgentServiceHandlers } from "./agent-service.ts";
import { bindService, metadataRecord, statusOf, type BindOptions, type BoundService } from "./bind-service.ts";
import { createHealthService, ServingStatus } from "./health-service.ts";
import { GRPC_MESSAGE_BYTES } from "./encode-task.ts";
import { createReflectionService } from "./reflection-service.ts";
import { CONNECTION_IDLE_MS, PEER_METADATA_KEY, type GrpcServerOptions } from "./grpc-server.ts";
import { createSoltiApiHandlers } from "./solti-api.ts";

export { SocketDuplex } from "./socket-duplex.ts";


/** The services this server offers, by full name (also the health service names). */
export const GRPC_SERVICE_NAMES = [SoltiApi.typeName, AgentService.typeName] as const;

/** Bun's node:http2 session property holding how a stream's write callbacks are deferred. */
const DEFER_WRITE_CALLBACK = "deferWriteCallback";

/**
 * Make HTTP/2 sessions over our `SocketDuplex` call back a stream's writes on
 * the next tick, as they do over a native socket, instead of the next
 * event-loop turn: every session `server` creates from now on (plain, or TLS
 * after its handshake). Returns whether it could (see below).
 *
 * Bun's node:http2 defers a stream's write callback with `setImmediate` when
 * the session's socket is not a native one, and with `process.nextTick`
 * otherwise. grpc-js writes a server stream's next message only once the
 * previous one's callback ran, so a streamed call sent one message per
 * event-loop turn, and the Duplex made one socket write of each: ≈ 140 k
 * messages/s against ≈ 1 M over a native socket (bench/README.md, benchmark
 * 3). Backpressure is unchanged: past its queue limit the Duplex holds write
 * callbacks until the kernel has taken the queue.
 *
 * Both sides are internals — Bun's session property keyed by
 * `Symbol("deferWriteCallback")`, grpc-js's `http2Servers` map — so when
 * either is missing this changes nothing and streams are only slower (tested
 * in test/grpc/stream-writes.test.ts, which fails when it stops applying).
 */
export function deferWritesLikeNative(server: Server): boolean {
  return hookHttp2Servers(server, patchedServers, (h2) =>
    h2.on("session", (session: object) => {
      const key = Object.getOwnPropertySymbols(session).find((k) => k.description === DEFER_WRITE_CALLBACK);
      const holder = session as Record<symbol, unknown>;
      if (key !== undefined && holder[key] === setImmediate) holder[key] = process.nextTick;
    }),
  );
}
const patchedServers = new WeakSet<object>();

/**
 * Keep every `authorization` header of a gRPC request, not only the first.
 * Bun's node:http2 hands a stream's `headers` over with the first value of a
 * repeated header (all of them only in `rawHeaders`), and grpc-js builds the
 * call's metadata from `headers`: a call with two tokens acted as the first,
 * and a bad second token passed unseen, where REST refuses both with 401.
 * Before grpc-js sees a stream, repeated values are joined with ", " (as HTTP
 * joins repeated headers); `metadataRecord` and the authenticator then refuse
 * it as REST does. Returns whether it hooked a server (grpc-js's `http2Servers`
 * is internal; tested in test/security/grpc-auth.test.ts, which fails when it
 * stops applying).
 */
export function joinRepeatedAuthorization(server: Server): boolean {
  return hookHttp2Servers(server, authJoinedServers, (h2) =>
    h2.prependListener("stream", (_stream: unknown, headers: Record<string, unknown>, _flags: unknown, raw: unknown) => {
      if (!Array.isArray(raw)) return;
      const values: string[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2) if (String(raw[i]).toLowerCase() === "authorization") values.push(String(raw[i + 1]));
      if (values.length > 1) headers.authorization = values.join(", ");
    }),
  );
}
const authJoinedServers = new WeakSet<object>();

/** `hook` once on each node:http2 server of `server` not yet in `hooked`; whether this call hooked any. */
function hookHttp2Servers(server: Server, hooked: WeakSet<object>, hook: (h2: EventEmitter) => void): boolean {
  let any = false;
  for (const h2 of http2ServersOf(server)) {
    if (hooked.has(h2)) continue;
    hooked.add(h2);
    hook(h2);
    any = true;
  }
  return any;
}

/** The node:http2 servers of `server` (grpc-js's `http2Servers` map, internal: none when it is missing). */
function http2ServersOf(server: Server): EventEmitter[] {
  const servers = (server as unknown as { http2Servers?: Map<unknown, unknown> }).http2Servers;
  if (!(servers instanceof Map)) return [];
  return [...servers.keys()].filter((h2): h2 is EventEmitter => h2 instanceof EventEmitter);
}

/**
 * Wrap every method of `bound`: record the peer address under
 * `PEER_METADATA_KEY` and, when `authenticate` is given, check the caller
 * before the service sees the call (reflection has no bindService of its own).
 */
function guardService(bound: BoundService, authenticate?: (metadata: Record<string, string>) => Caller): BoundService {
  const implementation: BoundService["implementation"] = {};
  for (const [name, handler] of Object.entries(bound.implementation)) {
    const guarded = (call: any, callback?: any) => {
      call.metadata.set(PEER_METADATA_KEY, call.getPeer());
      if (authenticate) {
        try {
          authenticate(metadataRecord(call.metadata));
        } catch (err) {
          if (typeof callback === "function") callback(statusOf(err));
          else call.emit("error", statusOf(err));
          return;
        }
      }
      (handler as (call: any, callback?: any) => void)(call, callback);
    };
    implementation[name] = guarded as (typeof implementation)[string];
  }
  return { definition: bound.definition, implementation };
}

/** The grpc-js server behind the agent's gRPC port (see `GrpcServer` for the meaning of each method). */
export interface GrpcServices {
  /** Serve one accepted connection (plaintext TCP, or TLS when `tls` was given). Ignored once closing. */
  accept(connection: Duplex): void;
  setServing(serving: boolean): void;
  close(graceMs?: number): Promise<void>;
  /** Resolves once no SoltiApi/AgentService stream is open (health Watch streams not counted). */
  idle(): Promise<void>;
}

/** Create the server with every service added; it serves the connections passed to `accept`. */
export function createGrpcServices(opts: GrpcServerOptions): GrpcServices {
  const shutdown = new AbortController();
  // Open API streams, for `idle()`: a stop lets them deliver their last events before `close` cuts them.
  let openStreams = 0;
  const idleWaiters: (() => void)[] = [];
  const onStream = () => {
    openStreams++;
    return () => {
      if (--openStreams === 0) for (const wake of idleWaiters.splice(0)) wake();
    };
  };
  const bindOpts: BindOptions = { onInternal: opts.onInternal, shutdown: shutdown.signal, onStream };
  if (opts.authenticate) bindOpts.authenticate = opts.authenticate;

  const server = new Server({
    "grpc.max_receive_message_length": GRPC_MESSAGE_BYTES,
    "grpc.max_send_message_length": GRPC_MESSAGE_BYTES,
    "grpc.max_connection_idle_ms": opts.connectionIdleMs ?? CONNECTION_IDLE_MS,
  });
  const services = [
    bindService(SoltiApi, createSoltiApiHandlers(opts.service), bindOpts),
    bindService(AgentService, createAgentServiceHandlers(opts), bindOpts),
  ].map((s) => guardService(s));
  // Health Watch streams see NOT_SERVING when a stop begins and keep it through the drain; they
  // end (UNAVAILABLE) after the API's calls, when the server closes.
  const healthEnd = new AbortController();
  const health = createHealthService({}, { shutdown: healthEnd.signal });
  services.push(health.bound);
  const reflection = createReflectionService([
    file_solti_v1_api,
    file_tasklane_v1_agent,
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ]);
  services.push(...reflection.services.map((s) => guardService(s, opts.authenticate)));
  const served: ServedMethod[] = [];
  for (const s of services) {
    server.addService(s.definition, s.implementation);
    for (const m of Object.values(s.definition)) served.push({ path: m.path, responseStream: m.responseStream });
  }

  const setServing = (serving: boolean) => {
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const name of ["", ...GRPC_SERVICE_NAMES]) health.setStatus(name, status);
  };
  setServing(false);

  // grpc-js's own http2 server (TLS or not) for the connections handed over; made on the first one.
  let injector: ReturnType<Server["createConnectionInjector"]> | undefined;
  let closing: Promise<void> | undefined;

  const close = (graceMs = 5000): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      setServing(false);
      shutdown.abort();
      // After the turn in which the Watch streams wrote the NOT_SERVING just set (when it was new).
      setImmediate(() => healthEnd.abort());
      if (!injector) {
        server.forceShutdown();
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return closing;
  };

  return {
    accept(connection) {
      if (closing) {
        connection.destroy();
        return;
      }
      if (!injector) {
        injector = server.createConnectionInjector(
          opts.tls
            ? ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(opts.tls.cert), private_key: Buffer.from(opts.tls.key) }], false)
            : ServerCredentials.createInsecure(),
        );
        deferWritesLikeNative(server);
        joinRepeatedAuthorization(server);
        const { instrument } = opts;
        if (instrument) for (const h2 of http2ServersOf(server)) instrumentCalls(h2, served, instrument);
      }
      injector.injectConnection(connection);
    },
    setServing(serving) {
      if (!closing) setServing(serving);
    },
    close,
    idle() {
      return openStreams === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
