/**
 * The IPFIX encoder (RFC 7011): messages of template and data sets carrying
 * one biflow record (RFC 5103) per flow, initiator to responder. Pure: no
 * sockets, no clock; the transports (udp.ts, tcp.ts) own those.
 *
 * Elements, in template order (IANA numbers unless a PEN is given):
 *
 * | element | id | bytes |
 * |---|---|---|
 * | flowStartMilliseconds | 152 | 8 |
 * | flowEndMilliseconds | 153 | 8 |
 * | sourceIPv4Address / sourceIPv6Address | 8 / 27 | 4 / 16 |
 * | destinationIPv4Address / destinationIPv6Address | 12 / 28 | 4 / 16 |
 * | sourceTransportPort | 7 | 2 |
 * | destinationTransportPort | 11 | 2 |
 * | protocolIdentifier | 4 | 1 |
 * | flowEndReason | 136 | 1 |
 * | flowDirection (0 ingress: the remote side initiated, 1 egress) | 61 | 1 |
 * | biflowDirection (1: the source is the initiator) | 239 | 1 |
 * | octetDeltaCount, packetDeltaCount | 1, 2 | 8 each |
 * | reverseOctetDeltaCount, reversePacketDeltaCount | PEN 29305: 1, 2 | 8 each |
 * | netflow pid, uid (4294967295: unknown) | PEN 32473: 1, 2 | 4 each |
 * | netflow comm, container id (empty: unknown) | PEN 32473: 3, 4 | variable |
 *
 * A record whose counters the kernel did not give goes out with a template
 * that has no counter elements, rather than with zeros. Templates go with
 * RFC 5610 type records for the PEN 32473 elements (options template 260).
 *
 * @module
 */
import { utf8Bytes, Writer } from "./writer.ts";

const utf8 = new TextEncoder();

/** RFC 5103's PEN for reverse information elements. */
export const PEN_REVERSE = 29305;
/**
 * The PEN of netflow's own elements: 32473 is IANA's example enterprise
 * number for documentation (RFC 5612); a deployment would use its own.
 */
export const PEN_NETFLOW = 32473;

export const IPFIX_VERSION = 10;
const SET_HEADER_BYTES = 4;
const TEMPLATE_SET_ID = 2;
const OPTIONS_TEMPLATE_SET_ID = 3;
/** The options template of the RFC 5610 element type records. */
export const ELEMENT_TYPES_TEMPLATE = 260;
/**
 * Its fields, as RFC 5610 section 3.9 lists them: PEN and element id (scope),
 * data type, semantics, units, range begin and end, name, description.
 */
const ELEMENT_TYPE_FIELDS: [id: number, length: number][] = [
  [346, 4],
  [303, 2],
  [339, 1],
  [344, 1],
  [345, 2],
  [342, 8],
  [343, 8],
  [341, 0xffff],
  [340, 0xffff],
];

/**
 * netflow's own elements (PEN 32473), as RFC 5610 describes them: IANA data
 * type codes (3 unsigned32, 13 string) and semantics (0 default, 4 identifier).
 * src/export/ipfix-elements.xml says the same for tools that load XML.
 */
export const NETFLOW_ELEMENTS = [
  {
    id: 1,
    name: "netflowProcessId",
    dataType: 3,
    semantics: 4,
    description: "pid of the process holding the local socket; 4294967295 when unknown",
  },
  {
    id: 2,
    name: "netflowUserId",
    dataType: 3,
    semantics: 4,
    description: "its uid; 4294967295 when unknown",
  },
  {
    id: 3,
    name: "netflowProcessName",
    dataType: 13,
    semantics: 0,
    description: "its comm; empty when unknown",
  },
  {
    id: 4,
    name: "netflowContainerId",
    dataType: 13,
    semantics: 0,
    description: "the container id derived from the socket's cgroup; empty when none",
  },
] as const;
const VARIABLE = 0xffff;
/** The value of pid and uid when netflow does not know them. */
export const UNKNOWN_ID = 0xffffffff;

/** flowEndReason values (IANA "flowEndReason" registry). */
export const END_REASON = {
  idleTimeout: 1,
  activeTimeout: 2,
  endOfFlow: 3,
  forcedEnd: 4,
  lackOfResources: 5,
} as const;

/** One biflow, oriented initiator (source) to responder (destination). */
export interface FlowRecord {
  /** 4 or 16 bytes each. */
  srcAddr: Uint8Array;
  dstAddr: Uint8Array;
  srcPort: number;
  dstPort: number;
  /** IP protocol (6 for TCP). */
  protocol: number;
  startMs: number;
  endMs: number;
  endReason: number;
  /** True when this host initiated (flowDirection egress). */
  egress: boolean;
  /** Bytes and packets each way since the last record of the flow; undefined when unknown. */
  counters?: { octets: number; packets: number; reverseOctets: number; reversePackets: number };
  pid: number | null;
  uid: number | null;
  comm: string | null;
  containerId: string | null;
}

type Field = [id: number, length: number, pen?: number];

function fields(v6: boolean, counters: boolean): Field[] {
  return [
    [152, 8],
    [153, 8],
    v6 ? [27, 16] : [8, 4],
    v6 ? [28, 16] : [12, 4],
    [7, 2],
    [11, 2],
    [4, 1],
    [136, 1],
    [61, 1],
    [239, 1],
    ...(counters ? [[1, 8], [2, 8], [1, 8, PEN_REVERSE], [2, 8, PEN_REVERSE]] as Field[] : []),
    [1, 4, PEN_NETFLOW],
    [2, 4, PEN_NETFLOW],
    [3, VARIABLE, PEN_NETFLOW],
    [4, VARIABLE, PEN_NETFLOW],
  ];
}

/** Template ids: IPv4 and IPv6, with and without counters. */
export const TEMPLATES = [
  { id: 256, v6: false, counters: true },
  { id: 257, v6: true, counters: true },
  { id: 258, v6: false, counters: false },
  { id: 259, v6: true, counters: false },
] as const;

function templateId(r: FlowRecord): number {
  return 256 + (r.srcAddr.length === 16 ? 1 : 0) + (r.counters ? 0 : 2);
}

function encodeRecord(w: Writer, r: FlowRecord): void {
  w.u64(r.startMs);
  w.u64(r.endMs);
  w.raw(r.srcAddr);
  w.raw(r.dstAddr);
  w.u16(r.srcPort);
  w.u16(r.dstPort);
  w.u8(r.protocol);
  w.u8(r.endReason);
  w.u8(r.egress ? 1 : 0);
  w.u8(1); // biflowDirection: initiator
  if (r.counters) {
    w.u64(r.counters.octets);
    w.u64(r.counters.packets);
    w.u64(r.counters.reverseOctets);
    w.u64(r.counters.reversePackets);
  }
  w.u32(r.pid ?? UNKNOWN_ID);
  w.u32(r.uid ?? UNKNOWN_ID);
  w.varlen(utf8Bytes(r.comm, 254));
  w.varlen(utf8Bytes(r.containerId, 254));
}

/** A message of data records, and how many records it holds. */
export interface DataMessage {
  bytes: Uint8Array;
  records: number;
}

export interface EncoderOptions {
  /** The Observation Domain ID in every message header (default 1). */
  domain?: number;
  /** Largest message, in bytes (default 1400, under an Ethernet MTU with headers). */
  maxMessageBytes?: number;
}

/**
 * Builds IPFIX messages for one transport session: it counts the data
 * records sent for the header's sequence number; `reset()` starts a new
 * session (a new TCP connection).
 */
export class IpfixEncoder {
  readonly domain: number;
  readonly maxMessageBytes: number;
  #sequence = 0;

  constructor(options: EncoderOptions = {}) {
    this.domain = options.domain ?? 1;
    this.maxMessageBytes = options.maxMessageBytes ?? 1400;
  }

  /** Data records counted so far in this session (the next message's sequence number). */
  get sequence(): number {
    return this.#sequence;
  }

  reset(): void {
    this.#sequence = 0;
  }

  /**
   * A message holding every template, then netflow's element definitions as
   * RFC 5610 information element type records (an options template and its
   * four records, counted in the sequence number), so a collector that reads
   * them (libfixbuf: `ipfixDump --rfc5610`) names and types PEN 32473's
   * elements without any configuration.
   */
  templateMessage(exportSec: number): Uint8Array {
    const w = new Writer();
    this.#header(w, exportSec);
    const setStart = w.length;
    w.u16(TEMPLATE_SET_ID);
    w.u16(0); // set length, below
    for (const t of TEMPLATES) {
      const list = fields(t.v6, t.counters);
      w.u16(t.id);
      w.u16(list.length);
      for (const [id, length, pen] of list) {
        w.u16(pen === undefined ? id : id | 0x8000);
        w.u16(length);
        if (pen !== undefined) w.u32(pen);
      }
    }
    w.view.setUint16(setStart + 2, w.length - setStart);
    // RFC 5610: scope privateEnterpriseNumber (346) + informationElementId (303).
    const optStart = w.length;
    w.u16(OPTIONS_TEMPLATE_SET_ID);
    w.u16(0);
    w.u16(ELEMENT_TYPES_TEMPLATE);
    w.u16(ELEMENT_TYPE_FIELDS.length);
    w.u16(2); // scope field count
    for (const [id, length] of ELEMENT_TYPE_FIELDS) {
      w.u16(id);
      w.u16(length);
    }
    w.view.setUint16(optStart + 2, w.length - optStart);
    const dataStart = w.length;
    w.u16(ELEMENT_TYPES_TEMPLATE);
    w.u16(0);
    for (const e of NETFLOW_ELEMENTS) {
      w.u32(PEN_NETFLOW);
      w.u16(e.id);
      w.u8(e.dataType);
      w.u8(e.semantics);
      w.u16(0); // units: none
      w.u64(0); // no range
      w.u64(0);
      w.varlen(utf8.encode(e.name));
      w.varlen(utf8.encode(e.description));
    }
    w.view.setUint16(dataStart + 2, w.length - dataStart);
    this.#sequence = (this.#sequence + NETFLOW_ELEMENTS.length) >>> 0;
    return this.#finish(w);
  }

  /**
   * Messages holding `records` (in order, each message at most
   * maxMessageBytes), one data set per run of records of the same template.
   * Counts them into the sequence number as if they will be sent; a record
   * dropped later shows to the collector as a gap in the sequence.
   */
  dataMessages(records: readonly FlowRecord[], exportSec: number): DataMessage[] {
    const out: DataMessage[] = [];
    let count = 0;
    let w: Writer | undefined;
    let setStart = -1, setId = -1;
    const closeSet = () => {
      if (w && setStart >= 0) w.view.setUint16(setStart + 2, w.length - setStart);
      setStart = -1;
      setId = -1;
    };
    const closeMessage = () => {
      if (!w) return;
      closeSet();
      out.push({ bytes: this.#finish(w), records: count });
      w = undefined;
      count = 0;
    };
    for (const r of records) {
      const one = new Writer();
      encodeRecord(one, r);
      const id = templateId(r);
      const need = one.length + (id === setId ? 0 : SET_HEADER_BYTES);
      if (w && w.length + need > this.maxMessageBytes) closeMessage();
      if (!w) {
        w = new Writer();
        this.#header(w, exportSec);
      }
      if (id !== setId) {
        closeSet();
        setStart = w.length;
        setId = id;
        w.u16(id);
        w.u16(0);
      }
      w.raw(one.done());
      count++;
      this.#sequence = (this.#sequence + 1) >>> 0;
    }
    closeMessage();
    return out;
  }

  #header(w: Writer, exportSec: number): void {
    w.u16(IPFIX_VERSION);
    w.u16(0); // message length, in #finish
    w.u32(exportSec);
    w.u32(this.#sequence);
    w.u32(this.domain);
  }

  #finish(w: Writer): Uint8Array {
    w.view.setUint16(2, w.length);
    return w.done();
  }
}
