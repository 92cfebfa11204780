/**
 * A tiny parser of the Prometheus text exposition format (0.0.4), enough for
 * tests: `# TYPE` lines and samples with their labels.
 */

/** One sample line: metric name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A parsed exposition. */
export interface Exposition {
  /** Family name → type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
  /** Family name → help text. */
  help: Map<string, string>;
  samples: Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;

function unescape(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) => (c === "n" ? "\n" : c));
}

function parseValue(v: string): number {
  if (v === "+Inf") return Infinity;
  if (v === "-Inf") return -Infinity;
  return Number(v);
}

/** Parse exposition text; throws on a line it does not understand. */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      types.set(name!, type!);
      continue;
    }
    if (line.startsWith("# HELP ")) {
      const rest = line.slice(7);
      const sp = rest.indexOf(" ");
      help.set(rest.slice(0, sp), rest.slice(sp + 1));
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? "";
    LABEL.lastIndex = 0;
    let pos = 0;
    for (let lm = LABEL.exec(body); lm; lm = LABEL.exec(body)) {
      labels[lm[1]!] = unescape(lm[2]!);
      pos = LABEL.lastIndex;
    }
    if (pos !== body.length) throw new Error(`unparsable labels: ${line}`);
    samples.push({ name: m[1]!, labels, value: parseValue(m[3]!) });
  }
  return { types, help, samples };
}

/** Stable identity of a series: `name{a="1",b="2"}` with labels sorted. */
export function seriesKey(s: Pick<Sample, "name" | "labels">): string {
  const labels = Object.entries(s.labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return labels.length ? `${s.name}{${labels.join(",")}}` : s.name;
}

/** The value of the series `name` whose labels include `labels`, summed over the others; 0 when absent. */
export function valueOf(exp: Exposition, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of exp.samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** The family a sample belongs to (`x_bucket`, `x_sum`, `x_count` → `x` for histograms and summaries). */
export function familyOf(exp: Exposition, sampleName: string): string {
  if (exp.types.has(sampleName)) return sampleName;
  const base = sampleName.replace(/_(bucket|sum|count)$/, "");
  return exp.types.has(base) ? base : sampleName;
}
