/**
 * Per-call gRPC metrics without touching the handlers: wraps the grpc-js
 * implementation of a bound service so every call reports its method
 * (`package.Service/Method`), final status code and duration, and streaming
 * calls count as open stream subscribers until they end.
 */
import { status as GrpcStatus, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { EventEmitter } from "node:events";

/** What the wrapper reports. */
export interface GrpcCallHooks {
  /** One finished call: `method` is `package.Service/Method`, `code` a status name such as `OK` or `NOT_FOUND`. */
  onCall(method: string, code: string, seconds: number): void;
  /** A streaming call of `method` opened; the returned function is called once when it ends. */
  onStreamOpen?(method: string): () => void;
}

/** A grpc-js service ready for `server.addService` (same shape as `BoundService`). */
export interface ServiceParts {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

/** Status code → its name (`5` → `NOT_FOUND`); unknown numbers → `UNKNOWN`. */
export function grpcCodeName(code: unknown): string {
  const name = typeof code === "number" ? (GrpcStatus as unknown as Record<number, string | undefined>)[code] : undefined;
  return name ?? "UNKNOWN";
}

type Callback = (err: { code?: number } | null, ...rest: unknown[]) => void;
type UnaryLike = (call: unknown, callback: Callback) => void;
type StreamLike = (call: EventEmitter) => void;

/** Wrap every method of `parts` so each call is reported to `hooks`; the definition is unchanged. */
export function instrumentService(parts: ServiceParts, hooks: GrpcCallHooks, now: () => number = () => performance.now()): ServiceParts {
  const implementation: UntypedServiceImplementation = {};
  for (const [name, def] of Object.entries(parts.definition)) {
    const original = parts.implementation[name] ?? parts.implementation[def.originalName ?? ""];
    if (typeof original !== "function") continue;
    const method = def.path.replace(/^\//, "");
    if (!def.responseStream) {
      const fn = original as unknown as UnaryLike;
      const wrapped: UnaryLike = (call, callback) => {
        const start = now();
        fn(call, (err, ...rest) => {
          hooks.onCall(method, err ? grpcCodeName(err.code) : "OK", (now() - start) / 1000);
          callback(err, ...rest);
        });
      };
      implementation[name] = wrapped as unknown as UntypedServiceImplementation[string];
    } else {
      const fn = original as unknown as StreamLike;
      const wrapped: StreamLike = (call) => {
        const start = now();
        const closed = hooks.onStreamOpen?.(method);
        let code = "OK";
        let done = false;
        const finish = (final?: string) => {
          if (done) return;
          done = true;
          closed?.();
          hooks.onCall(method, final ?? code, (now() - start) / 1000);
        };
        call.on("error", (err: { code?: number }) => (code = grpcCodeName(err?.code)));
        call.once("finish", () => finish());
        call.once("cancelled", () => finish("CANCELLED"));
        call.once("close", () => finish());
        fn(call);
      };
      implementation[name] = wrapped as unknown as UntypedServiceImplementation[string];
    }
  }
  return { definition: parts.definition, implementation };
}
