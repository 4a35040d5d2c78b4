/**
 * The net_packet_tcp debug view: one TCP control packet as the cgroup_skb
 * programs saw it (`--events packet`), made into an event as it comes.
 *
 * @module
 */
import type { TcpPacket } from "../bpf/records.ts";
import { EVENT_PACKET, formatTime, type PacketEvent } from "../events.ts";

const FLAG_NAMES = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

/** The event of one control packet: its flags as names ("SYN|ACK"), its socket's owner where known. */
export function packetEvent(p: TcpPacket): PacketEvent {
  return {
    time: formatTime(p.timeUs),
    event: EVENT_PACKET,
    direction: p.direction,
    src: p.src,
    dst: p.dst,
    src_port: p.srcPort,
    dst_port: p.dstPort,
    flags: FLAG_NAMES.filter((_, i) => p.flags & (1 << i)).join("|"),
    cgroup_id: p.cgroupId,
    pid: p.owner?.pid ?? null,
    comm: p.owner?.comm ?? null,
  };
}
