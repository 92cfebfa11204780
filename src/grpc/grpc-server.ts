/**
 * The gRPC transport: `solti.v1.SoltiApi`, `tasklane.v1.AgentService`, the
 * standard health service and server reflection on one grpc-js server.
 * Messages are capped at 4 MiB both ways (larger → RESOURCE_EXHAUSTED).
 */
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.ts";
import { file_grpc_reflection_v1_reflection } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { file_solti_v1_api, SoltiApi } from "../gen/solti/v1/api_pb.ts";
import { AgentService, file_tasklane_v1_agent } from "../gen/tasklane/v1/agent_pb.ts";
import { instrumentService, type GrpcCallHooks } from "../observability/grpc-instrument.ts";
import type { Caller } from "../tasks/model.ts";
import type { TaskService } from "../tasks/task-service.ts";
import { createAgentServiceHandlers } from "./agent-service.ts";
import { bindService, metadataRecord, statusOf, type BindOptions, type BoundService } from "./bind-service.ts";
import { createHealthService, ServingStatus } from "./health-service.ts";
import { createReflectionService } from "./reflection-service.ts";
import { createSoltiApiHandlers } from "./solti-api.ts";

/** Maximum gRPC message size, both directions (CONTRACT §5). */
export const GRPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The services this server offers, by full name (also the health service names). */
export const GRPC_SERVICE_NAMES = [SoltiApi.typeName, AgentService.typeName] as const;

/**
 * Metadata key the server sets (overwriting any sent by the client) to the
 * caller's address, so `authenticate` can rate-limit failed attempts per address.
 */
export const PEER_METADATA_KEY = "x-tasklane-peer";

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

/** Dependencies of the gRPC server. */
export interface GrpcServerOptions {
  service: TaskService;
  /** Map request metadata (e.g. `authorization`) to a caller; throws `AgentError`. Absent: auth off. */
  authenticate?: (metadata: Record<string, string>) => Caller;
  version: string;
  /** The REST info document, served by AgentService.GetInfo. */
  info: () => unknown;
  /** Log hook for `Internal` errors: correlation id (repeated in the status message) and the cause. */
  onInternal?: (correlationId: string, err: unknown) => void;
  /** Per-call hooks (metrics): method, status code and duration of every call; open streams. */
  instrument?: GrpcCallHooks;
  /** PEM certificate chain and private key: serve TLS instead of plaintext. */
  tls?: { cert: string | Uint8Array; key: string | Uint8Array };
}

/** A gRPC server: `listen`, flip health with `setServing`, then `close`. */
export interface GrpcServer {
  /** Bind `host:port` (port 0 picks a free one) and resolve with the bound port. */
  listen(addr: string): Promise<number>;
  /** Health of "" and of every service: SERVING or NOT_SERVING. Starts NOT_SERVING. */
  setServing(serving: boolean): void;
  /**
   * Stop: health NOT_SERVING, no new calls, open streams end with UNAVAILABLE,
   * in-flight unary calls get `graceMs` (default 5000) before being cancelled.
   * Idempotent.
   */
  close(graceMs?: number): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * An IP literal bound through grpc-js's `ipv4:`/`ipv6:` resolver instead of
 * its default DNS resolver, which costs ≈ 10 ms of start-up to resolve what
 * is already an address (bench/README.md, benchmark 10). Names stay as given.
 */
export function bindTarget(addr: string): string {
  if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(addr)) return `ipv4:${addr}`;
  if (/^\[[0-9a-fA-F:.]+\]:\d+$/.test(addr)) return `ipv6:${addr}`;
  return addr;
}

/** Create the gRPC server; nothing listens until `listen`. */
export function createGrpcServer(opts: GrpcServerOptions): GrpcServer {
  const shutdown = new AbortController();
  const bindOpts: BindOptions = { onInternal: opts.onInternal, shutdown: shutdown.signal };
  if (opts.authenticate) bindOpts.authenticate = opts.authenticate;

  const server = new Server({
    "grpc.max_receive_message_length": GRPC_MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": GRPC_MAX_MESSAGE_BYTES,
  });
  const services = [
    bindService(SoltiApi, createSoltiApiHandlers(opts.service), bindOpts),
    bindService(AgentService, createAgentServiceHandlers(opts), bindOpts),
  ].map((s) => guardService(s));
  const health = createHealthService({}, { shutdown: shutdown.signal });
  services.push(health.bound);
  const reflection = createReflectionService([
    file_solti_v1_api,
    file_tasklane_v1_agent,
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ]);
  services.push(...reflection.services.map((s) => guardService(s, opts.authenticate)));
  for (const s of services) {
    const parts = opts.instrument ? instrumentService(s, opts.instrument) : s;
    server.addService(parts.definition, parts.implementation);
  }

  const setServing = (serving: boolean) => {
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const name of ["", ...GRPC_SERVICE_NAMES]) health.setStatus(name, status);
  };
  setServing(false);

  let listening = false;
  let closing: Promise<void> | undefined;

  const close = (graceMs = 5000): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      setServing(false);
      shutdown.abort();
      if (!listening) {
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
    listen(addr) {
      if (closing) return Promise.reject(new Error("grpc server is closed"));
      return new Promise((resolve, reject) => {
        const credentials = opts.tls
          ? ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(opts.tls.cert), private_key: Buffer.from(opts.tls.key) }], false)
          : ServerCredentials.createInsecure();
        server.bindAsync(bindTarget(addr), credentials, (err, port) => {
          if (err) {
            reject(err);
            return;
          }
          listening = true;
          resolve(port);
        });
      });
    },
    setServing(serving) {
      if (!closing) setServing(serving);
    },
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}
