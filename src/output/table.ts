/**
 * The table format: one line per event, in fixed-width columns (values wider
 * than their column push the rest of the line, as tcplife does), with every
 * string that came from outside netflow sanitized.
 *
 * @module
 */
import type { FlowEvent, NetflowEvent, PacketEvent } from "../flow/events.ts";
import { sanitize } from "./sanitize.ts";

const COLUMNS: [title: string, width: number][] = [
  ["TIME", 15],
  ["EVENT", 5],
  ["DIR", 3],
  ["SRC", 21],
  ["DST", 21],
  ["PID", 7],
  ["COMM", 15],
  ["DURATION", 10],
  ["TX", 9],
  ["RX", 9],
  ["END", 9],
  ["NAMES", 0],
];

export function tableHeader(): string {
  return row(COLUMNS.map(([title]) => title));
}

export function formatTable(event: NetflowEvent): string {
  return event.event === "net_packet_tcp" ? packetRow(event) : flowRow(event);
}

function flowRow(e: FlowEvent): string {
  const end = e.event === "net_flow_tcp_end" ? e : undefined;
  return row([
    clock(e.time),
    end ? "end" : "begin",
    e.conn_direction === "outgoing" ? "out" : "in",
    endpoint(e.src, e.src_port),
    endpoint(e.dst, e.dst_port),
    e.pid === null ? "-" : String(e.pid),
    e.comm === null ? "-" : sanitize(e.comm),
    end ? (end.duration_ms === null ? "?" : `${end.duration_ms.toFixed(1)}ms`) : "",
    end ? bytes(end.bytes_sent) : "",
    end ? bytes(end.bytes_received) : "",
    end ? `${end.closed_by === "local" ? "L" : "R"}:${end.reason}` : "",
    names(e.src_dns, e.dst_dns),
  ]);
}

function packetRow(e: PacketEvent): string {
  return row([
    clock(e.time),
    "pkt",
    e.direction === "egress" ? "tx" : "rx",
    endpoint(e.src, e.src_port),
    endpoint(e.dst, e.dst_port),
    e.pid === null ? "-" : String(e.pid),
    e.comm === null ? "-" : sanitize(e.comm),
    "",
    "",
    "",
    "",
    e.flags,
  ]);
}

function row(cells: string[]): string {
  return cells.map((c, i) => {
    const width = COLUMNS[i]?.[1] ?? 0;
    return i === cells.length - 1 ? c : c.padEnd(width);
  }).join(" ").trimEnd();
}

/** "2026-11-23T12:34:56.123456Z" -> "12:34:56.123456" */
function clock(time: string): string {
  return time.slice(11, 26);
}

function endpoint(addr: string, port: number): string {
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function bytes(n: number | null): string {
  if (n === null) return "?";
  if (n < 10_000) return String(n);
  const units = ["K", "M", "G", "T"];
  let v = n, u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)}${units[u]}`;
}

function names(src: readonly string[], dst: readonly string[]): string {
  if (src.length === 0 && dst.length === 0) return "";
  const list = (n: readonly string[]) => n.length === 0 ? "-" : n.map(sanitize).join(",");
  return `${list(src)} > ${list(dst)}`;
}
