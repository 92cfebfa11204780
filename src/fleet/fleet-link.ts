/**
 * The agent's side of a solti fleet: from the config, a heartbeat that tells
 * the control plane (`--control-plane`) who this agent is and where to reach
 * it (`--advertise`). The one entry point `agent.ts` uses.
 */
import { hostname } from "node:os";
import type { Config } from "../config.ts";
import type { Logger } from "../observability/logger.ts";
import type { Store } from "../store/store.ts";
import type { Backoff } from "../tasks/model.ts";
import { resolveAgentId } from "./agent-id.ts";
import { endpointKindOf, parseControlPlaneUrl } from "./control-plane-url.ts";
import { createGrpcSyncTransport } from "./grpc-sync-transport.ts";
import { createHeartbeat, type LinkState, type Timers } from "./heartbeat.ts";
import { createHttpSyncTransport } from "./http-sync-transport.ts";
import { createSyncRequestBuilder } from "./sync-request.ts";
import type { SyncTransport } from "./sync-transport.ts";

/** The link state plus who we registered as. */
export interface ControlPlaneInfo extends LinkState {
  agentId: string;
  endpoint: string;
}

/** A configured control-plane link. */
export interface FleetLink {
  readonly agentId: string;
  /** The advertised endpoint, known once the gRPC port is bound. */
  readonly endpoint: string;
  /** Start heartbeating (call once the agent serves). */
  start(): void;
  /** For `/api/v1/info` → `controlPlane`. */
  info(): ControlPlaneInfo;
  close(): Promise<void>;
}

export interface FleetLinkOptions {
  config: Pick<Config, "controlPlane" | "controlPlaneToken" | "advertise" | "agentId" | "agentName" | "heartbeatMs" | "grpcAddr" | "tlsCert">;
  store: Pick<Store, "getMeta" | "setMeta">;
  /** The bound gRPC port (read at `start()`, for the default endpoint). */
  grpcPort: () => number;
  /** Agent start, Unix ms. */
  startedAt: number;
  /** Labels sent as `metadata` (default none). */
  labels?: Readonly<Record<string, string>>;
  clock?: () => number;
  random?: () => number;
  timers?: Timers;
  backoff?: Backoff;
  logger?: Logger;
}

/**
 * `undefined` without `--control-plane`. Otherwise parses the URLs (already
 * checked by `parseConfig`; a config built by hand still throws an `Error`
 * naming the flag), resolves the persistent agent id and prepares the
 * heartbeat; nothing is sent until `start()`.
 */
export function createFleetLink(opts: FleetLinkOptions): FleetLink | undefined {
  const { config } = opts;
  if (!config.controlPlane) return undefined;
  const target = parseControlPlaneUrl(config.controlPlane);
  if (config.advertise) endpointKindOf(config.advertise);
  const agentId = resolveAgentId(opts.store, config.agentId);
  const clock = opts.clock ?? Date.now;
  let endpoint = config.advertise ?? "";
  let heartbeat: ReturnType<typeof createHeartbeat> | undefined;
  let closed = false;

  const transport = (): SyncTransport =>
    target.transport === "http"
      ? createHttpSyncTransport({ syncUrl: target.syncUrl, token: config.controlPlaneToken })
      : createGrpcSyncTransport({ address: target.address, tls: target.tls, token: config.controlPlaneToken });

  const idle = (): LinkState => ({ url: target.display, transport: target.transport, state: "connecting", consecutiveFailures: 0 });

  return {
    agentId,
    get endpoint() {
      return endpoint;
    },
    start() {
      if (heartbeat || closed) return;
      endpoint ||= defaultEndpoint(config.grpcAddr.host, opts.grpcPort(), config.tlsCert !== undefined);
      heartbeat = createHeartbeat({
        transport: transport(),
        request: createSyncRequestBuilder({
          id: agentId,
          name: config.agentName ?? hostname(),
          endpoint,
          endpointKind: endpointKindOf(endpoint),
          startedAt: opts.startedAt,
          heartbeatMs: config.heartbeatMs,
          metadata: opts.labels ?? {},
          clock,
        }),
        url: target.display,
        intervalMs: config.heartbeatMs,
        backoff: opts.backoff,
        clock,
        random: opts.random,
        timers: opts.timers,
        logger: opts.logger,
      });
      heartbeat.start();
      opts.logger?.info("joining control plane", { url: target.display, transport: target.transport, agentId, endpoint, heartbeatMs: config.heartbeatMs });
    },
    info: () => ({ ...(heartbeat?.state() ?? idle()), agentId, endpoint }),
    async close() {
      closed = true;
      await heartbeat?.close();
    },
  };
}

/**
 * `grpc://<grpc host>:<grpc port>` as bound (`grpcs://` with TLS); a wildcard listen address
 * (`0.0.0.0`, `::`) is replaced by this host's name, since a control plane
 * cannot dial a wildcard. Use `--advertise` when that name does not resolve.
 */
export function defaultEndpoint(host: string, port: number, tls = false): string {
  const h = host === "" || host === "0.0.0.0" || host === "::" || host === "[::]" ? hostname() : host;
  return `${tls ? "grpcs" : "grpc"}://${h.includes(":") ? `[${h}]` : h}:${port}`;
}
