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
import { AgentError, clip, grpcStatusOf, invalid, toAgentError } from "../errors.ts";
import type { Subscription } from "../logs/subscription.ts";
import type { Caller } from "../tasks/model.ts";
import { framingSupported, MessageFramer } from "./framed-messages.ts";
import { createServiceDefinition, DecodeFailure, type Decoded } from "./service-definition.ts";

/** Longest `grpc-message` the agent sends (UTF-16 units); HTTP/2 peers refuse header blocks past 16–64 KiB. */
const MAX_STATUS_MESSAGE = 4096;

/** The status message of calls ended because the agent stops. */
const SHUTTING_DOWN = "server is shutting down";

/** The error of a call ended because the agent stops (`UNAVAILABLE`: reconnect). */
export function agentStopping(): AgentError {
  return new AgentError("Unavailable", SHUTTING_DOWN);
}

/** What a handler knows about its call besides the request. */
export interface CallContext {
  caller: Caller;
  /** Request metadata (text entries only; keys are lower-case). */
  metadata: Record<string, string>;
  /** Aborted when the client cancels, the deadline passes or the server shuts the call down. */
  signal: AbortSignal;
}

/**
 * Answers with a message, or with its already encoded bytes (a hot read path
 * encodes its response itself, skipping `create()` and reflection-based
 * encoding). May answer synchronously.
 */
type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => Promise<MessageInitShape<O> | Uint8Array> | MessageInitShape<O> | Uint8Array;

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
  /** A server stream's handler started; the returned function is called exactly once, when the agent is done with it (ended, failed or cancelled). */
  onStream?: () => () => void;
}

/** A bound service, ready for `server.addService(definition, implementation)`. */
export interface BoundService {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

/**
 * Text entries of grpc-js metadata as a plain record (first value wins), except
 * `authorization`: several values are joined with ", " as HTTP joins repeated
 * headers, so two tokens are refused (401 on REST, UNAUTHENTICATED here) and a
 * value a gateway appends can never be shadowed by one the client put first.
 */
export function metadataRecord(md: Metadata): Record<string, string> {
  // getMap() returns a fresh object (first value per key); drop the binary (`-bin`) entries in place.
  const map = md.getMap();
  for (const k in map) {
    if (typeof map[k] !== "string") delete map[k];
  }
  const auth = md.get("authorization");
  if (auth.length > 1) map.authorization = auth.map(String).join(", ");
  return map as Record<string, string>;
}

/** Error → grpc-js status object; the message is the same text REST puts in its envelope. */
export function statusOf(err: unknown, onInternal?: BindOptions["onInternal"]): ServerErrorResponse {
  const e = toAgentError(err, onInternal);
  // The message travels in a trailer: bounded, whatever a caller managed to put into it.
  const details = clip(e.message, MAX_STATUS_MESSAGE);
  const status: ServerErrorResponse = Object.assign(new Error(details), { code: grpcStatusOf(e.code), details });
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

/**
 * Messages a server stream writes before it lets the event loop turn. Write
 * callbacks come on the next tick (`deferWritesLikeNative`), so a client with
 * wide HTTP/2 windows could otherwise take a long batch in one turn while every
 * other connection waits (≈ 1–2 µs per message).
 */
export const STREAM_WRITES_PER_TURN = 512;

/**
 * Counts the writes of one event-loop turn: `spend()` says when `limit` were
 * made without the loop turning (a wait for `drain` may or may not have let it
 * turn; a timer armed with each count tells).
 */
export class TurnBudget {
  private spent = 0;
  private turned = false;

  constructor(private readonly limit: number) {
    this.arm();
  }

  private arm(): void {
    this.turned = false;
    setImmediate(() => {
      this.turned = true;
    });
  }

  /** Count one write; true when the turn's budget is used up (then `await yield()`). */
  spend(): boolean {
    if (this.turned) {
      this.spent = 0;
      this.arm();
    }
    return ++this.spent >= this.limit;
  }

  /** Let the event loop turn, and start a new count. */
  async yield(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.spent = 0;
    this.arm();
  }
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

/**
 * The signal of a unary call, created on first use: most handlers never look
 * at it, and grpc-js emits `cancelled` when *every* call's stream closes, so
 * an eager controller would be aborted (building an `AbortError`) per call.
 * Once `settle()` has run the call is over: listeners are removed, and a
 * signal asked for afterwards is already aborted.
 */
class UnaryCallSignal {
  private controller: AbortController | undefined;
  private settled = false;
  private readonly abort = () => this.controller?.abort();

  constructor(
    private readonly call: EventEmitter & { readonly cancelled: boolean },
    private readonly shutdown: AbortSignal | undefined,
  ) {}

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.settled || this.call.cancelled || this.shutdown?.aborted) {
        this.controller.abort();
      } else {
        this.call.once("cancelled", this.abort);
        // On shutdown a long poll (WaitTask, RunTask) answers with the current state instead of holding the server.
        this.shutdown?.addEventListener("abort", this.abort, { once: true });
      }
    }
    return this.controller.signal;
  }

  /** The handler has answered: stop listening. */
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    if (this.controller === undefined) return;
    this.call.off("cancelled", this.abort);
    this.shutdown?.removeEventListener("abort", this.abort);
  }
}

function isPromiseLike<T>(v: T | PromiseLike<T>): v is PromiseLike<T> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
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
  // `scope.signal` is read when the handler reads `ctx.signal` (a unary call's is created on first use).
  const context = (md: Metadata, scope: { readonly signal: AbortSignal }): CallContext => {
    const metadata = metadataRecord(md);
    return {
      caller: opts.authenticate ? opts.authenticate(metadata) : {},
      metadata,
      get signal() {
        return scope.signal;
      },
    };
  };
  const implementation: UntypedServiceImplementation = {};
  for (const m of service.methods) {
    const handler = (handlers as Record<string, unknown>)[m.localName];
    if (typeof handler !== "function") throw new Error(`bindService: no handler for ${service.typeName}.${m.name}`);
    if (m.methodKind === "unary") {
      const h = handler as UnaryHandler<DescMessage, DescMessage>;
      implementation[m.name] = (call: ServerUnaryCall<Decoded<DescMessage>, unknown>, callback: sendUnaryData<unknown>) => {
        const scope = new UnaryCallSignal(call, opts.shutdown);
        const fail = (err: unknown) => {
          scope.settle();
          callback(statusOf(err, opts.onInternal));
        };
        const answer = (res: MessageInitShape<DescMessage> | Uint8Array) => {
          scope.settle();
          let out: unknown;
          try {
            out = res instanceof Uint8Array ? res : create(m.output, res);
          } catch (err) {
            callback(statusOf(err, opts.onInternal));
            return;
          }
          callback(null, out);
        };
        let result: ReturnType<typeof h>;
        try {
          // The caller first: a call without a valid token is refused before its bytes are decoded.
          const ctx = context(call.metadata, scope);
          result = h(requestOf(call.request), ctx);
        } catch (err) {
          fail(err);
          return;
        }
        // A synchronous answer goes out in this tick, like a bare grpc-js handler's.
        if (isPromiseLike(result)) result.then(answer, fail);
        else answer(result);
      };
    } else if (m.methodKind === "server_streaming") {
      const h = handler as ServerStreamHandler<DescMessage, DescMessage>;
      implementation[m.name] = (call: ServerWritableStream<Decoded<DescMessage>, unknown>) => {
        const ac = callSignal(call);
        const served = opts.onStream?.();
        const onShutdown = () => {
          // A call the handler already ended (OK or an error) keeps its status while its last messages go out.
          if (!ac.signal.aborted && !call.writableEnded) call.emit("error", statusOf(agentStopping()));
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
            const ctx = context(call.metadata, ac); // the caller before the request's bytes, as for unary calls
            const batches = h(requestOf(call.request), ctx);
            const turns = new TurnBudget(STREAM_WRITES_PER_TURN);
            // Encoded messages go out framed together, one write per batch (or per turn's budget).
            const framer = new MessageFramer();
            /** Hand the framed messages to grpc-js; false when it asks to wait for `drain` (as `call.write`). */
            const flush = () => framer.size === 0 || call.write(framer.take());
            for await (const batch of batches) {
              for (const item of batch) {
                if (ac.signal.aborted) return;
                if (framingSupported && item instanceof Uint8Array && MessageFramer.fits(item)) {
                  if (!framer.add(item)) {
                    if (!flush()) await drained(call, ac.signal);
                    framer.add(item);
                  }
                } else {
                  if (!flush()) await drained(call, ac.signal);
                  if (!call.write(item instanceof Uint8Array ? item : create(m.output, item))) await drained(call, ac.signal);
                }
                if (turns.spend()) {
                  if (!flush()) await drained(call, ac.signal);
                  await turns.yield();
                }
              }
              if (ac.signal.aborted) return;
              if (!flush()) await drained(call, ac.signal);
            }
            if (!ac.signal.aborted) call.end();
          } catch (err) {
            if (!ac.signal.aborted) call.emit("error", statusOf(err, opts.onInternal));
          } finally {
            served?.();
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
 *
 * A subscription that ends without being `complete` (the agent shut its
 * source as it stops: a log whose task is not over, any watch) ends the call
 * with `cutError()` after its last event — `agentStopping()` tells the client
 * to reconnect — or OK when that returns undefined.
 */
export async function* mapSubscription<T, O>(
  sub: Subscription<T>,
  signal: AbortSignal,
  map: (item: T) => O,
  cutError: () => Error | undefined,
): AsyncIterable<O[]> {
  const close = () => sub.close();
  signal.addEventListener("abort", close, { once: true });
  try {
    if (signal.aborted) return;
    for await (const batch of sub) yield batch.map(map);
    const err = signal.aborted || sub.complete === true ? undefined : cutError();
    if (err !== undefined) throw err;
  } finally {
    signal.removeEventListener("abort", close);
    sub.close();
  }
}
