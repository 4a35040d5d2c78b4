/**
 * The table format: one line per event in fixed columns, read like tcplife or
 * ss. A flow's rows keep their sides: LOCAL is always this host's endpoint and
 * REMOTE the peer, whatever the event's src/dst orientation in JSON (a begin's
 * src is the side that sent the SYN, an end's src the side that closed). Every
 * string that came from outside netflow is sanitized, and cut to its column
 * with a `…` marker (in `wide` mode names and cgroups are shown whole, at the
 * end of the line).
 *
 * Columns: TIME (local time, the zone's UTC offset in the header; `utc` for
 * UTC; `date` adds the date), EVENT (begin, end, and any other event's short
 * name), DIR (out: this host connected; in: the peer did; tx/rx for packets),
 * LOCAL, REMOTE (address:port, IPv6 in brackets), PID, COMM, DUR (s, ms or µs),
 * TX_BYTES, RX_BYTES (bytes; K, M, G are 1024, 1024², 1024³), END (who closed,
 * local or remote, and how: fin, rst, timeout, ...; packet flags for
 * packets), REMOTE_NAMES (the names the DNS cache holds for the remote
 * address). `wide` adds UID, RTT (smoothed), RETRANS (retransmitted segments)
 * and CGROUP (the container id when there is one, else the cgroup path).
 *
 * @module
 */
import { sanitize } from "./sanitize.ts";

/** How the table looks. */
export interface TableOptions {
  /** Times in UTC instead of local time. */
  utc?: boolean;
  /** The date with each time. */
  date?: boolean;
  /** Full-width addresses, whole names, and the UID, RTT, RETRANS and CGROUP columns. */
  wide?: boolean;
}

/** Any event: the known ones, and kinds this table has not been taught (shown generically). */
type AnyEvent =
  & { readonly event: string; readonly time: string }
  & Readonly<Record<string, unknown>>;

interface Column {
  title: string;
  width: number;
  /** Right-aligned (numbers). */
  right?: boolean;
  /** The cell; `undefined` leaves it empty. */
  cell: (e: AnyEvent, sides: Sides) => string | undefined;
}

interface Sides {
  local: string;
  remote: string;
  remoteNames: readonly string[];
}

/** IPv6 at its longest, in brackets, with a port: "[ffff:...:ffff]:65535". */
const IPV6_WIDTH = 47;
/** IPv4 at its longest with a port: "255.255.255.255:65535". */
const IPV4_WIDTH = 21;
const NAMES_WIDTH = 32;
const CUT = "…";

export class TableWriter {
  readonly #columns: Column[];
  readonly #clock: Clock;

  constructor(options: TableOptions = {}) {
    this.#clock = new Clock(options.utc ?? false, options.date ?? false);
    const wide = options.wide ?? false;
    const addr = wide ? IPV6_WIDTH : IPV4_WIDTH + 4;
    const columns: Column[] = [
      {
        title: this.#clock.title,
        width: this.#clock.width,
        cell: (e) => this.#clock.format(e.time),
      },
      { title: "EVENT", width: 6, cell: (e) => eventLabel(e.event) },
      { title: "DIR", width: 3, cell: direction },
      { title: "LOCAL", width: addr, cell: (_, s) => cutAddress(s.local, addr) },
      { title: "REMOTE", width: addr, cell: (_, s) => cutAddress(s.remote, addr) },
      { title: "PID", width: 7, right: true, cell: (e) => num(e.pid) },
      { title: "COMM", width: 15, cell: (e) => text(e.comm, 15) },
      { title: "DUR", width: 7, right: true, cell: (e) => duration(e.duration_ms) },
      { title: "TX_BYTES", width: 8, right: true, cell: (e) => bytes(e.bytes_sent) },
      { title: "RX_BYTES", width: 8, right: true, cell: (e) => bytes(e.bytes_received) },
      { title: "END", width: 13, cell: end },
    ];
    if (wide) {
      columns.push(
        { title: "UID", width: 6, right: true, cell: (e) => num(e.uid) },
        { title: "RTT", width: 7, right: true, cell: (e) => micros(e.rtt_us) },
        { title: "RETRANS", width: 7, right: true, cell: (e) => num(e.retransmits) },
        { title: "CGROUP", width: 24, cell: (e) => owner(e) },
      );
    }
    columns.push({
      title: "REMOTE_NAMES",
      width: 0,
      cell: (_, s) => names(s.remoteNames, wide ? Infinity : NAMES_WIDTH),
    });
    this.#columns = columns;
  }

  header(): string {
    return this.#line(this.#columns.map((c) => c.title));
  }

  /** One event as one line (no newline). */
  row(event: { readonly event: string; readonly time: string }): string {
    const e = event as AnyEvent;
    const sides = orient(e);
    return this.#line(this.#columns.map((c) => c.cell(e, sides) ?? ""));
  }

  #line(cells: string[]): string {
    return cells.map((c, i) => {
      const col = this.#columns[i]!;
      if (i === cells.length - 1) return c;
      return col.right ? c.padStart(col.width) : c.padEnd(col.width);
    }).join(" ").trimEnd();
  }
}

/** LOCAL and REMOTE for any event, from the fields that say which side src is. */
export function orient(e: AnyEvent): Sides {
  const src = endpoint(e.src, e.src_port);
  const dst = endpoint(e.dst, e.dst_port);
  // An end's src is the side that closed; a begin's (and update's, fail's)
  // the side that sent the SYN; a packet's the sender.
  let srcIsLocal = true;
  if (e.closed_by === "local" || e.closed_by === "remote") srcIsLocal = e.closed_by === "local";
  else if (e.conn_direction === "outgoing" || e.conn_direction === "incoming") {
    srcIsLocal = e.conn_direction === "outgoing";
  } else if (e.direction === "egress" || e.direction === "ingress") {
    srcIsLocal = e.direction === "egress";
  }
  const srcNames = stringList(e.src_dns), dstNames = stringList(e.dst_dns);
  return srcIsLocal
    ? { local: src, remote: dst, remoteNames: dstNames }
    : { local: dst, remote: src, remoteNames: srcNames };
}

function stringList(v: unknown): readonly string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

function endpoint(addr: unknown, port: unknown): string {
  if (typeof addr !== "string") return "";
  const a = sanitize(addr);
  const p = typeof port === "number" ? `:${port}` : "";
  return a.includes(":") ? `[${a}]${p}` : `${a}${p}`;
}

/** An address cut in the middle of the host part, keeping its start and the port. */
function cutAddress(addr: string, width: number): string {
  if (addr.length <= width) return addr;
  const port = /\]?:\d+$/.exec(addr)?.[0] ?? "";
  const keep = width - port.length - CUT.length;
  return `${addr.slice(0, Math.max(1, keep))}${CUT}${port}`;
}

/** `begin`, `end`, `packet`, and any other event's name without its `net_flow_tcp_` prefix. */
function eventLabel(name: string): string {
  if (name === "net_packet_tcp") return "packet";
  return sanitize(name.replace(/^net_flow_tcp_/, ""));
}

function direction(e: AnyEvent): string | undefined {
  if (e.conn_direction === "outgoing") return "out";
  if (e.conn_direction === "incoming") return "in";
  if (e.direction === "egress") return "tx";
  if (e.direction === "ingress") return "rx";
  return undefined;
}

function end(e: AnyEvent): string | undefined {
  if (typeof e.flags === "string") return text(e.flags, 13);
  if (typeof e.reason !== "string") return undefined;
  const by = typeof e.closed_by === "string" ? `${e.closed_by} ` : "";
  return text(`${by}${e.reason}`, 13);
}

function num(v: unknown): string | undefined {
  if (typeof v === "number") return String(v);
  return v === null ? "-" : undefined;
}

/** Text from outside netflow: sanitized and cut to `width` with a marker. */
function text(v: unknown, width: number): string | undefined {
  if (v === null) return "-";
  if (typeof v !== "string") return undefined;
  return cut(sanitize(v), width);
}

function cut(s: string, width: number): string {
  return s.length <= width ? s : `${s.slice(0, width - CUT.length)}${CUT}`;
}

/** Milliseconds as µs, ms or s, whichever reads best in 7 characters. */
export function duration(ms: unknown): string | undefined {
  if (ms === null) return "?";
  if (typeof ms !== "number") return undefined;
  return micros(ms * 1000);
}

/** Microseconds as µs, ms or s. */
function micros(us: unknown): string | undefined {
  if (us === null) return "-";
  if (typeof us !== "number") return undefined;
  if (us < 1000) return `${Math.round(us)}µs`;
  const ms = us / 1000;
  if (ms < 10) return `${ms.toFixed(2)}ms`;
  if (ms < 1000) return `${ms.toFixed(1)}ms`;
  const s = ms / 1000;
  return s < 10 ? `${s.toFixed(2)}s` : s < 1000 ? `${s.toFixed(1)}s` : `${Math.round(s)}s`;
}

/** Bytes, with K, M, G (powers of 1024) from 10,000 up. */
export function bytes(n: unknown): string | undefined {
  if (n === null) return "?";
  if (typeof n !== "number") return undefined;
  if (n < 10_000) return String(n);
  const units = ["K", "M", "G", "T", "P"];
  let v = n, u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 100 ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}

function owner(e: AnyEvent): string | undefined {
  if (typeof e.container_id === "string") return text(e.container_id.slice(0, 12), 24);
  if (typeof e.cgroup === "string") return text(e.cgroup, 24);
  return undefined;
}

function names(list: readonly string[], width: number): string {
  if (list.length === 0) return "";
  return cut(list.map(sanitize).join(","), width);
}

/** Event times ("2026-11-23T12:34:56.123456Z") in the zone the table shows. */
class Clock {
  readonly title: string;
  readonly width: number;
  readonly #utc: boolean;
  readonly #date: boolean;
  #second = -1;
  #prefix = "";

  constructor(utc: boolean, date: boolean) {
    this.#utc = utc;
    this.#date = date;
    this.width = date ? 26 : 15;
    this.title = `TIME(${utc ? "UTC" : zoneOffset(new Date())})`;
  }

  format(time: string): string {
    const second = Date.parse(`${time.slice(0, 19)}Z`);
    if (Number.isNaN(second)) return sanitize(time);
    if (second !== this.#second) {
      this.#second = second;
      const d = new Date(second);
      const [y, mo, da, h, mi, s] = this.#utc
        ? [
          d.getUTCFullYear(),
          d.getUTCMonth() + 1,
          d.getUTCDate(),
          d.getUTCHours(),
          d.getUTCMinutes(),
          d.getUTCSeconds(),
        ]
        : [
          d.getFullYear(),
          d.getMonth() + 1,
          d.getDate(),
          d.getHours(),
          d.getMinutes(),
          d.getSeconds(),
        ];
      const hms = `${two(h)}:${two(mi)}:${two(s)}`;
      this.#prefix = this.#date ? `${y}-${two(mo)}-${two(da)} ${hms}` : hms;
    }
    return `${this.#prefix}${time.slice(19, 26)}`;
  }
}

const two = (n: number) => String(n).padStart(2, "0");

/** The local zone's offset from UTC, "UTC" when there is none: "+01:00", "-05:30". */
export function zoneOffset(d: Date): string {
  const minutes = -d.getTimezoneOffset();
  if (minutes === 0) return "UTC";
  const a = Math.abs(minutes);
  return `${minutes < 0 ? "-" : "+"}${two(Math.floor(a / 60))}:${two(a % 60)}`;
}
