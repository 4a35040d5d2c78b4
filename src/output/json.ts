/**
 * JSON Lines: one event per line. JSON.stringify escapes every control
 * character and lone surrogate, so any name a DNS answer held stays valid JSON.
 *
 * @module
 */
import type { NetflowEvent } from "../flow/events.ts";

export function formatJson(event: NetflowEvent): string {
  return JSON.stringify(event);
}
