/** The gRPC transport over TLS against a real grpc-js control plane with a self-signed certificate. */
import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { createGrpcSyncTransport } from "../../src/fleet/grpc-sync-transport.ts";
import { SyncRequestSchema } from "../../src/gen/solti/discover/v1/discovery_pb.ts";
import { selfSignedCert } from "../helpers/self-signed.ts";
import { startGrpcControlPlane } from "./fake-control-plane.ts";
import { syncFailureOf } from "./sync-failure.ts";

const req = create(SyncRequestSchema, { id: "a1", apiVersion: 1 });
const signal = () => new AbortController().signal;


test("grpcs:// reaches a control plane by IP address or by name, trusting the CA in NODE_EXTRA_CA_CERTS as https:// does", async () => {
  using tls = selfSignedCert();
  await using cp = await startGrpcControlPlane({ cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) });
  const port = new URL(cp.url).port;
  const env = { NODE_EXTRA_CA_CERTS: tls.certPath };
  // An IP literal has no TLS server name: the certificate's IP SAN is checked instead.
  for (const host of ["127.0.0.1", "localhost"]) {
    const t = createGrpcSyncTransport({ address: `${host}:${port}`, tls: true, env, token: "tok" });
    try {
      expect(await t.sync(req, signal())).toMatchObject({ success: true });
    } finally {
      t.close();
    }
  }
  expect(cp.requests.map((r) => r.authorization)).toEqual(["Bearer tok", "Bearer tok"]);

  // Without the CA the certificate is not trusted, and the call fails as a heartbeat failure.
  const untrusted = createGrpcSyncTransport({ address: `127.0.0.1:${port}`, tls: true, env: {} });
  expect((await syncFailureOf(untrusted.sync(req, signal()))).message).toMatch(/^gRPC UNAVAILABLE: .*(self[- ]signed|certificate)/i);
  untrusted.close();
  // A CA file that cannot be read is named in the failure.
  const missing = createGrpcSyncTransport({ address: `127.0.0.1:${port}`, tls: true, env: { NODE_EXTRA_CA_CERTS: `${tls.dir}/nope.pem` } });
  expect((await syncFailureOf(missing.sync(req, signal()))).message).toStartWith(`cannot read NODE_EXTRA_CA_CERTS "${tls.dir}/nope.pem": ENOENT`);
  expect(cp.requests).toHaveLength(2);
});
