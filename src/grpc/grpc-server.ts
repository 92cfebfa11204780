/**
 * The agent's gRPC port. It listens at once, but grpc-js, protobuf-es and the
 * services (`grpc-services.ts`) are loaded on the first connection: an agent
 * driven only over REST never pays their start-up time (≈ 20 ms of a 50 ms
 * start) or memory (≈ 6 MiB). Connections are accepted by a plain TCP
 * listener and handed to grpc-js's own HTTP/2 server (TLS included), so the
 * first call waits for the load once and every later one is served as if
 * grpc-js had bound the port itself (docs/api.md, "gRPC port").
 */
import { createServer, type Socket } from "node:net";
import type { GrpcCallHooks } from "../observability/grpc-instrument.ts";
import type { Caller } from "../tasks/model.ts";
import type { TaskService } from "../tasks/task-service.ts";
import type { GrpcServices } from "./grpc-services.ts";

/**
 * Metadata key the server sets (overwriting any sent by the client) to the
 * caller's address, so `authenticate` can rate-limit failed attempts per address.
 */
export const PEER_METADATA_KEY = "x-tasklane-peer";

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
  /** The port failed: the services could not be loaded (the connection that asked is closed), or accepting failed. */
  onError?: (err: unknown) => void;
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
  /** Whether grpc-js and the services are loaded (a client has connected). */
  readonly loaded: boolean;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Where the services come from: the module, loaded on demand (a parameter so tests can hold or fail the load). */
export type LoadGrpcServices = () => Promise<Pick<typeof import("./grpc-services.ts"), "createGrpcServices">>;

/** Split `host:port` / `[v6]:port` into what `net.Server.listen` takes. */
function hostPort(addr: string): { host: string; port: number } {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(addr);
  if (!m) throw new Error(`invalid gRPC address ${JSON.stringify(addr)}: expected host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * Create the gRPC server; nothing listens until `listen`, nothing is loaded
 * until a client connects. A failed load is reported to `onError`, closes the
 * connections that waited for it, and is tried again by the next connection.
 */
export function createGrpcServer(opts: GrpcServerOptions, loadServices: LoadGrpcServices = () => import("./grpc-services.ts")): GrpcServer {
  const listener = createServer();
  let serving = false;
  let services: GrpcServices | undefined;
  let loading: Promise<GrpcServices> | undefined;
  let closing: Promise<void> | undefined;

  const load = (): Promise<GrpcServices> =>
    (loading ??= loadServices()
      .then(({ createGrpcServices }) => {
        const s = createGrpcServices(opts);
        s.setServing(serving);
        services = s;
        return s;
      })
      .catch((err) => {
        loading = undefined;
        opts.onError?.(err);
        throw err;
      }));

  listener.on("connection", (socket: Socket) => {
    if (services) {
      services.accept(socket);
      return;
    }
    // Until grpc-js reads it, the socket has no 'data' listener: what the client sends stays buffered.
    const dropped = () => {};
    socket.on("error", dropped);
    load().then(
      (s) => {
        socket.off("error", dropped);
        if (socket.destroyed) return;
        s.accept(socket);
      },
      () => socket.destroy(),
    );
  });

  const close = (graceMs = 5000): Promise<void> => {
    closing ??= (async () => {
      serving = false;
      // No new connections; the listener's close callback would wait for the served ones, which `s.close` ends.
      if (listener.listening) listener.close();
      if (!loading) return;
      const s = await loading.catch(() => undefined);
      await s?.close(graceMs);
    })();
    return closing;
  };

  return {
    async listen(addr) {
      if (closing) throw new Error("grpc server is closed");
      const { host, port } = hostPort(addr);
      return new Promise((resolve, reject) => {
        listener.once("error", reject);
        listener.listen({ host, port }, () => {
          listener.off("error", reject);
          listener.on("error", (err) => opts.onError?.(err));
          resolve((listener.address() as { port: number }).port);
        });
      });
    },
    setServing(value) {
      if (closing) return;
      serving = value;
      services?.setServing(value);
    },
    close,
    get loaded() {
      return services !== undefined;
    },
    [Symbol.asyncDispose]: () => close(),
  };
}
