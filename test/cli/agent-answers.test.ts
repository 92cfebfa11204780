/**
 * The CLI against servers that are not (quite) a tasklane agent, through the
 * real binary: answers of another shape, pages of another server, servers
 * that never answer or hang up, and what the CLI refuses to send at all
 * (bad server URLs, tokens, task ids). No agent needed: fake servers on port 0.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { fakeHttpServer, fakeTask, fakeTcpServer, json, sse, sseFrame } from "./fake-server.ts";
import { spawnTasklane, tasklane, type CliResult } from "./cli-process.ts";

// Each case spawns a few CLI processes; on a loaded machine that takes a while (never sleeps).
setDefaultTimeout(20_000);

const NOT_FOUND = { error: "TaskNotFound", message: "not found" };

describe("wait: long polls stay under Bun's fetch idle timeout", () => {
  for (const extra of [[], ["--timeout", "8m"]]) {
    test.concurrent(`every wait request asks for at most 60 s (wait ${extra.join(" ")})`, async () => {
      let waits = 0;
      await using fake = fakeHttpServer((_req, url) => {
        if (url.pathname !== "/api/v1/tasks/tsk_w/wait") return json(NOT_FOUND, 404);
        // Answers at once: pending twice, then succeeded, so the CLI asks three times.
        waits++;
        return json({ task: fakeTask("tsk_w", waits < 3 ? { phase: "running", attempt: 1 } : { phase: "succeeded", attempt: 1, exitCode: 0 }) });
      });
      const r = await tasklane(["wait", ...extra, "tsk_w"], { server: fake.url });
      expect(r).toEqual({ exitCode: 0, stdout: "tsk_w succeeded exit=0\n", stderr: "" });
      const asked = fake.seen.map((s) => Number(new URL(s.path, fake.url).searchParams.get("timeoutMs")));
      expect(asked).toHaveLength(3);
      // 60 s: well under the 300 s after which Bun's fetch drops a silent socket.
      for (const ms of asked) expect(ms).toBe(60_000);
    });
  }
});

describe("not a tasklane agent", () => {
  const html = "<!DOCTYPE HTML>\n<html lang=\"en\">\n  <head><title>Error</title></head>\n  <body>nope</body>\n</html>\n";
  const servers: Record<string, () => Response> = {
    "HTML page (200)": () => new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } }),
    "HTML 404 (python -m http.server)": () => new Response(html, { status: 404, statusText: "File not found", headers: { "content-type": "text/html" } }),
    "JSON of another shape": () => json({ hello: "world" }),
    "an event stream of something else": () => sse(sseFrame(1, "chunk", {}) + sseFrame(2, "task", null)),
  };
  const commands = [
    ["ls"],
    ["get", "tsk_x"],
    ["get", "--json", "tsk_x"],
    ["runs", "--json", "tsk_x"],
    ["logs", "tsk_x"],
    ["logs", "-f", "tsk_x"],
    ["events"],
    ["wait", "--timeout", "1s", "tsk_x"],
    ["cancel", "tsk_x"],
    ["rm", "tsk_x"],
    ["info"],
    ["submit", "--", "true"],
    ["run", "--", "true"],
  ];
  for (const [name, answer] of Object.entries(servers)) {
    test.concurrent(`${name}: every command exits 3 with one line naming the URL`, async () => {
      await using fake = fakeHttpServer(answer);
      const results = await Promise.all(commands.map((args) => tasklane(args, { server: fake.url })));
      const shape = (r: CliResult) => ({ exitCode: r.exitCode, stdout: r.stdout, oneLine: r.stderr.split("\n").length === 2, says: r.stderr.startsWith(`tasklane: ${fake.url} is not a tasklane agent (answered `) });
      expect(results.map((r, i) => ({ args: commands[i], ...shape(r) }))).toEqual(commands.map((args) => ({ args, exitCode: 3, stdout: "", oneLine: true, says: true })));
    });
  }

  test.concurrent("what the messages say", async () => {
    await using page = fakeHttpServer(servers["HTML 404 (python -m http.server)"]!);
    await using other = fakeHttpServer(servers["JSON of another shape"]!);
    await using text = fakeHttpServer(() => new Response("no\n  such\tthing\n", { status: 404, statusText: "Not Found", headers: { "content-type": "text/plain" } }));
    await using stream = fakeHttpServer(servers["an event stream of something else"]!);
    const [a, b, c, d, e] = await Promise.all([
      tasklane(["ls"], { server: page.url }),
      tasklane(["ls"], { server: other.url }),
      tasklane(["get", "tsk_x"], { server: text.url }),
      tasklane(["logs", "tsk_x"], { server: stream.url }),
      tasklane(["rm", "tsk_x"], { server: other.url }),
    ]);
    expect(a.stderr).toBe(`tasklane: ${page.url} is not a tasklane agent (answered HTTP 404 Not Found, text/html)\n`);
    expect(b.stderr).toBe(`tasklane: ${other.url} is not a tasklane agent (answered HTTP 200 with JSON that is not a task list: {"hello":"world"})\n`);
    expect(c.stderr).toBe(`tasklane: ${text.url} is not a tasklane agent (answered HTTP 404 Not Found, text/plain: no such thing)\n`);
    expect(d.stderr).toBe(`tasklane: ${stream.url} is not a tasklane agent (answered with an event that is not a log event: {})\n`);
    // A 200 is not a 204: nothing was deleted.
    expect(e.stderr).toBe(`tasklane: ${other.url} is not a tasklane agent (answered HTTP 200 OK, application/json)\n`);
  });
});

describe("servers that never answer or hang up", () => {
  test.concurrent("no answer within TASKLANE_REQUEST_TIMEOUT: exit 3 naming the URL", async () => {
    await using hole = fakeTcpServer();
    const env = { TASKLANE_REQUEST_TIMEOUT: "200ms" };
    const cmds = [["ls"], ["get", "tsk_x"], ["logs", "-f", "tsk_x"], ["events"], ["run", "--", "true"]];
    const results = await Promise.all(cmds.map((args) => tasklane(args, { server: hole.url, env })));
    expect(results.map((r, i) => ({ args: cmds[i], ...r }))).toEqual(
      cmds.map((args) => ({ args, exitCode: 3, stdout: "", stderr: `tasklane: the agent at ${hole.url} did not answer within 200ms\n` })),
    );
  });

  test.concurrent("run: Ctrl-C while the submit is unanswered says why it waits; a second one quits", async () => {
    const arrived = Promise.withResolvers<void>();
    await using hole = fakeTcpServer(() => arrived.resolve());
    await using cli = spawnTasklane(["run", "--", "true"], { server: hole.url });
    await arrived.promise;
    cli.proc.kill("SIGINT");
    await cli.stderr.until((t) => t.includes("\n"));
    cli.proc.kill("SIGINT");
    expect(await cli.result()).toEqual({ exitCode: 130, stdout: "", stderr: "tasklane: waiting for the agent to accept the task (Ctrl-C again to quit)\n" });
  });

  test.concurrent("a bad TASKLANE_REQUEST_TIMEOUT is a usage error", async () => {
    const [unitless, junk] = await Promise.all([
      tasklane(["ls"], { env: { TASKLANE_REQUEST_TIMEOUT: "30" } }),
      tasklane(["ls"], { env: { TASKLANE_REQUEST_TIMEOUT: "soon" } }),
    ]);
    expect(unitless).toEqual({ exitCode: 2, stdout: "", stderr: 'tasklane: TASKLANE_REQUEST_TIMEOUT: needs a unit, e.g. 30s or 2m (0: no limit), got "30"\n' });
    expect(junk).toEqual({ exitCode: 2, stdout: "", stderr: 'tasklane: TASKLANE_REQUEST_TIMEOUT: must be a duration like 30s or 2m (0: no limit), got "soon"\n' });
  });

  test.concurrent("a dropped connection: a short reason, no advice meant for fetch() callers", async () => {
    await using rude = fakeTcpServer((socket) => socket.end());
    const r = await tasklane(["ls"], { server: rude.url });
    expect(r).toEqual({ exitCode: 3, stdout: "", stderr: `tasklane: lost the connection to the agent at ${rude.url} (connection reset)\n` });
  });
});

describe("what the CLI refuses to send", () => {
  test.concurrent("--server / TASKLANE_SERVER with spaces, a query or a fragment: exit 2 naming the source", async () => {
    await using fake = fakeHttpServer(() => json({ tasks: [], total: 0 }));
    const cases: [string[], Record<string, string>, string][] = [
      [["ls", "--server", `${fake.url} `], {}, `tasklane: --server: must not contain spaces or control characters, got "${fake.url} "\n`],
      [["ls", "--server", `${fake.url}?x=1`], {}, `tasklane: --server: must not have a query (?…) or fragment (#…), got "${fake.url}?x=1"\n`],
      [["ls", "--server", `${fake.url}#top`], {}, `tasklane: --server: must not have a query (?…) or fragment (#…), got "${fake.url}#top"\n`],
      [["ls"], { TASKLANE_SERVER: `${fake.url}/?x=1` }, `tasklane: TASKLANE_SERVER: must not have a query (?…) or fragment (#…), got "${fake.url}/?x=1"\n`],
    ];
    const results = await Promise.all(cases.map(([args, env]) => tasklane(args, { env })));
    expect(results).toEqual(cases.map(([, , stderr]) => ({ exitCode: 2, stdout: "", stderr })));
    expect(fake.seen).toEqual([]);
  });

  test.concurrent("a path prefix in --server is kept", async () => {
    await using fake = fakeHttpServer(() => json({ tasks: [], total: 0 }));
    const r = await tasklane(["ls", "--json", "--server", `${fake.url}/gw/tasklane/`]);
    expect(r).toEqual({ exitCode: 0, stdout: `${JSON.stringify({ tasks: [], total: 0 })}\n`, stderr: "" });
    expect(fake.seen.map((s) => s.path)).toEqual(["/gw/tasklane/api/v1/tasks?order=desc"]);
  });

  test.concurrent("a token with a line break, non-ASCII or a space: exit 2 naming the source, never showing the token", async () => {
    await using fake = fakeHttpServer(() => json({ tasks: [], total: 0 }));
    const server = fake.url;
    const [flag, env, wide, spaced] = await Promise.all([
      tasklane(["ls", "--token", "abc\ndef"], { server }),
      tasklane(["ls"], { server, env: { TASKLANE_TOKEN: "abc\ndef" } }),
      tasklane(["ls", "--token", "abc€def"], { server }),
      tasklane(["ls", "--token", "abc def"], { server }),
    ]);
    // Before: a space inside was sent, and the agent's answer blamed the header's form.
    expect(spaced).toEqual({ exitCode: 2, stdout: "", stderr: "tasklane: --token: must not contain spaces (the token is not shown)\n" });
    expect(flag).toEqual({ exitCode: 2, stdout: "", stderr: "tasklane: --token: must not contain line breaks or other control characters (the token is not shown)\n" });
    expect(env).toEqual({ exitCode: 2, stdout: "", stderr: "tasklane: TASKLANE_TOKEN: must not contain line breaks or other control characters (the token is not shown)\n" });
    expect(wide).toEqual({ exitCode: 2, stdout: "", stderr: "tasklane: --token: must contain only printable ASCII characters (the token is not shown)\n" });
    expect(fake.seen).toEqual([]);
  });

  test.concurrent("whitespace around the token is dropped; commands without an agent ignore a bad token", async () => {
    await using fake = fakeHttpServer(() => json({ tasks: [], total: 0 }));
    const ok = await tasklane(["ls", "-q"], { server: fake.url, env: { TASKLANE_TOKEN: " s3cret\r\n" } });
    expect(ok).toEqual({ exitCode: 0, stdout: "", stderr: "" });
    expect(fake.seen.map((s) => s.authorization)).toEqual(["Bearer s3cret"]);
    const hash = await tasklane(["hash-token", "x"], { env: { TASKLANE_TOKEN: "a\nb" } });
    expect(hash.exitCode).toBe(0);
  });

  test.concurrent("task ids . and .. (and control characters) are usage errors; nothing is sent", async () => {
    await using fake = fakeHttpServer(() => new Response(null, { status: 204 }));
    const cases: [string[], string][] = [
      [["get", "."], 'tasklane: invalid task ID "."\n'],
      [["get", "--json", ".."], 'tasklane: invalid task ID ".."\n'],
      [["runs", "."], 'tasklane: invalid task ID "."\n'],
      [["logs", ".."], 'tasklane: invalid task ID ".."\n'],
      [["wait", "."], 'tasklane: invalid task ID "."\n'],
      [["cancel", "tsk_a", "."], 'tasklane: invalid task ID "."\n'],
      [["rm", "tsk_a", "..", "tsk_b"], 'tasklane: invalid task ID ".."\n'],
      [["get", "tsk\nx"], 'tasklane: invalid task ID "tsk\\nx": contains control characters\n'],
    ];
    const results = await Promise.all(cases.map(([args]) => tasklane(args, { server: fake.url })));
    expect(results.map((r, i) => ({ args: cases[i]![0], ...r }))).toEqual(cases.map(([args, stderr]) => ({ args, exitCode: 2, stdout: "", stderr })));
    expect(fake.seen).toEqual([]);
  });
});

describe("rm and cancel of several ids", () => {
  /** Deletes every id but `tsk_bad`, which is rate limited; `tsk_html` gets a page of another server. */
  function agentLike() {
    return fakeHttpServer((req, url) => {
      const id = decodeURIComponent(url.pathname.split("/")[4] ?? "");
      if (id === "tsk_bad") return json({ error: "RateLimited", message: "rate limit exceeded" }, 429);
      if (id === "tsk_html") return new Response("<html></html>", { headers: { "content-type": "text/html" } });
      if (req.method === "DELETE") return new Response(null, { status: 204 });
      return json({ task: fakeTask(id, { phase: "canceled", attempt: 1, error: "canceled" }) });
    });
  }

  test.concurrent("rm tries every id, names each failure, exits 1; --json lists both", async () => {
    await using fake = agentLike();
    const human = await tasklane(["rm", "tsk_a", "tsk_bad", "tsk_b"], { server: fake.url });
    expect(human).toEqual({ exitCode: 1, stdout: "tsk_a\ntsk_b\n", stderr: "tasklane: tsk_bad: rate limit exceeded\n" });
    const j = await tasklane(["rm", "--json", "tsk_a", "tsk_bad", "tsk_b"], { server: fake.url });
    expect(j).toEqual({
      exitCode: 1,
      stdout: `${JSON.stringify({ deleted: ["tsk_a", "tsk_b"], failed: [{ id: "tsk_bad", error: "rate limit exceeded" }] })}\n`,
      stderr: "tasklane: tsk_bad: rate limit exceeded\n",
    });
    expect(fake.seen.map((s) => `${s.method} ${s.path}`)).toEqual([...["tsk_a", "tsk_bad", "tsk_b"], ...["tsk_a", "tsk_bad", "tsk_b"]].map((id) => `DELETE /api/v1/tasks/${id}`));
  });

  test.concurrent("when the agent cannot be reached, the remaining ids are not tried (exit 3)", async () => {
    await using fake = agentLike();
    const r = await tasklane(["rm", "--json", "tsk_a", "tsk_html", "tsk_b"], { server: fake.url });
    expect(r.exitCode).toBe(3);
    expect(JSON.parse(r.stdout)).toEqual({
      deleted: ["tsk_a"],
      failed: [
        { id: "tsk_html", error: `${fake.url} is not a tasklane agent (answered HTTP 200 OK, text/html)` },
        { id: "tsk_b", error: "not tried: the agent could not be reached" },
      ],
    });
    expect(r.stderr).toBe(`tasklane: tsk_html: ${fake.url} is not a tasklane agent (answered HTTP 200 OK, text/html)\ntasklane: not tried: tsk_b\n`);
    expect(fake.seen.map((s) => s.path)).toEqual(["/api/v1/tasks/tsk_a", "/api/v1/tasks/tsk_html"]);
  });

  test.concurrent("cancel: the same rules", async () => {
    await using fake = agentLike();
    const r = await tasklane(["cancel", "tsk_a", "tsk_bad", "tsk_b"], { server: fake.url });
    expect(r).toEqual({ exitCode: 1, stdout: "tsk_a canceled\ntsk_b canceled\n", stderr: "tasklane: tsk_bad: rate limit exceeded\n" });
  });
});

describe("run: held submit, subscribe, then start", () => {
  test.concurrent("the task is released only once the log stream is open", async () => {
    let push: ((text: string) => void) | undefined;
    const id = "tsk_r";
    await using fake = fakeHttpServer((req, url) => {
      const p = url.pathname;
      if (req.method === "POST" && p === "/api/v1/tasks") return json({ task_id: id, admission: "queued" }, 201);
      if (p === `/api/v1/tasks/${id}/logs`) {
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            const enc = new TextEncoder();
            c.enqueue(enc.encode(": stream open\n\n"));
            push = (text) => {
              c.enqueue(enc.encode(text));
              c.close();
            };
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      if (req.method === "POST" && p === `/api/v1/tasks/${id}/start`) {
        // Only now may output flow: a stream opened after this would have missed it.
        push?.(
          sseFrame(1, "run-started", { type: "runStarted", attempt: 1, startedAt: 1 }) +
            sseFrame(2, "chunk", { type: "chunk", attempt: 1, stream: "stdout", seq: 0, ts: 2, line: "hello" }) +
            sseFrame(3, "run-finished", { type: "runFinished", attempt: 1, exitCode: 0, finishedAt: 3 }),
        );
        return json({ task: fakeTask(id, { phase: "running", attempt: 1 }) });
      }
      if (p === `/api/v1/tasks/${id}`) return json({ task: fakeTask(id, { phase: "succeeded", attempt: 1, exitCode: 0 }) });
      return json(NOT_FOUND, 404);
    });
    const r = await tasklane(["run", "--slot", "s", "--", "echo", "hello"], { server: fake.url });
    expect(r).toEqual({ exitCode: 0, stdout: "hello\n", stderr: "" });
    expect(fake.seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      "POST /api/v1/tasks",
      `GET /api/v1/tasks/${id}/logs?after=0`,
      `POST /api/v1/tasks/${id}/start`,
      `GET /api/v1/tasks/${id}`,
    ]);
    expect((JSON.parse(fake.seen[0]!.body) as { spec: { hold?: boolean } }).spec.hold).toBe(true);
  });

  test.concurrent("a release that fails removes the held task and reports the error", async () => {
    const id = "tsk_q";
    await using fake = fakeHttpServer((req, url) => {
      const p = url.pathname;
      if (req.method === "POST" && p === "/api/v1/tasks") return json({ task_id: id, admission: "queued" }, 201);
      if (p === `/api/v1/tasks/${id}/logs`) return sse(": stream open\n\n");
      if (p === `/api/v1/tasks/${id}/start`) return json({ error: "Unavailable", message: "queue of slot s is full" }, 503);
      if (req.method === "DELETE") return new Response(null, { status: 204 });
      return json(NOT_FOUND, 404);
    });
    const r = await tasklane(["run", "--slot", "s", "--", "true"], { server: fake.url });
    expect(r).toEqual({ exitCode: 1, stdout: "", stderr: "tasklane: queue of slot s is full\n" });
    expect(fake.seen.map((s) => `${s.method} ${s.path}`).at(-1)).toBe(`DELETE /api/v1/tasks/${id}`);
  });
});

describe("429: Retry-After", () => {
  const limited = (retryAfter?: string) =>
    Response.json({ error: "RateLimited", message: "rate limit of principal p exceeded" }, { status: 429, headers: retryAfter === undefined ? {} : { "retry-after": retryAfter } });

  test.concurrent("a wait longer than the request's deadline is not sat out: the 429 is the answer", async () => {
    await using fake = fakeHttpServer(() => limited("120"));
    const r = await tasklane(["ls"], { server: fake.url });
    expect(r).toEqual({ exitCode: 1, stdout: "", stderr: "tasklane: rate limit of principal p exceeded\n" });
    expect(fake.seen).toHaveLength(1);
  });

  test.concurrent("without Retry-After (or with one that is not a number or a date) the 429 is the answer", async () => {
    for (const header of [undefined, "soon", "-1", "1.5"]) {
      await using fake = fakeHttpServer(() => limited(header));
      const r = await tasklane(["ls"], { server: fake.url });
      expect(r.exitCode).toBe(1);
      expect(fake.seen).toHaveLength(1);
    }
  });

  test.concurrent("at most ten retries: a server that keeps refusing gets eleven requests, then the 429 is the answer", async () => {
    await using fake = fakeHttpServer(() => limited("0"));
    const r = await tasklane(["ls"], { server: fake.url });
    expect(r.exitCode).toBe(1);
    expect(fake.seen).toHaveLength(11);
  });

  test.concurrent("Ctrl-C during a Retry-After wait ends the command at once as interrupted (130), with no second request", async () => {
    const asked = Promise.withResolvers<void>();
    await using fake = fakeHttpServer(() => {
      asked.resolve();
      return limited("20");
    });
    await using cli = spawnTasklane(["ls"], { server: fake.url });
    await asked.promise;
    cli.proc.kill("SIGINT");
    const r = await cli.result();
    expect(r.exitCode).toBe(130);
    expect(fake.seen).toHaveLength(1);
  });

  test.concurrent("a submit refused once is sent again, the same body, after the wait", async () => {
    await using fake = fakeHttpServer((_req, url, seen) => {
      if (seen.length === 1) return limited("0");
      if (url.pathname === "/api/v1/tasks") return json({ task_id: "tsk_r", admission: "started" }, 201);
      return json(NOT_FOUND, 404);
    });
    const r = await tasklane(["submit", "--", "echo", "hi"], { server: fake.url });
    expect(r).toEqual({ exitCode: 0, stdout: "tsk_r\n", stderr: "" });
    expect(fake.seen.map((s) => s.method)).toEqual(["POST", "POST"]);
    expect(fake.seen[1]!.body).toBe(fake.seen[0]!.body);
  });
});
