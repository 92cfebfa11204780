/**
 * Builds the heartbeat message `solti.discover.v1.SyncRequest`: who the agent
 * is, where to reach it and what it can do.
 */
import { create } from "@bufbuild/protobuf";
import { release, type as osType } from "node:os";
import { EndpointType, SyncRequestSchema, type SyncRequest } from "../gen/solti/discover/v1/discovery_pb.ts";
import { archName, platformName } from "../platform.ts";
import type { EndpointKind } from "./control-plane-url.ts";

/** Agent API version announced to the control plane (solti.v1). */
export const AGENT_API_VERSION = 1;

/** `heartbeat_interval_s` is an int32; `--heartbeat` is bounded well below, this is a last guard. */
const INT32_MAX = 2 ** 31 - 1;

/** Optional solti v1 features this agent offers, as announced in heartbeats. */
export const SYNC_CAPABILITIES: readonly string[] = ["task_runs", "task_delete"];


/** Kernel name and release, e.g. `Linux 6.8.0-45-generic`. */
export function osDescription(): string {
  return `${osType()} ${release()}`;
}

export interface SyncRequestInput {
  id: string;
  name: string;
  endpoint: string;
  endpointKind: EndpointKind;
  /** Agent start, Unix ms. */
  startedAt: number;
  heartbeatMs: number;
  metadata: Readonly<Record<string, string>>;
  /** Unix ms now (default `Date.now`). */
  clock?: () => number;
  /** Defaults: this host's. */
  os?: string;
  arch?: string;
  platform?: string;
}

/**
 * A function producing a fresh `SyncRequest` per heartbeat (`ts` and
 * `uptimeSeconds` move, everything else is fixed). `heartbeatIntervalS` is the
 * interval rounded up to whole seconds, at least 1 (and within int32).
 */
export function createSyncRequestBuilder(input: SyncRequestInput): () => SyncRequest {
  const clock = input.clock ?? Date.now;
  const fixed = {
    id: input.id,
    name: input.name,
    endpoint: input.endpoint,
    os: input.os ?? osDescription(),
    arch: input.arch ?? archName(),
    platform: input.platform ?? platformName(),
    metadata: { ...input.metadata },
    endpointType: input.endpointKind === "grpc" ? EndpointType.GRPC : EndpointType.HTTP,
    apiVersion: AGENT_API_VERSION,
    heartbeatIntervalS: Math.min(Math.max(1, Math.ceil(input.heartbeatMs / 1000)), INT32_MAX),
    capabilities: [...SYNC_CAPABILITIES],
  };
  return () => {
    const now = clock();
    return create(SyncRequestSchema, {
      ...fixed,
      metadata: { ...fixed.metadata },
      capabilities: [...fixed.capabilities],
      uptimeSeconds: BigInt(Math.max(0, Math.floor((now - input.startedAt) / 1000))),
      ts: BigInt(Math.floor(now / 1000)),
    });
  };
}
