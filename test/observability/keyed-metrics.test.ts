/**
 * The keyed counter, gauge and histogram render, through a prom-client
 * registry, exactly what prom-client's own Counter, Gauge and Histogram render
 * for the same updates (text exposition, OpenMetrics and JSON).
 */
import { describe, expect, test } from "bun:test";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { KeyedHistogram, KeyedScalar } from "../../src/observability/keyed-metrics.ts";

const BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];

/** Observations with values on, between and beyond the bounds, over several label sets. */
function observations(): { route: string; method: string; status: string; seconds: number }[] {
  const routes = ["/api/v1/tasks/:id", "/api/v1/tasks", "unmatched"];
  const methods = ["GET", "POST", "DELETE"];
  const out = [];
  let x = 7;
  for (let i = 0; i < 500; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const pick = x % 13;
    const seconds = pick < BUCKETS.length ? BUCKETS[pick]! : pick === 10 ? 0 : pick === 11 ? 31 : (x % 1000) / 997;
    out.push({ route: routes[x % 3]!, method: methods[(x >> 3) % 3]!, status: String(200 + ((x >> 5) % 3) * 100), seconds });
  }
  return out;
}

function pair(contentType?: string) {
  const theirs = new Registry();
  const ours = new Registry();
  if (contentType) {
    theirs.setContentType(contentType as never);
    ours.setContentType(contentType as never);
  }
  const c1 = new Counter({ name: "x_requests_total", help: "Requests.", labelNames: ["route", "method", "status"], registers: [theirs] });
  const h1 = new Histogram({ name: "x_duration_seconds", help: "Duration.", labelNames: ["route", "method"], buckets: BUCKETS, registers: [theirs] });
  const g1 = new Gauge({ name: "x_open", help: "Open.", labelNames: ["transport"], registers: [theirs] });
  const n1 = new Counter({ name: "x_plain_total", help: "No labels.", registers: [theirs] });
  const c2 = new KeyedScalar("x_requests_total", "Requests.", "counter", ["route", "method", "status"]);
  const h2 = new KeyedHistogram("x_duration_seconds", "Duration.", BUCKETS, ["route", "method"]);
  const g2 = new KeyedScalar("x_open", "Open.", "gauge", ["transport"]);
  const n2 = new KeyedScalar("x_plain_total", "No labels.", "counter");
  for (const m of [c2, h2, g2, n2]) m.registerIn(ours);
  for (const o of observations()) {
    c1.inc({ route: o.route, method: o.method, status: o.status });
    h1.observe({ route: o.route, method: o.method }, o.seconds);
    c2.inc([o.route, o.method, o.status]);
    h2.observe([o.route, o.method], o.seconds);
    g1.inc({ transport: o.method }, o.seconds > 0.5 ? -1 : 1);
    g2.inc([o.method], o.seconds > 0.5 ? -1 : 1);
  }
  n1.inc(3);
  n2.inc([], 3);
  return { theirs, ours };
}

describe("keyed metrics", () => {
  test("text exposition is prom-client's, byte for byte", async () => {
    const { theirs, ours } = pair();
    const expected = await theirs.metrics();
    expect(expected).toContain('x_duration_seconds_bucket{le="+Inf",route="/api/v1/tasks/:id",method="GET"}');
    expect(await ours.metrics()).toBe(expected);
  });

  test("OpenMetrics exposition is prom-client's too", async () => {
    const { theirs, ours } = pair(Registry.OPENMETRICS_CONTENT_TYPE);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  test("JSON is prom-client's (without its empty exemplar fields)", async () => {
    const { theirs, ours } = pair();
    const strip = (x: unknown) => JSON.parse(JSON.stringify(x, (k, v) => (k === "exemplar" && v == null ? undefined : v)));
    expect(strip(await ours.getMetricsAsJSON())).toEqual(strip(await theirs.getMetricsAsJSON()));
  });

  test("counters add any amount; non-finite observations are ignored; reset empties", async () => {
    const r = new Registry();
    const c = new KeyedScalar("y_total", "Y.", "counter", ["kind"]);
    const h = new KeyedHistogram("y_seconds", "Y.", [1], ["kind"]);
    c.registerIn(r);
    h.registerIn(r);
    c.inc(["a"], 5);
    c.inc(["a"]);
    h.observe(["a"], Number.NaN);
    h.observe(["a"], Number.POSITIVE_INFINITY);
    h.observe(["a"], 2);
    const text = await r.metrics();
    expect(text).toContain('y_total{kind="a"} 6');
    expect(text).toContain('y_seconds_bucket{le="1",kind="a"} 0');
    expect(text).toContain('y_seconds_count{kind="a"} 1');
    r.resetMetrics();
    expect(await r.metrics()).not.toContain('kind="a"');
  });

  test("bound adders and recorders update the same series as inc and observe", async () => {
    const a = new Registry();
    const b = new Registry();
    const c1 = new KeyedScalar("z_total", "Z.", "counter", ["k"]);
    const h1 = new KeyedHistogram("z_seconds", "Z.", [0.1, 1], ["k"]);
    const c2 = new KeyedScalar("z_total", "Z.", "counter", ["k"]);
    const h2 = new KeyedHistogram("z_seconds", "Z.", [0.1, 1], ["k"]);
    for (const m of [c1, h1]) m.registerIn(a);
    for (const m of [c2, h2]) m.registerIn(b);
    const add = c2.adder(["x"]);
    const rec = h2.recorder(["x"]);
    for (const v of [0.05, 0.5, 5, Number.NaN]) {
      c1.inc(["x"]);
      h1.observe(["x"], v);
      add();
      rec(v);
    }
    c1.inc(["x"], 2);
    add(2);
    expect(await b.metrics()).toBe(await a.metrics());
    expect(await b.metrics()).toContain('z_seconds_count{k="x"} 3');
  });
});
