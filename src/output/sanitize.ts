/**
 * Text from the network (DNS names) or from other processes (comm, cgroup
 * paths) is stripped before it reaches a terminal: escape sequences, C0/C1
 * control characters, and bidirectional overrides that could reorder a line.
 *
 * @module
 */

// CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and two-character escapes.
// deno-lint-ignore no-control-regex -- matching control characters is the point
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?/g;
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with escape sequences and control characters removed. */
export function sanitize(text: string): string {
  return text.replace(ESCAPES, "").replace(CONTROLS, "");
}
