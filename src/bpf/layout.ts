/**
 * The records bpf/netflow.h defines, as TypeScript reads them: each field's
 * byte offset (checked against the BTF of the built object by
 * tests/unit/records_test.ts), the record kinds, and how to read a u64 and a
 * C string.
 *
 * @module
 */
import { NF_KIND, NF_SIZE } from "./abi.ts";

/** Byte offsets of each record's fields, by the names netflow.h gives them. */
export const LAYOUT = {
  nf_header: {
    size: 24,
    fields: { ts_ns: 0, cgroup_id: 8, kind: 16, direction: 17, family: 18, pad: 19 },
  },
  nf_flow: {
    size: 160,
    fields: {
      hdr: 0,
      cookie: 24,
      begin_ns: 32,
      bytes_acked: 40,
      bytes_received: 48,
      netns_cookie: 56,
      laddr: 64,
      raddr: 80,
      netns: 96,
      snd_una: 100,
      write_seq: 104,
      srtt_us: 108,
      segs_in: 112,
      segs_out: 116,
      total_retrans: 120,
      sk_err: 124,
      pid: 128,
      uid: 132,
      lport: 136,
      rport: 138,
      flags: 140,
      end: 141,
      old_state: 142,
      new_state: 143,
      comm: 144,
    },
  },
  nf_packet: {
    size: 120,
    fields: {
      hdr: 0,
      sock_cookie: 24,
      netns_cookie: 32,
      saddr: 40,
      daddr: 56,
      seq: 72,
      ack_seq: 76,
      pid: 80,
      uid: 84,
      netns: 88,
      sport: 92,
      dport: 94,
      tcp_flags: 96,
      sock_flags: 97,
      sock_state: 98,
      pad: 99,
      comm: 104,
    },
  },
  nf_holder: {
    size: 88,
    fields: {
      cookie: 0,
      saddr: 8,
      daddr: 24,
      pid: 40,
      uid: 44,
      netns: 48,
      sport: 52,
      dport: 54,
      family: 56,
      state: 57,
      mptcp: 58,
      pad: 59,
      comm: 64,
      cgroup_id: 80,
    },
  },
  nf_config: {
    size: 164,
    fields: {
      forward_all: 0,
      snapshot_all: 1,
      report_fail: 2,
      filter_families: 3,
      self_pid: 4,
      filter_net: 8,
      filter_net_prefix: 136,
      filter_port: 144,
      filter_nets: 160,
      filter_ports: 161,
      filter_directions: 162,
      kernel_has: 163,
    },
  },
  nf_dns: {
    size: 1384,
    fields: {
      hdr: 0,
      question: 24,
      netns_cookie: 32,
      query_cgroup: 40,
      saddr: 48,
      daddr: 64,
      netns: 80,
      stream_off: 84,
      sport: 88,
      dport: 90,
      payload_len: 92,
      captured_len: 94,
      query_id: 96,
      transport: 98,
      pad: 99,
      payload: 104,
    },
  },
} as const;

/** enum nf_kind (src/bpf/abi.ts): packets (with DNS) first, then flows, then handshakes. */
export const KIND_PACKET = NF_KIND.PACKET, KIND_DNS = NF_KIND.DNS;
export const KIND_BEGIN = NF_KIND.BEGIN, KIND_END = NF_KIND.END, KIND_LISTEN = NF_KIND.LISTEN;
export const KIND_RELEASE = NF_KIND.RELEASE, KIND_UPDATE = NF_KIND.UPDATE;
export const KIND_FAIL = NF_KIND.FAIL, KIND_SYN = NF_KIND.SYN, KIND_HS_RST = NF_KIND.HS_RST;
export const KIND_REFUSED = NF_KIND.REFUSED;
/** The kernel's TASK_COMM_LEN: a comm field's bytes, NUL included. */
export const COMM_LEN = NF_SIZE.COMM_LEN;

/** A u64 field as a number: exact below 2^53, which counters and ids stay under. */
export function u64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * 4294967296 + view.getUint32(at, true);
}

const utf8 = new TextDecoder();

/** A NUL-terminated string of at most `max` bytes; ASCII without a decoder call. */
export function cString(bytes: Uint8Array, at: number, max: number): string {
  let out = "";
  for (let i = at; i < at + max; i++) {
    const b = bytes[i]!;
    if (b === 0) return out;
    if (b >= 0x80) {
      const end = bytes.subarray(at, at + max).indexOf(0);
      return utf8.decode(bytes.subarray(at, end < 0 ? at + max : at + end));
    }
    out += String.fromCharCode(b);
  }
  return out;
}
