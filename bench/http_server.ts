/**
 * The benchmark's HTTP server: answers every request with a 2-byte body.
 * `deno run --allow-net bench/http_server.ts PORT`
 *
 * @module
 */
const port = Number(Deno.args[0] ?? 8080);
Deno.serve(
  { port, hostname: "127.0.0.1", onListen: () => console.log(`listening ${port}`) },
  () => new Response("ok"),
);
