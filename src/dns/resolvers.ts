/**
 * The DNS servers each network namespace is configured to use, so that only
 * their answers name addresses for the whole namespace (src/dns/names.ts);
 * an answer from any other server (`dig @anywhere`, which any local user can
 * run) names an address only on the flows of the cgroup that asked.
 *
 * How a namespace's servers are learned:
 *
 * - Its `resolv.conf` nameservers, as its oldest process sees the file
 *   (`/proc/PID/root/etc/resolv.conf`): pid 1 for the host's namespace, a
 *   container's init for a container's (a process made later, e.g. by a user
 *   who bind-mounts a resolv.conf of their own in a mount namespace of their
 *   own, never counts). The file is read again when its inode, size or mtime
 *   change (looked at no more than every {@link RECHECK_MS}), and the process
 *   is found again when it is gone.
 * - A local stub or caching resolver those nameservers point to (systemd-
 *   resolved at 127.0.0.53, dnsmasq, a node-local cache): the cgroups of the
 *   processes holding a UDP socket bound to port 53 at a configured
 *   address (or the wildcard address, for a loopback nameserver) in the
 *   namespace. Answers to the queries such a resolver sends upstream name
 *   addresses for the whole namespace too: applications that reach it
 *   through nss-resolve (a Unix socket) send no DNS packet of their own.
 *
 * @module
 */
import { formatIPv4, formatIPv6, parseIP } from "../bpf/addr.ts";

/** Whether an answer names its addresses for every process of its namespace. */
export interface ResolverTrust {
  /**
   * `netns` (inode) asked `server` (the answer's source address), from a
   * socket of cgroup `asker` (0: unknown): does the answer name addresses
   * for the whole namespace?
   */
  trusted(netns: number, server: string, asker: number): boolean;
}

/** What one namespace is configured to use. */
export interface NamespaceResolvers {
  /** The nameservers, as netflow writes addresses. */
  servers: ReadonlySet<string>;
  /** Cgroup ids of local resolvers listening at those servers. */
  resolverCgroups: ReadonlySet<number>;
}

/** How often a namespace's resolv.conf and resolver sockets are looked at again, at most. */
export const RECHECK_MS = 2000;
/** How often /proc is scanned at most to find a namespace's processes. */
const SCAN_MS = 1000;
/** Namespaces kept at most (those gone are dropped at the next scan). */
const MAX_NAMESPACES = 4096;

interface Known extends NamespaceResolvers {
  pid: number;
  /** inode:size:mtime of the resolv.conf read, and the listening sockets found. */
  fileStamp: string;
  socketStamp: string;
  checkedMs: number;
}

/** The addresses of `nameserver` lines, as netflow writes addresses (scope ids dropped). */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const m = /^nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const bytes = parseIP(m[1]!.replace(/%.*$/, ""));
    if (bytes === undefined) continue;
    out.push(bytes.length === 4 ? formatIPv4(bytes) : formatIPv6(bytes));
  }
  return out;
}

/**
 * Local addresses of sockets bound to port 53 in a `/proc/net/{udp,tcp}{,6}`
 * table (UDP: unconnected; TCP: listening), with their socket inodes.
 */
export function dnsSockets(table: string): { addr: string; inode: number }[] {
  const out: { addr: string; inode: number }[] = [];
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [addrHex, portHex] = f[1]!.split(":");
    const remotePort = f[2]!.split(":")[1];
    if (portHex !== "0035" || remotePort !== "0000" || addrHex === undefined) continue;
    // UDP unconnected (07) or TCP listening (0A).
    if (f[3] !== "07" && f[3] !== "0A") continue;
    out.push({ addr: kernelHexAddress(addrHex), inode: Number(f[9]) });
  }
  return out;
}

/** /proc/net's hex address: 32-bit words in host (little-endian) order. */
function kernelHexAddress(hex: string): string {
  const bytes = new Uint8Array(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    for (let b = 0; b < 4; b++) {
      bytes[w * 4 + b] = parseInt(hex.slice(w * 8 + (3 - b) * 2, w * 8 + (3 - b) * 2 + 2), 16);
    }
  }
  return bytes.length === 4 ? formatIPv4(bytes) : formatIPv6(bytes);
}

function isLoopback(addr: string): boolean {
  return addr.startsWith("127.") || addr === "::1";
}

const WILDCARDS = new Set(["0.0.0.0", "::"]);

/** Reads /proc: the namespaces' oldest processes, their resolv.conf and resolver sockets. */
export class ProcResolvers implements ResolverTrust {
  readonly #proc: string;
  readonly #cgroupMount: string;
  readonly #now: () => number;
  readonly #known = new Map<number, Known>();
  /** netns inode -> its processes (pids, oldest first), from the last scan. */
  #members = new Map<number, number[]>();
  #scannedMs = -Infinity;

  /**
   * `cgroupMount`: the host's cgroup v2 mount (a cgroup id is its
   * directory's inode); `proc`: where procfs is (tests use a made-up one).
   */
  constructor(cgroupMount: string, proc = "/proc", now: () => number = () => performance.now()) {
    this.#cgroupMount = cgroupMount;
    this.#proc = proc;
    this.#now = now;
  }

  trusted(netns: number, server: string, asker: number): boolean {
    const r = this.of(netns);
    if (r === undefined) return false;
    return r.servers.has(server) || (asker !== 0 && r.resolverCgroups.has(asker));
  }

  /** What namespace `netns` (inode) is configured to use; undefined when no process of it is seen. */
  of(netns: number): NamespaceResolvers | undefined {
    const now = this.#now();
    let known = this.#known.get(netns);
    if (known !== undefined && now - known.checkedMs < RECHECK_MS) return known;
    if (known !== undefined && this.#inNetns(known.pid, netns)) {
      this.#refresh(known, netns, now);
      return known;
    }
    const pid = this.#oldest(netns, now);
    if (pid === undefined) {
      this.#known.delete(netns);
      return undefined;
    }
    known = {
      pid,
      servers: new Set(),
      resolverCgroups: new Set(),
      fileStamp: "",
      socketStamp: "",
      checkedMs: now,
    };
    if (this.#known.size >= MAX_NAMESPACES) this.#known.delete(this.#known.keys().next().value!);
    this.#known.set(netns, known);
    this.#refresh(known, netns, now);
    return known;
  }

  #refresh(known: Known, netns: number, now: number): void {
    known.checkedMs = now;
    const file = `${this.#proc}/${known.pid}/root/etc/resolv.conf`;
    let stamp = "";
    try {
      const st = Deno.statSync(file);
      stamp = `${st.ino}:${st.size}:${st.mtime?.getTime()}`;
    } catch { /* no resolv.conf: no configured servers */ }
    if (stamp !== known.fileStamp) {
      known.fileStamp = stamp;
      let servers: string[] = [];
      try {
        servers = stamp === "" ? [] : parseResolvConf(Deno.readTextFileSync(file));
      } catch { /* unreadable: none */ }
      known.servers = new Set(servers);
      known.socketStamp = ""; // the resolvers follow the servers
    }
    this.#findResolvers(known, netns);
  }

  /** The cgroups of processes listening on port 53 at a configured server address. */
  #findResolvers(known: Known, netns: number): void {
    const sockets: number[] = [];
    // UDP only: every resolver listens there, and the TCP tables of a busy host are large.
    for (const table of ["udp", "udp6"]) {
      let text = "";
      try {
        text = Deno.readTextFileSync(`${this.#proc}/${known.pid}/net/${table}`);
      } catch {
        continue;
      }
      for (const s of dnsSockets(text)) {
        const serves = known.servers.has(s.addr) ||
          (WILDCARDS.has(s.addr) && [...known.servers].some(isLoopback));
        if (serves) sockets.push(s.inode);
      }
    }
    const stamp = sockets.sort((a, b) => a - b).join(",");
    if (stamp === known.socketStamp) return;
    known.socketStamp = stamp;
    known.resolverCgroups = sockets.length === 0 ? new Set() : this.#holders(sockets, netns);
  }

  /** Cgroup ids of the processes of `netns` that hold one of the socket inodes. */
  #holders(inodes: number[], netns: number): Set<number> {
    const wanted = new Set(inodes.map((i) => `socket:[${i}]`));
    const out = new Set<number>();
    this.#scan(this.#now(), true);
    for (const pid of this.#members.get(netns) ?? []) {
      let holds = false;
      try {
        for (const e of Deno.readDirSync(`${this.#proc}/${pid}/fd`)) {
          try {
            if (wanted.has(Deno.readLinkSync(`${this.#proc}/${pid}/fd/${e.name}`))) {
              holds = true;
              break;
            }
          } catch { /* closed meanwhile */ }
        }
      } catch {
        continue; // gone, or not readable
      }
      if (!holds) continue;
      const id = this.#cgroupId(pid);
      if (id !== undefined) out.add(id);
    }
    return out;
  }

  #cgroupId(pid: number): number | undefined {
    try {
      const text = Deno.readTextFileSync(`${this.#proc}/${pid}/cgroup`);
      const m = /^0::(\/.*)$/m.exec(text);
      if (!m) return undefined;
      return Deno.statSync(`${this.#cgroupMount}${m[1] === "/" ? "" : m[1]}`).ino ?? undefined;
    } catch {
      return undefined;
    }
  }

  #inNetns(pid: number, netns: number): boolean {
    try {
      return Deno.statSync(`${this.#proc}/${pid}/ns/net`).ino === netns;
    } catch {
      return false;
    }
  }

  /** The namespace's oldest process (by start time), from a scan at most SCAN_MS old. */
  #oldest(netns: number, now: number): number | undefined {
    if (!this.#members.has(netns)) this.#scan(now, false);
    const pids = this.#members.get(netns);
    return pids?.find((pid) => this.#inNetns(pid, netns));
  }

  #scan(now: number, force: boolean): void {
    if (!force && now - this.#scannedMs < SCAN_MS) return;
    this.#scannedMs = now;
    const members = new Map<number, { pid: number; start: number }[]>();
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(this.#proc)];
    } catch { /* no procfs */ }
    for (const e of entries) {
      if (!/^\d+$/.test(e.name)) continue;
      const pid = Number(e.name);
      try {
        const ino = Deno.statSync(`${this.#proc}/${pid}/ns/net`).ino;
        if (ino === null) continue;
        const start = startTime(Deno.readTextFileSync(`${this.#proc}/${pid}/stat`));
        let list = members.get(ino);
        if (list === undefined) members.set(ino, list = []);
        list.push({ pid, start });
      } catch { /* gone, or a kernel thread's unreadable ns */ }
    }
    this.#members = new Map(
      [...members].map(([ino, list]) => [
        ino,
        list.sort((a, b) => a.start - b.start || a.pid - b.pid).map((p) => p.pid),
      ]),
    );
    for (const ino of this.#known.keys()) if (!this.#members.has(ino)) this.#known.delete(ino);
  }
}

/** Field 22 of /proc/PID/stat (start time in clock ticks), after the parenthesised comm. */
function startTime(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[19]);
}
