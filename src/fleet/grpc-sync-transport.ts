/**
 * Heartbeats over gRPC: unary `solti.discover.v1.DiscoverService/Sync` with
 * the binary codecs of the generated schemas. The bearer token travels as
 * `authorization` metadata. `grpcs://` trusts what `https://` trusts: the
 * bundled root certificates plus the PEM file named by `NODE_EXTRA_CA_CERTS`.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, status as Status, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { DiscoverService, SyncRequestSchema, SyncResponseSchema, type SyncRequest, type SyncResponse } from "../gen/solti/discover/v1/discovery_pb.ts";
import { clipDetail, SyncFailure, type SyncTransport } from "./sync-transport.ts";

export interface GrpcSyncTransportOptions {
  /** `host:port`. */
  address: string;
  tls: boolean;
  token?: string;
  /** Deadline of one call (default 10 s). */
  timeoutMs?: number;
  /** Environment read for `NODE_EXTRA_CA_CERTS` (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * TLS credentials with the roots `https://` heartbeats trust: grpc-js alone
 * reads only its own `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`, so a private CA given
 * to the agent with `NODE_EXTRA_CA_CERTS` is added here. Without it, grpc-js's
 * defaults. Throws `SyncFailure` when the file cannot be read.
 */
function tlsCredentials(env: Readonly<Record<string, string | undefined>> = process.env): ChannelCredentials {
  const extra = env.NODE_EXTRA_CA_CERTS;
  if (!extra) return credentials.createSsl();
  let pem: string;
  try {
    pem = readFileSync(extra, "utf8");
  } catch (err) {
    throw new SyncFailure(`cannot read NODE_EXTRA_CA_CERTS ${JSON.stringify(clipDetail(extra))}: ${clipDetail((err as Error).message)}`);
  }
  return credentials.createSsl(Buffer.from([...rootCertificates, pem].join("\n")));
}

const SYNC_PATH = `/${DiscoverService.typeName}/${DiscoverService.method.sync.name}`;
const serialize = (req: SyncRequest): Buffer => Buffer.from(toBinary(SyncRequestSchema, req));
const deserialize = (bytes: Buffer): SyncResponse => fromBinary(SyncResponseSchema, bytes);

/**
 * Create the gRPC transport. The channel is opened lazily and dropped after a
 * failed call, so the next attempt dials afresh on the heartbeat's own backoff
 * schedule instead of grpc-js's reconnect backoff.
 */
export function createGrpcSyncTransport(opts: GrpcSyncTransportOptions): SyncTransport {
  let client: Client | undefined;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const channel = () => {
    client ??= new Client(opts.address, opts.tls ? tlsCredentials(opts.env) : credentials.createInsecure(), {
      "grpc.max_receive_message_length": 4 * 1024 * 1024,
      "grpc.max_send_message_length": 4 * 1024 * 1024,
    });
    return client;
  };
  const drop = () => {
    client?.close();
    client = undefined;
  };

  return {
    kind: "grpc",
    sync(req, signal) {
      const md = new Metadata();
      if (opts.token) md.set("authorization", `Bearer ${opts.token}`);
      let c: Client;
      try {
        c = channel();
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise<SyncResponse>((resolve, reject) => {
        const call = c.makeUnaryRequest(SYNC_PATH, serialize, deserialize, req, md, { deadline: Date.now() + timeoutMs }, (err, res) => {
          signal.removeEventListener("abort", onAbort);
          if (err || !res) {
            drop();
            const reason = signal.aborted ? String((signal.reason as Error | undefined)?.message ?? signal.reason) : describe(err);
            reject(new SyncFailure(reason));
            return;
          }
          resolve(res);
        });
        const onAbort = () => call.cancel();
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      });
    },
    close: drop,
  };
}

function describe(err: ServiceError | null): string {
  if (!err) return "empty response";
  const name = Status[err.code] ?? String(err.code);
  const hint = err.code === Status.UNAUTHENTICATED || err.code === Status.PERMISSION_DENIED ? " (check TASKLANE_CONTROL_PLANE_TOKEN)" : "";
  return `gRPC ${name}${hint}: ${clipDetail(err.details)}`;
}
