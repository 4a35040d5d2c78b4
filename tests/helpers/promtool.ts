/**
 * promtool (from Debian's prometheus package; scripts/setup.sh unpacks it into
 * .tools/bin) as the independent judge of netflow's /metrics text.
 *
 * @module
 */
const ROOT = new URL("../../", import.meta.url).pathname;

/** The promtool binary: .tools/bin/promtool, else one on PATH. */
export function promtoolPath(): string {
  try {
    Deno.statSync(`${ROOT}.tools/bin/promtool`);
    return `${ROOT}.tools/bin/promtool`;
  } catch {
    return "promtool";
  }
}

/** `promtool check metrics` on `text`: its exit code and what it printed. */
export async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(promtoolPath(), {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

/** A sample's value from exposition text (`name` or `name{labels}` exactly as printed). */
export function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
