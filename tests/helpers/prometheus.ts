/**
 * A real Prometheus server for e2e tests (Debian's prometheus, unpacked into
 * .tools/bin by scripts/setup.sh): its own temporary data directory, a
 * loopback port, and a 1 s scrape of one target; queried through its HTTP API.
 *
 * @module
 */
import { Proc, ROOT, withTimeout } from "./e2e.ts";

/** The prometheus binary: .tools/bin/prometheus, else one on PATH. */
export function prometheusPath(): string {
  try {
    Deno.statSync(`${ROOT}.tools/bin/prometheus`);
    return `${ROOT}.tools/bin/prometheus`;
  } catch {
    return "prometheus";
  }
}

/** One element of an instant vector. */
export interface VectorSample {
  metric: Record<string, string>;
  value: number;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export class Prometheus implements AsyncDisposable {
  readonly url: string;
  readonly #dir: string;
  readonly #proc: Proc;

  private constructor(dir: string, port: number, proc: Proc) {
    this.#dir = dir;
    this.url = `http://127.0.0.1:${port}`;
    this.#proc = proc;
  }

  /**
   * Starts Prometheus scraping `target` (HOST:PORT, path /metrics) every
   * second, evaluating the recording rules in `rules` (a file) every second.
   */
  static async start(target: string, rules?: string): Promise<Prometheus> {
    const dir = await Deno.makeTempDir({ prefix: "netflow-prometheus-" });
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/prometheus.yml`,
      [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "  evaluation_interval: 1s",
        ...(rules === undefined ? [] : ["rule_files:", `  - ${JSON.stringify(rules)}`]),
        "scrape_configs:",
        "  - job_name: netflow",
        "    static_configs:",
        `      - targets: ["${target}"]`,
        "",
      ].join("\n"),
    );
    const proc = new Proc(prometheusPath(), [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ]);
    const p = new Prometheus(dir, port, proc);
    try {
      await withTimeout(
        (async () => {
          for (;;) {
            const ok = await fetch(`${p.url}/-/ready`).then(async (r) => {
              await r.body?.cancel();
              return r.ok;
            }).catch(() => false);
            if (ok) return;
            await new Promise((r) => setTimeout(r, 100)); // poll until ready, bounded
          }
        })(),
        30_000,
        "prometheus to be ready",
      );
    } catch (err) {
      await p[Symbol.asyncDispose]();
      throw err;
    }
    return p;
  }

  /** An instant query through /api/v1/query; the vector's samples. */
  async query(promql: string): Promise<VectorSample[]> {
    const r = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = await r.json();
    if (body.status !== "success") throw new Error(`${promql}: ${JSON.stringify(body)}`);
    if (body.data.resultType !== "vector") throw new Error(`${promql}: not a vector`);
    return body.data.result.map((
      s: { metric: Record<string, string>; value: [number, string] },
    ) => ({
      metric: s.metric,
      value: Number(s.value[1]),
    }));
  }

  /** A query's result as `labels -> value`, the key made of `by`'s label values joined by "|". */
  async byLabels(promql: string, by: string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const s of await this.query(promql)) {
      out[by.map((l) => s.metric[l] ?? "").join("|")] = s.value;
    }
    return out;
  }

  /** The scrape target's health: up, and the last scrape error ("" when none). */
  async target(): Promise<
    { health: string; lastError: string; scrapeUrl: string; lastScrape: string }
  > {
    const body = await (await fetch(`${this.url}/api/v1/targets`)).json();
    const t = body.data.activeTargets[0]; // none until discovery has run
    return t === undefined ? { health: "unknown", lastError: "", scrapeUrl: "", lastScrape: "" } : {
      health: t.health,
      lastError: t.lastError,
      scrapeUrl: t.scrapeUrl,
      lastScrape: t.lastScrape,
    };
  }

  /** Waits until Prometheus has scraped its target `n` more times (bounded by `ms`). */
  async scrapes(n: number, ms = 30_000): Promise<void> {
    let last = (await this.target()).lastScrape, seen = 0;
    const deadline = performance.now() + ms;
    while (seen < n) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${n} scrapes`);
      await new Promise((r) => setTimeout(r, 100));
      const now = (await this.target()).lastScrape;
      if (now !== last) [last, seen] = [now, seen + 1];
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#proc[Symbol.asyncDispose]();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
