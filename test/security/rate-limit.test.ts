/**
 * Per-principal token buckets across both transports, streams counted once,
 * and the per-address budget of unauthenticated attempts. Rates are tiny
 * (one token per 10 s) so a refill can never happen during a test.
 */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { failure, unary } from "../grpc/proto-client.ts";
import { readSse } from "../helpers/sse.ts";
import { bashSpec } from "../helpers/start-agent.ts";
import { tasklane } from "../cli/cli-process.ts";
import { startSecureAgent } from "./secure-agent.ts";

const SLOW = { rate: 0.1, burst: 3 };

describe("rate limits", () => {
  test("a burst beyond the bucket gets 429 with Retry-After; other principals are unaffected; gRPC shares the bucket", async () => {
    await using a = await startSecureAgent({ rates: { alice: SLOW } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await a.json("GET", "/api/v1/tasks", undefined, a.bearer("alice"))).status);
    expect(statuses).toEqual([200, 200, 200]);
    const res = await a.request("GET", "/api/v1/tasks", undefined, a.bearer("alice"));
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 10).toBe(true);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe("RateLimited");
    expect(body.message).toStartWith("rate limit of principal alice exceeded (0.1/s, burst 3); retry in ");

    // A write is refused the same way, before its body is even read.
    expect((await a.json("POST", "/api/v1/tasks", "{broken", a.bearer("alice"))).status).toBe(429);

    // Same bucket over gRPC.
    const err = await failure(unary(a.solti, "ListTasks", {}, a.md("alice")));
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toStartWith("rate limit of principal alice exceeded");

    // bob and the admin do not notice.
    expect((await a.json("GET", "/api/v1/tasks", undefined, a.bearer("bob"))).status).toBe(200);
    expect((await unary<{ total: number }>(a.solti, "ListTasks", {}, a.md("root"))).total).toBe(0);
  });

  test("a long-lived stream counts once, when it opens, however many events it carries", async () => {
    await using a = await startSecureAgent({ rates: { bob: SLOW } });
    const bob = a.bearer("bob");
    const run = await a.json("POST", "/api/v1/tasks?wait=true", { spec: bashSpec("for i in $(seq 1 200); do echo line $i; done") }, bob); // token 1
    expect(run.status).toBe(200);
    const res = await a.request("GET", `/api/v1/tasks/${run.body.task.metadata.id}/logs?follow=false`, undefined, bob); // token 2
    let chunks = 0;
    for await (const e of readSse(res)) if (e.event === "chunk") chunks++;
    expect(chunks).toBe(200);
    expect((await a.json("GET", "/api/v1/tasks", undefined, bob)).status).toBe(200); // token 3
    expect((await a.json("GET", "/api/v1/tasks", undefined, bob)).status).toBe(429);
  });

  test("failed attempts are limited per remote address; a valid token from the same address still works", async () => {
    await using a = await startSecureAgent({ unauthenticated: { rate: 0.1, burst: 2 } });
    const guesses: number[] = [];
    for (const token of ["guess-1", "guess-2"]) guesses.push((await a.json("GET", "/api/v1/tasks", undefined, { authorization: `Bearer ${token}` })).status);
    expect(guesses).toEqual([401, 401]);
    const limited = await a.request("GET", "/api/v1/tasks", undefined, { authorization: "Bearer guess-3" });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(((await limited.json()) as { message: string }).message).toStartWith("too many unauthenticated requests from 127.0.0.1; retry in ");
    // gRPC attempts from the same address share the budget.
    expect((await failure(unary(a.solti, "ListTasks", {}, a.md({ token: "guess-4" })))).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect((await a.json("GET", "/api/v1/tasks", undefined, a.bearer("alice"))).status).toBe(200);
    expect((await unary<{ total: number }>(a.solti, "ListTasks", {}, a.md("alice"))).total).toBe(0);
    // The probes stay reachable.
    expect((await a.request("GET", "/healthz")).status).toBe(200);
  });

  test("the CLI sits out Retry-After: `tasklane run` over a bucket of one request per second still ends with the task's exit code", async () => {
    // Submit, log stream and final read are three requests: the second and third are refused once each (Retry-After: 1).
    await using a = await startSecureAgent({ rates: { alice: { rate: 1, burst: 1 } } });
    const r = await tasklane(["run", "--", "/bin/sh", "-c", "echo out; exit 7"], { server: a.url, env: { TASKLANE_TOKEN: a.tokens.alice } });
    expect(r.stderr).not.toContain("rate limit");
    expect(r.stdout).toBe("out\n");
    expect(r.exitCode).toBe(7);
    const listed = await a.json("GET", "/api/v1/tasks", undefined, a.bearer("root"));
    expect(listed.body.total).toBe(1);
  });
});
