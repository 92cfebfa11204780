/**
 * The grpc-js adapter: turns typed, transport-neutral handlers
 * (`(request, ctx) => response` and `(request, ctx) => AsyncIterable<batch>`)
 * into a grpc-js service implementation. It owns what every call shares:
 * authentication, cancellation as an `AbortSignal`, malformed-request and
 * error mapping (`toAgentError` + `grpcStatusOf`), and write backpressure.
 */
import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import {
  Metadata,
  type ServerErrorResponse,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { EventEmitter } from "node:events";
import { AgentError, grpcStatusOf, invalid, toAgentError } from "../errors.ts";
import type { Subscription } from "../logs/subscription.ts";
import type { Caller } from "../tasks/model.ts";
import { createServiceDefinition, DecodeFailure, type Decoded } from "./service-definition.ts";

/** What a handler knows about its call besides the request. */
export interface CallContext {
  caller: Caller;
  /** Request metadata (text entries only; keys are lower-case). */
  metadata: Record<string, string>;
  /** Aborted when the client cancels, the deadline passes or the server shuts the call down. */
  signal: AbortSignal;
}

type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

/**
 * Yields batches; each batch is written message by message, honouring
 * backpressure. An item may be a message or its already encoded bytes (a hot
 * stream encodes its messages itself, skipping reflection-based encoding).
 */
type ServerStreamHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => AsyncIterable<readonly (MessageInitShape<O> | Uint8Array)[]>;

type HandlerOf<M> = M extends { methodKind: "unary"; input: infer I extends DescMessage; output: infer O extends DescMessage }
  ? UnaryHandler<I, O>
  : M extends { methodKind: "server_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? ServerStreamHandler<I, O>
    : never;

/** One handler per RPC of a generated service, keyed by the generated local name (`submitTask`). */
export type ServiceHandlers<S extends GenServiceMethods> = { [K in keyof S]: HandlerOf<S[K]> };

/** `ServiceHandlers` of a generated service constant, e.g. `HandlersOf<typeof SoltiApi>`. */
export type HandlersOf<Svc> = Svc extends GenService<infer S> ? ServiceHandlers<S> : never;

/** What every bound call shares: authentication, internal-error logging, shutdown. */
export interface BindOptions {
  /** Map request metadata to a caller; throws `AgentError` (e.g. Unauthenticated). Absent: auth off. */
  authenticate?: (metadata: Record<string, string>) => Caller;
  /** Called with the correlation id and the original error of every `Internal` failure. */
  onInternal?: (correlationId: string, err: unknown) => void;
  /**
   * When aborted, open server streams end with UNAVAILABLE and the signal of
   * running unary calls aborts, so a graceful shutdown need not wait for them.
   */
  shutdown?: AbortSignal;
}

/** A bound service, ready for `server.addService(definition, implementation)`. */
export interface BoundService {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

/** Text entries of grpc-js metadata as a plain record (first value wins). */
export function metadataRecord(md: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) {
    if (typeof v === "string") out[k] = v;
  }
  return out;
}

/** Error → grpc-js status object; the message is the same text REST puts in its envelope. */
export function statusOf(err: unknown, onInternal?: BindOptions["onInternal"]): ServerErrorResponse {
  const e = toAgentError(err, onInternal);
  const status: ServerErrorResponse = Object.assign(new Error(e.message), { code: grpcStatusOf(e.code), details: e.message });
  if (e.retryAfterMs !== undefined) {
    const md = new Metadata();
    md.set("retry-after-ms", String(e.retryAfterMs));
    status.metadata = md;
  }
  return status;
}

function requestOf<I extends DescMessage>(req: Decoded<I>): MessageShape<I> {
  if (req instanceof DecodeFailure) throw invalid(`malformed request message: ${req.message}`);
  return req;
}

/** Resolve when the stream can take more writes, or when `signal` aborts. */
function drained(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.on("drain", done);
    signal.addEventListener("abort", done);
  });
}

/** An AbortController aborted when the call is cancelled or closed. */
function callSignal(call: EventEmitter & { readonly cancelled: boolean }): AbortController {
  const ac = new AbortController();
  const abort = () => ac.abort();
  call.once("cancelled", abort);
  if (call.cancelled) abort();
  return ac;
}

/**
 * Bind `handlers` to the generated `service`. Every failure — a thrown
 * `AgentError`, an unexpected exception (→ INTERNAL with a correlation id) or
 * request bytes that do not decode (→ INVALID_ARGUMENT) — becomes a gRPC
 * status; nothing escapes to grpc-js.
 */
export function bindService<S extends GenServiceMethods>(
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
  opts: BindOptions = {},
): BoundService {
  const context = (md: Metadata, signal: AbortSignal): CallContext => {
    const metadata = metadataRecord(md);
    return { caller: opts.authenticate ? opts.authenticate(metadata) : {}, metadata, signal };
  };
  const implementation: UntypedServiceImplementation = {};
  for (const m of service.methods) {
    const handler = (handlers as Record<string, unknown>)[m.localName];
    if (typeof handler !== "function") throw new Error(`bindService: no handler for ${service.typeName}.${m.name}`);
    if (m.methodKind === "unary") {
      const h = handler as UnaryHandler<DescMessage, DescMessage>;
      implementation[m.name] = (call: ServerUnaryCall<Decoded<DescMessage>, unknown>, callback: sendUnaryData<unknown>) => {
        const ac = callSignal(call);
        // On shutdown a long poll (WaitTask, RunTask) answers with the current state instead of holding the server.
        const onShutdown = () => ac.abort();
        opts.shutdown?.addEventListener("abort", onShutdown, { once: true });
        (async () => create(m.output, await h(requestOf(call.request), context(call.metadata, ac.signal))))()
          .then(
            (res) => callback(null, res),
            (err: unknown) => callback(statusOf(err, opts.onInternal)),
          )
          .finally(() => opts.shutdown?.removeEventListener("abort", onShutdown));
      };
    } else if (m.methodKind === "server_streaming") {
      const h = handler as ServerStreamHandler<DescMessage, DescMessage>;
      implementation[m.name] = (call: ServerWritableStream<Decoded<DescMessage>, unknown>) => {
        const ac = callSignal(call);
        const onShutdown = () => {
          if (!ac.signal.aborted) call.emit("error", statusOf(new AgentError("Unavailable", "server is shutting down")));
          ac.abort();
        };
        opts.shutdown?.addEventListener("abort", onShutdown, { once: true });
        if (opts.shutdown?.aborted) onShutdown();
        call.once("close", () => {
          opts.shutdown?.removeEventListener("abort", onShutdown);
          ac.abort();
        });
        void (async () => {
          try {
            const batches = h(requestOf(call.request), context(call.metadata, ac.signal));
            for await (const batch of batches) {
              for (const item of batch) {
                if (ac.signal.aborted) return;
                if (!call.write(item instanceof Uint8Array ? item : create(m.output, item))) await drained(call, ac.signal);
              }
              if (ac.signal.aborted) return;
            }
            if (!ac.signal.aborted) call.end();
          } catch (err) {
            if (!ac.signal.aborted) call.emit("error", statusOf(err, opts.onInternal));
          }
        })();
      };
    } else {
      throw new Error(`bindService: ${m.methodKind} RPC ${service.typeName}.${m.name} is not supported`);
    }
  }
  return { definition: createServiceDefinition(service), implementation };
}

/**
 * Adapt a domain subscription to a handler stream: each batch is mapped with
 * `map`, and the subscription is closed when the call's `signal` aborts (a
 * client cancel must not leave a subscriber behind, even while it waits for
 * the next batch) or when the stream ends.
 */
export async function* mapSubscription<T, O>(
  sub: Subscription<T>,
  signal: AbortSignal,
  map: (item: T) => O,
): AsyncIterable<O[]> {
  const close = () => sub.close();
  signal.addEventListener("abort", close, { once: true });
  try {
    if (signal.aborted) return;
    for await (const batch of sub) yield batch.map(map);
  } finally {
    signal.removeEventListener("abort", close);
    sub.close();
  }
}
