/**
 * JSON Lines written as bytes straight into the stdout sink's buffer
 * (src/output/line_bytes.ts): the same bytes as src/output/json.ts's line
 * encoded in UTF-8 (tests/unit/lean_format_test.ts and json_bytes_test.ts
 * compare both with JSON.stringify), without a string per line: the keys are
 * pieces made once, numbers are written as digits, netflow's own text (time,
 * flow id, addresses, Community ID) a byte a character, and what came from
 * elsewhere (comm, cgroup, DNS names) from bytes made once per place or list.
 *
 * @module
 */
import type { FlowCounters, FlowEvent, NetflowEvent } from "../events.ts";
import { CommunityIds } from "./community_id.ts";
import { formatJson, names, places } from "./json.ts";
import { type LineBytes, utf8 } from "./line_bytes.ts";

const TIME = utf8('{"time":"');
/** `","event":"NAME","flow_id":"` per event name. */
const EVENT: Readonly<Record<FlowEvent["event"], Uint8Array>> = {
  net_flow_tcp_begin: utf8('","event":"net_flow_tcp_begin","flow_id":"'),
  net_flow_tcp_end: utf8('","event":"net_flow_tcp_end","flow_id":"'),
  net_flow_tcp_update: utf8('","event":"net_flow_tcp_update","flow_id":"'),
  net_flow_tcp_fail: utf8('","event":"net_flow_tcp_fail","flow_id":"'),
};
const DIRECTION = utf8('","conn_direction":"');
const SRC = utf8('","src":"');
/** The direction with the keys around it, `","conn_direction":"outgoing","src":"`. */
const OUTGOING = utf8('","conn_direction":"outgoing","src":"');
const INCOMING = utf8('","conn_direction":"incoming","src":"');
/** `,"closed_by":"local","reason":"` and the remote one. */
const LOCAL = utf8(',"closed_by":"local","reason":"');
const REMOTE = utf8(',"closed_by":"remote","reason":"');
/** An end's or a fail's reason and the key after it, `fin","duration_ms":`. */
const [FIN, RST, TIMEOUT, UNKNOWN, REFUSED, RESET] = [
  "fin",
  "rst",
  "timeout",
  "unknown",
  "refused",
  "reset",
].map((r) => utf8(`${r}","duration_ms":`));
const DST = utf8('","dst":"');
const SRC_PORT = utf8('","src_port":');
const DST_PORT = utf8(',"dst_port":');
const SRC_DNS = utf8(',"src_dns":');
const DST_DNS = utf8(',"dst_dns":');
const NO_NAMES = utf8("[]");
const CLOSED_BY = utf8(',"closed_by":"');
const REASON_AFTER_QUOTE = utf8('","reason":"');
const REASON = utf8(',"reason":"');
const DURATION_AFTER_QUOTE = utf8('","duration_ms":');
const DURATION = utf8(',"duration_ms":');
const BYTES_SENT = utf8(',"bytes_sent":');
const BYTES_RECEIVED = utf8(',"bytes_received":');
const PACKETS_SENT = utf8(',"packets_sent":');
const PACKETS_RECEIVED = utf8(',"packets_received":');
const RTT = utf8(',"rtt_us":');
const RETRANSMITS = utf8(',"retransmits":');
const COMMUNITY_ID = utf8(',"community_id":"');
const ID_END = utf8('"}');
const COMMA = 44;
const NOTHING = new Uint8Array(0);

/**
 * DNS name lists as JSON bytes, for the last few lists written: a flow's
 * begin and end share theirs (kept on the flow, src/enrich/dns.ts).
 */
class NameBytes {
  readonly #lists: (readonly string[] | undefined)[] = [undefined, undefined, undefined, undefined];
  readonly #bytes: Uint8Array[] = [NO_NAMES, NO_NAMES, NO_NAMES, NO_NAMES];
  #next = 0;

  of(list: readonly string[]): Uint8Array {
    if (list.length === 0) return NO_NAMES;
    for (let i = 0; i < this.#lists.length; i++) {
      if (this.#lists[i] === list) return this.#bytes[i]!;
    }
    const bytes = utf8(names(list));
    this.#lists[this.#next] = list;
    this.#bytes[this.#next] = bytes;
    this.#next = (this.#next + 1) % this.#lists.length;
    return bytes;
  }
}

/** Writes events as JSON lines (without the newline) with each flow's Community ID. */
export class JsonBytes {
  readonly #ids: CommunityIds;
  readonly #names = new NameBytes();

  constructor(ids = new CommunityIds()) {
    this.#ids = ids;
  }

  /**
   * `event` as formatJson(event, its Community ID) writes it, in UTF-8, into
   * `out` (`id`: the ID to write, when not this writer's of the event).
   */
  write(event: NetflowEvent, out: LineBytes, id: string = this.#ids.of(event)): void {
    if (event.event === "net_packet_tcp") {
      out.encoded(formatJson(event, id)); // raw packets (debugging): the string writer
      return;
    }
    this.#flow(event, out);
    out.keyText(COMMUNITY_ID, id); // base64 and digits: no escaping
    out.put(ID_END);
  }

  /** The flow event's object without its closing brace. */
  #flow(e: FlowEvent, out: LineBytes): void {
    // time, event, flow_id, conn_direction and the addresses are netflow's own
    // text (digits, hex, dots and colons): no escaping needed (json.ts's too).
    out.keyText(TIME, e.time);
    out.put(EVENT[e.event]);
    out.text(e.flow_id);
    const d = e.conn_direction;
    known(
      out,
      d === "outgoing" ? OUTGOING : d === "incoming" ? INCOMING : undefined,
      DIRECTION,
      d,
      SRC,
    );
    out.text(e.src);
    out.keyText(DST, e.dst);
    out.keyNum(SRC_PORT, e.src_port);
    out.keyNum(DST_PORT, e.dst_port);
    out.put2(SRC_DNS, this.#names.of(e.src_dns));
    out.put2(DST_DNS, this.#names.of(e.dst_dns));
    out.byte(COMMA);
    out.put(places.bytesOf(e));
    switch (e.event) {
      case "net_flow_tcp_begin":
        return;
      case "net_flow_tcp_fail":
        out.put(REASON);
        reason(e.reason, out);
        out.numOrNull(e.duration_ms);
        return;
      case "net_flow_tcp_update":
        out.keyNum(DURATION, e.duration_ms);
        counters(e, out);
        return;
      case "net_flow_tcp_end": {
        const c = e.closed_by;
        const closer = c === "local" ? LOCAL : c === "remote" ? REMOTE : undefined;
        known(out, closer, CLOSED_BY, c, REASON_AFTER_QUOTE);
        reason(e.reason, out);
        out.numOrNull(e.duration_ms);
        counters(e, out);
      }
    }
  }
}

/** The reason's text and `","duration_ms":` after it. */
function reason(text: string, out: LineBytes): void {
  const piece = text === "fin"
    ? FIN
    : text === "rst"
    ? RST
    : text === "timeout"
    ? TIMEOUT
    : text === "unknown"
    ? UNKNOWN
    : text === "refused"
    ? REFUSED
    : text === "reset"
    ? RESET
    : undefined;
  known(out, piece, NOTHING, text, DURATION_AFTER_QUOTE);
}

/** A known value's piece (made once with the keys around it), else `key`, `text` and `after`. */
function known(
  out: LineBytes,
  piece: Uint8Array | undefined,
  key: Uint8Array,
  text: string,
  after: Uint8Array,
): void {
  if (piece !== undefined) out.put(piece);
  else {
    out.keyText(key, text);
    out.put(after);
  }
}

function counters(e: FlowCounters, out: LineBytes): void {
  out.keyNum(BYTES_SENT, e.bytes_sent);
  out.keyNum(BYTES_RECEIVED, e.bytes_received);
  out.keyNum(PACKETS_SENT, e.packets_sent);
  out.keyNum(PACKETS_RECEIVED, e.packets_received);
  out.keyNum(RTT, e.rtt_us);
  out.keyNum(RETRANSMITS, e.retransmits);
}
