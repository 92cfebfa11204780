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
import type { Caller } from "../tasks/model.ts";
import type { TaskService } from "../tasks/task-service.ts";
import { createAgentServiceHandlers } from "./agent-service.ts";
import { bindService, type BindOptions } from "./bind-service.ts";
import { createHealthService, ServingStatus } from "./health-service.ts";
import { createReflectionService } from "./reflection-service.ts";
import { createSoltiApiHandlers } from "./solti-api.ts";

/** Maximum gRPC message size, both directions (CONTRACT §5). */
export const GRPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The services this server offers, by full name (also the health service names). */
export const GRPC_SERVICE_NAMES = [SoltiApi.typeName, AgentService.typeName] as const;

export interface GrpcServerOptions {
  service: TaskService;
  /** Map request metadata (e.g. `authorization`) to a caller; throws `AgentError`. Absent: auth off. */
  authenticate?: (metadata: Record<string, string>) => Caller;
  version: string;
  /** The REST info document, served by AgentService.GetInfo. */
  info: () => unknown;
  /** Log hook for `Internal` errors: correlation id (repeated in the status message) and the cause. */
  onInternal?: (correlationId: string, err: unknown) => void;
}

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
  ];
  const health = createHealthService({}, { shutdown: shutdown.signal });
  services.push(health.bound);
  const reflection = createReflectionService([
    file_solti_v1_api,
    file_tasklane_v1_agent,
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ]);
  services.push(...reflection.services);
  for (const s of services) server.addService(s.definition, s.implementation);

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
        server.bindAsync(addr, ServerCredentials.createInsecure(), (err, port) => {
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
