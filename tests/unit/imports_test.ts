import assert from "node:assert/strict";
import { importGraph, placeOf, report } from "../../scripts/imports.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("src/ has no import cycle and no import against the data's direction", async () => {
  const graph = await importGraph(root);
  const r = report(graph);
  // Positive control: the graph was read (every src/ file, and their imports).
  assert.ok(r.modules >= 40 && r.imports >= 100, `${r.modules} modules, ${r.imports} imports`);
  assert.ok(graph.get("src/monitor.ts")?.has("src/flow/state.ts"), "monitor imports the table");
  assert.deepEqual(r.cycles, []);
  assert.deepEqual(r.arrows, []);
});

Deno.test("the import check finds a cycle and arrows up and across", () => {
  const graph = new Map([
    ["src/flow/state.ts", new Set(["src/output/json.ts"])], // table -> sink: upward
    ["src/output/json.ts", new Set(["src/export/ipfix.ts"])], // output -> export: across
    ["src/export/ipfix.ts", new Set(["src/flow/state.ts", "src/events.ts"])],
    ["src/events.ts", new Set<string>()],
  ]);
  const r = report(graph);
  assert.deepEqual(r.cycles, [["src/export/ipfix.ts", "src/flow/state.ts", "src/output/json.ts"]]);
  assert.deepEqual(r.arrows, [
    { from: "src/flow/state.ts", to: "src/output/json.ts", kind: "upward" },
    { from: "src/output/json.ts", to: "src/export/ipfix.ts", kind: "across" },
  ]);
  assert.deepEqual(placeOf("src/flow/filter.ts")[1], "filter");
  assert.deepEqual(placeOf("src/flow/state.ts")[1], "table");
});
