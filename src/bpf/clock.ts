/**
 * The kernel's timestamps are CLOCK_MONOTONIC; events carry the wall clock.
 * The decoder adds the offset between the two, re-read at every drain: the
 * wall clock may have stepped, or NTP slewed it.
 *
 * @module
 */
import { clocks } from "../ffi/syscalls.ts";

/**
 * The wall clock moved against the monotonic one by more than this (µs):
 * the two clock reads behind clockOffsetUs() jitter by a few µs, NTP slews at
 * most 500 µs a second.
 */
const CLOCK_MOVED_US = 200;

/** Realtime minus monotonic (what the kernel's timestamps count), in µs. */
export function clockOffsetUs(): number {
  const { monotonicNs, realtimeNs } = clocks();
  return Number((realtimeNs - monotonicNs) / 1000n);
}

/**
 * Takes the offset anew only when it moved by more than the reading's own
 * jitter, so that the times of a flow's events agree with its (monotonic)
 * duration unless the clock really moved.
 */
export function followClock(decoder: { clockOffsetUs: number }): void {
  const offset = clockOffsetUs();
  if (Math.abs(offset - decoder.clockOffsetUs) > CLOCK_MOVED_US) decoder.clockOffsetUs = offset;
}

/** Now, as the wall clock (µs, for events' time) and the kernel's monotonic clock (ns). */
export function nowClocks(): { us: number; ns: number } {
  const clock = clocks();
  return { us: Number(clock.realtimeNs / 1000n), ns: Number(clock.monotonicNs) };
}
