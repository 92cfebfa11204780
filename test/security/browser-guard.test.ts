/**
 * Auth off (the default: no principals, loopback only) must not let a web page
 * in a browser on the same machine drive the agent: another site's page sends
 * its `Origin` (a body-less POST needs no CORS preflight, a WebSocket none at
 * all), and a page whose site name was rebound to 127.0.0.1 (DNS rebinding)
 * sends its own `Host`. Both are refused with 403 before anything happens;
 * curl, the CLI and pages served from this machine are not affected.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createAuthenticator } from "../../src/auth/authenticator.ts";
import { commandSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { waitTerminal } from "../helpers/task-control.ts";

let a: TestAgent;
beforeAll(async () => {
  a = await startAgent();
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
});

const total = async () => (await a.json("GET", "/api/v1/tasks?limit=1")).body.total as number;

describe("auth off, loopback only", () => {
  test("a submit addressed to a rebound name is refused and creates nothing", async () => {
    const before = await total();
    const r = await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true") }, { host: "rebind.attacker.example:8080" });
    expect(r).toEqual({
      status: 403,
      body: {
        error: "PermissionDenied",
        message:
          'Host "rebind.attacker.example:8080" refused: with auth off the agent answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]); configure principals (tokens) to serve other names',
      },
    });
    expect(await total()).toBe(before);
  });

  test("a body-less POST from another site's page (no preflight) is refused and restarts nothing", async () => {
    const done = await a.json("POST", "/api/v1/tasks?wait=true", { spec: commandSpec("true") });
    const id = done.body.task.metadata.id;
    const r = await a.json("POST", `/api/v1/tasks/${id}/restart`, undefined, { origin: "https://evil.example" });
    expect(r).toEqual({
      status: 403,
      body: {
        error: "PermissionDenied",
        message: 'Origin "https://evil.example" refused: with auth off the agent does not answer web pages of other sites; configure principals (tokens) to serve them',
      },
    });
    // `null` is what sandboxed frames and file:// pages send.
    expect((await a.json("POST", `/api/v1/tasks/${id}/restart`, undefined, { origin: "null" })).status).toBe(403);
    expect((await waitTerminal(a, id)).status.attempt).toBe(1);
  });

  test("a WebSocket opened by another site's page is refused; one from a page on this machine opens", async () => {
    const open = (origin: string) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`${a.url.replace("http", "ws")}/ws/tasks`, { headers: { origin } } as unknown as string[]);
        ws.onopen = () => {
          ws.close();
          resolve("open");
        };
        ws.onerror = (e) => resolve((e as ErrorEvent).message);
      });
    expect(await open("https://evil.example")).toContain("403");
    expect(await open("http://localhost:3000")).toBe("open");
  });

  test("loopback names and origins, and requests without either, are served", async () => {
    const port = a.agent.httpPort;
    for (const headers of <Record<string, string>[]>[
      { host: `127.0.0.1:${port}` },
      { host: `localhost:${port}` },
      { host: `[::1]:${port}` },
      { host: `127.0.0.2:${port}` },
      { host: `dev.localhost:${port}` },
      { origin: `http://localhost:${port}` },
      { origin: "http://127.0.0.1:5173" },
      { origin: "http://[::1]:8000" },
    ]) {
      const r = await a.json("GET", "/api/v1/tasks?limit=1", undefined, headers);
      expect({ headers, status: r.status }).toEqual({ headers, status: 200 });
    }
  });
});

describe("--insecure-no-auth (origin only) and auth on", () => {
  const req = (headers: Record<string, string>) => new Request("http://edge-7.example:8080/api/v1/tasks", { headers });
  const code = (fn: () => unknown) => {
    try {
      fn();
      return "allowed";
    } catch (err) {
      return (err as { code: string }).code;
    }
  };

  test("on a non-loopback address without auth, any Host is served but another site's page is still refused", () => {
    const auth = createAuthenticator({ principals: [], browserGuard: "origin" });
    expect(code(() => auth.http(req({ host: "edge-7.example:8080" })))).toBe("allowed");
    expect(code(() => auth.http(req({ host: "edge-7.example:8080", origin: "https://evil.example" })))).toBe("PermissionDenied");
  });

  test("with auth on neither is checked: a page cannot send the token", () => {
    const auth = createAuthenticator({ principals: [{ name: "bob", role: "user", tokenSha256: "0".repeat(64), ratePerSec: 10, burst: 10 }] });
    expect(code(() => auth.http(req({ host: "edge-7.example:8080", origin: "https://evil.example" })))).toBe("Unauthenticated");
  });
});
