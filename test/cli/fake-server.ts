/**
 * Servers that are not (quite) a tasklane agent, for the CLI's failure paths:
 * an HTTP server on port 0 whose answers the test writes, and TCP servers
 * that never answer or hang up. Loopback only; `await using` stops them.
 */
import type { Task } from "../../src/tasks/model.ts";

/** One request the fake HTTP server received. */
export interface SeenRequest {
  method: string;
  /** Path and query, e.g. `/api/v1/tasks/x/wait?timeoutMs=60000`. */
  path: string;
  body: string;
  /** The Authorization header, if any. */
  authorization: string | null;
}

export interface FakeHttpServer extends AsyncDisposable {
  url: string;
  /** Requests in arrival order. */
  seen: SeenRequest[];
}

/** An HTTP server on 127.0.0.1:0 answering every request with `handle`. */
export function fakeHttpServer(handle: (req: Request, url: URL, seen: SeenRequest[]) => Response | Promise<Response>): FakeHttpServer {
  const seen: SeenRequest[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url);
      seen.push({ method: req.method, path: url.pathname + url.search, body: await req.text(), authorization: req.headers.get("authorization") });
      return handle(req, url, seen);
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    seen,
    async [Symbol.asyncDispose]() {
      await server.stop(true);
    },
  };
}

/** A TCP server that accepts connections and then does `onData` (default: nothing, ever). */
export function fakeTcpServer(onData: (socket: { end(): void }) => void = () => {}): { url: string } & AsyncDisposable {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (socket) => onData(socket) } });
  return {
    url: `http://127.0.0.1:${server.port}`,
    async [Symbol.asyncDispose]() {
      server.stop(true);
    },
  };
}

/** A JSON answer. */
export function json(body: unknown, status = 200): Response {
  return Response.json(body, { status });
}

/** A task resource as the agent sends it. */
export function fakeTask(id: string, status: Task["status"]): Task {
  return {
    metadata: { id, resourceVersion: 1, createdAt: 1_700_000_000_000, updatedAt: 1_700_000_000_000 },
    spec: {
      slot: "fake",
      kind: { subprocess: { mode: { command: { command: "true", args: [] } }, env: [], failOnNonZero: true } },
      timeout: 30_000,
      restart: { type: "never" },
      backoff: { jitter: "full", firstMs: 1000, maxMs: 10_000, factor: 2 },
      admission: "dropIfRunning",
      labels: {},
    },
    status,
  } as Task;
}

/** One SSE frame. */
export function sseFrame(id: number, event: string, data: unknown): string {
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** An SSE answer with these frames, then the end of the stream. */
export function sse(text: string): Response {
  return new Response(text, { headers: { "content-type": "text/event-stream" } });
}
