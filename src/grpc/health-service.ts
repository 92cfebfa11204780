/**
 * The standard gRPC health service (`grpc.health.v1.Health`: Check, Watch,
 * List) with the semantics of `grpc-health-check`'s HealthImplementation.
 *
 * It is built on the embedded descriptors in src/gen rather than on that
 * package because the package reads its .proto from node_modules when it is
 * imported, which crashes a compiled binary run away from the build tree.
 */
import { AgentError, clip } from "../errors.ts";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";
import { bindService, type BindOptions, type BoundService } from "./bind-service.ts";

/** Health states of `grpc.health.v1` (generated enum). */
export { ServingStatus };

/** Health state of named services ("" is the whole server) and its gRPC binding. */
export interface HealthService {
  /** Record the status of `service`; Watch streams see the change. */
  setStatus(service: string, status: ServingStatus): void;
  readonly bound: BoundService;
}

/** Create a health service with the given initial statuses; `opts.shutdown` ends open Watch streams. */
export function createHealthService(
  initial: Record<string, ServingStatus> = {},
  opts: Pick<BindOptions, "shutdown"> = {},
): HealthService {
  const statuses = new Map<string, ServingStatus>(Object.entries(initial));
  // One shared "something changed" promise; every Watch waits on it.
  let wake: () => void = () => {};
  let changed = new Promise<void>((r) => (wake = r));

  const nextChange = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        resolve();
      };
      signal.addEventListener("abort", done);
      void changed.then(done);
    });

  async function* watch(service: string, signal: AbortSignal) {
    let last: ServingStatus | undefined;
    while (!signal.aborted) {
      const current = statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
      const waiting = nextChange(signal);
      if (current !== last) {
        last = current;
        yield [{ status: current }];
      }
      await waiting;
    }
  }

  const bound = bindService(Health, {
    check: (req) => {
      const status = statuses.get(req.service);
      if (status === undefined) throw new AgentError("NotFound", `health status unknown for service ${clip(req.service)}`);
      return { status };
    },
    watch: (req, ctx) => watch(req.service, ctx.signal),
    list: () => ({
      statuses: Object.fromEntries([...statuses].map(([name, status]) => [name, { status }])),
    }),
  }, opts);

  return {
    bound,
    setStatus(service, status) {
      statuses.set(service, status);
      const w = wake;
      changed = new Promise<void>((r) => (wake = r));
      w();
    },
  };
}
