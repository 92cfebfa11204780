/**
 * The agent's gRPC port. It listens at once, but grpc-js, protobuf-es and the
 * services (`grpc-services.ts`) are loaded on the first connection: an agent
 * driven only over REST never pays their start-up time (≈ 20 ms of a 50 ms
 * start) or memory (≈ 6 MiB). Connections are accepted by `Bun.listen` (node:net
 * and its streams would cost ≈ 2–3 ms more of the start) and handed, as a
 * Duplex (`socket-duplex.ts`), to grpc-js's own HTTP/2 server (TLS included),
 * so the first call waits for the load once and every later one is served as
 * if grpc-js had bound the port itself (docs/api.md, "gRPC port").
 */
import type { Socket, TCPSocketListener } from "bun";
import type { GrpcCallHooks } from "../observability/grpc-instrument.ts";
import type { Caller } from "../tasks/model.ts";
import type { TaskService } from "../tasks/task-service.ts";
import type { GrpcServices } from "./grpc-services.ts";
import type { SocketDuplex } from "./socket-duplex.ts";

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
  /** The services could not be loaded (the connections waiting for them are closed; the next connection tries again). */
  onError?: (err: unknown) => void;
  /**
   * A connection that has not sent the 24 bytes of the HTTP/2 preface (or a
   * TLS ClientHello) by then is closed (default {@link HANDSHAKE_MS}), as the
   * HTTP server closes an idle connection: idle sockets would otherwise hold
   * file descriptors for ever.
   */
  handshakeMs?: number;
  /** A connection without a call for this long is sent GOAWAY and closed (default {@link CONNECTION_IDLE_MS}). */
  connectionIdleMs?: number;
}

/** See {@link GrpcServerOptions.handshakeMs}. */
export const HANDSHAKE_MS = 10_000;
/** See {@link GrpcServerOptions.connectionIdleMs}: five minutes, as many gRPC deployments set `max_connection_idle`. */
export const CONNECTION_IDLE_MS = 5 * 60_000;
/** Length of the HTTP/2 client connection preface; a TLS ClientHello is longer. */
const PREFACE_BYTES = 24;

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
  /**
   * Resolves once no SoltiApi/AgentService stream is open (at once when no
   * client ever connected). A stop waits for it, bounded, before `close`: the
   * streams then end on their own, with their last events.
   */
  idle(): Promise<void>;
  /** Whether grpc-js and the services are loaded (a client has connected). */
  readonly loaded: boolean;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Where the services come from: the module, loaded on demand (a parameter so tests can hold or fail the load). */
export type LoadGrpcServices = () => Promise<Pick<typeof import("./grpc-services.ts"), "createGrpcServices" | "SocketDuplex">>;

/** Per accepted socket: what it sent before the services were loaded, then its Duplex. */
interface Connection {
  early: Buffer[];
  earlyBytes: number;
  duplex?: SocketDuplex;
  closed: boolean;
  /** Bytes received, counted until the handshake is in (then `deadline` is cleared). */
  received: number;
  deadline: ReturnType<typeof setTimeout> | undefined;
}

/** Past this many bytes received before the services are loaded, a socket is paused (the Duplex resumes it). */
const EARLY_BYTES_MAX = 64 * 1024;

/** Split `host:port` / `[v6]:port` into what `Bun.listen` takes. */
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
  let listener: TCPSocketListener<Connection> | undefined;
  let serving = false;
  let loaded: { services: GrpcServices; Duplex: typeof SocketDuplex } | undefined;
  let loading: Promise<NonNullable<typeof loaded>> | undefined;
  let closing: Promise<void> | undefined;
  /** Accepted sockets not closed yet; `close` waits for them, so its last answers reach the clients. */
  const sockets = new Set<Socket<Connection>>();
  let lastClosed: (() => void) | undefined;

  const load = () =>
    (loading ??= loadServices()
      .then(({ createGrpcServices, SocketDuplex }) => {
        const services = createGrpcServices(opts);
        services.setServing(serving);
        loaded = { services, Duplex: SocketDuplex };
        return loaded;
      })
      .catch((err) => {
        loading = undefined;
        opts.onError?.(err);
        throw err;
      }));

  /** Hand the socket to grpc-js, with what it sent while the services loaded. */
  const attach = (socket: Socket<Connection>, l: NonNullable<typeof loaded>) => {
    const conn = socket.data;
    if (conn.closed) return;
    const duplex = new l.Duplex(socket);
    for (const chunk of conn.early) duplex.onSocketData(chunk);
    conn.early = [];
    conn.duplex = duplex;
    l.services.accept(duplex);
  };

  /** A connection that cannot be handed over (reset while the services loaded, a grpc-js error) is reported and dropped. */
  const attachOrDrop = (socket: Socket<Connection>, l: NonNullable<typeof loaded>) => {
    try {
      attach(socket, l);
    } catch (err) {
      socket.data.closed = true;
      socket.terminate();
      opts.onError?.(err);
    }
  };

  const handlers = {
    open(socket: Socket<Connection>) {
      const deadline = setTimeout(() => {
        if (socket.data.received < PREFACE_BYTES) socket.terminate();
      }, opts.handshakeMs ?? HANDSHAKE_MS);
      deadline.unref();
      socket.data = { early: [], earlyBytes: 0, closed: false, received: 0, deadline };
      sockets.add(socket);
      socket.setNoDelay(true);
      if (loaded) attachOrDrop(socket, loaded);
      else load().then((l) => attachOrDrop(socket, l), () => socket.terminate());
    },
    data(socket: Socket<Connection>, chunk: Buffer) {
      const conn = socket.data;
      if (conn.deadline !== undefined) {
        conn.received += chunk.length;
        if (conn.received >= PREFACE_BYTES) {
          clearTimeout(conn.deadline);
          conn.deadline = undefined;
        }
      }
      if (conn.duplex) conn.duplex.onSocketData(chunk);
      else {
        conn.early.push(chunk);
        conn.earlyBytes += chunk.length;
        if (conn.earlyBytes > EARLY_BYTES_MAX) socket.pause();
      }
    },
    drain(socket: Socket<Connection>) {
      socket.data.duplex?.onSocketDrain();
    },
    close(socket: Socket<Connection>) {
      clearTimeout(socket.data.deadline);
      socket.data.closed = true;
      socket.data.duplex?.onSocketClose();
      sockets.delete(socket);
      if (sockets.size === 0) lastClosed?.();
    },
    error(socket: Socket<Connection>, err: Error) {
      socket.data.duplex?.onSocketError(err);
    },
  };

  const close = (graceMs = 5000): Promise<void> => {
    closing ??= (async () => {
      serving = false;
      // No new connections; the open ones are grpc-js's to end (`services.close`).
      listener?.stop(false);
      if (!loading) return;
      const deadline = performance.now() + graceMs;
      const l = await loading.catch(() => undefined);
      await l?.services.close(graceMs);
      // grpc-js is done with its sessions when their last frames (statuses, GOAWAY) are still on
      // the way out: wait for the sockets to close (within the grace), then cut what is left.
      if (sockets.size > 0) {
        const { promise, resolve } = Promise.withResolvers<void>();
        lastClosed = resolve;
        const timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
        await promise;
        clearTimeout(timer);
      }
      for (const socket of sockets) socket.terminate();
    })();
    return closing;
  };

  return {
    async listen(addr) {
      if (closing) throw new Error("grpc server is closed");
      if (listener) throw new Error("grpc server is already listening");
      const { host, port } = hostPort(addr);
      try {
        listener = Bun.listen<Connection>({ hostname: host, port, socket: handlers });
      } catch (err) {
        const code = (err as { code?: string }).code;
        throw new Error(`cannot listen on ${addr}: ${code ?? (err as Error).message}`, { cause: err });
      }
      return listener.port;
    },
    setServing(value) {
      if (closing) return;
      serving = value;
      loaded?.services.setServing(value);
    },
    close,
    idle() {
      return loaded?.services.idle() ?? Promise.resolve();
    },
    get loaded() {
      return loaded !== undefined;
    },
    [Symbol.asyncDispose]: () => close(),
  };
}
