/**
 * The import graph of src/ and mod.ts, from `deno info --json` (static,
 * dynamic and type-only imports alike): its cycles, and its arrows against
 * the data's direction. Data flows down {@link LAYERS}: a module may import
 * from its own room or from an earlier layer; an import of a later layer is
 * upward, one of another room in the same layer is across.
 *
 *   deno run -A scripts/imports.ts      prints both lists ("none" when empty)
 *
 * tests/unit/imports_test.ts asserts that both are empty.
 *
 * @module
 */

/**
 * The layers in the data's order: reader -> decoder -> table -> enrichers ->
 * filter -> sinks, with the shared vocabulary first and the composition last.
 * Each layer holds rooms; each room is a list of path prefixes under the
 * repository (the longest matching prefix names a file's room).
 */
export const LAYERS: readonly (readonly [room: string, prefixes: readonly string[]])[][] = [
  [["vocabulary", [
    "src/events.ts",
    "src/errors.ts",
    "src/options.ts",
    "src/caps.ts",
    "src/argv.ts",
  ]]],
  [["kernel", ["src/ffi/", "src/bpf/"]]],
  [["table", ["src/flow/"]]],
  [["dns", ["src/dns/"]]],
  [["enrich", ["src/enrich/"]]],
  [["filter", ["src/flow/filter.ts"]]],
  [["stats", ["src/stats.ts"]]],
  [["output", ["src/output/"]], ["export", ["src/export/"]]],
  [["metrics", ["src/metrics/"]]],
  [["compose", ["src/", "mod.ts"]]],
];

/** One import against the data's direction. */
export interface Arrow {
  from: string;
  to: string;
  /** `upward`: into a later layer; `across`: into another room of the same layer. */
  kind: "upward" | "across";
}

export interface GraphReport {
  /** Modules read (src/ and mod.ts). */
  modules: number;
  /** Imports between them. */
  imports: number;
  /** Each cycle as its modules (a strongly connected component of two or more, or a self-import). */
  cycles: string[][];
  arrows: Arrow[];
}

/** Where a path sits: [layer index, room name]. */
export function placeOf(path: string): [number, string] {
  let best: [number, string, number] = [LAYERS.length - 1, "compose", 0];
  LAYERS.forEach((rooms, layer) => {
    for (const [room, prefixes] of rooms) {
      for (const prefix of prefixes) {
        if (path.startsWith(prefix) && prefix.length > best[2]) best = [layer, room, prefix.length];
      }
    }
  });
  return [best[0], best[1]];
}

/** The import graph of `root`'s src/ and mod.ts: path -> imported paths (both relative to root). */
export async function importGraph(root: string): Promise<Map<string, Set<string>>> {
  const files = ["mod.ts", ...walk(root, "src")];
  // One module importing them all, so one deno info call sees every file.
  const entry = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      entry,
      files.map((f) => `import ${JSON.stringify(`file://${root}/${f}`)};`).join("\n"),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", `${root}/deno.json`, entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr)}`);
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as DenoInfo;
    const prefix = `file://${root}/`;
    const local = (s: string | undefined) =>
      s !== undefined && s.startsWith(prefix) && s.endsWith(".ts") && !s.includes("/.tools/")
        ? s.slice(prefix.length)
        : undefined;
    const graph = new Map<string, Set<string>>();
    for (const m of info.modules) {
      const from = local(m.specifier);
      if (from === undefined || !files.includes(from)) continue;
      const to = graph.get(from) ?? new Set<string>();
      graph.set(from, to);
      for (const d of m.dependencies ?? []) {
        for (const target of [local(d.code?.specifier), local(d.type?.specifier)]) {
          if (target !== undefined && files.includes(target)) to.add(target);
        }
      }
    }
    return graph;
  } finally {
    await Deno.remove(entry);
  }
}

interface DenoInfo {
  modules: {
    specifier: string;
    dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
  }[];
}

function walk(root: string, dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${root}/${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...walk(root, path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** Cycles (Tarjan's strongly connected components) and arrows against the data's direction. */
export function report(graph: Map<string, Set<string>>): GraphReport {
  const arrows: Arrow[] = [];
  let imports = 0;
  for (const [from, targets] of graph) {
    const [fromLayer, fromRoom] = placeOf(from);
    for (const to of targets) {
      imports++;
      const [toLayer, toRoom] = placeOf(to);
      if (toLayer > fromLayer) arrows.push({ from, to, kind: "upward" });
      else if (toLayer === fromLayer && toRoom !== fromRoom) {
        arrows.push({ from, to, kind: "across" });
      }
    }
  }
  return { modules: graph.size, imports, cycles: cycles(graph), arrows };
}

function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), out: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v)?.has(v)) out.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const r = report(await importGraph(root));
  console.log(`${r.modules} modules, ${r.imports} imports`);
  console.log(`cycles: ${r.cycles.length === 0 ? "none" : r.cycles.length}`);
  for (const c of r.cycles) console.log(`  ${c.join(" <-> ")}`);
  console.log(`against the data's direction: ${r.arrows.length === 0 ? "none" : r.arrows.length}`);
  for (const a of r.arrows) console.log(`  ${a.kind.padEnd(6)} ${a.from} -> ${a.to}`);
}
