#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The kernel matrix's flow check: runs netflow on the whole host and real
flows beside it, compares the events with the exact ones expected, and writes
one JSON result.

  guest_check.py check RESULT.json      run the check (as root)
  guest_check.py server PORTS.json      internal: the server peers (kc-server, kc-worker)
  guest_check.py client PORTS.json      internal: the client peer (comm kc-client)

It runs where the network is its own: in a VM booted by boot.sh (the kernel
command line names netflow_kernel_check; /etc/resolv.conf is the overlay's) or
in a private network namespace whose /etc/resolv.conf already names 127.0.0.1
(tests/kernels/host_check.sh); elsewhere it refuses, since it runs a DNS server
on 127.0.0.1:53.

Two netflow instances watch the whole host: A with every event kind (begin,
end, fail, update each second), B with `--port` (a filter applied in the
kernel) and `--metrics`. The flows, from the process kc-client to kc-server
(which listens and accepts), each side sending a known number of bytes (the
client 1000, the server 3000, the client closes first):

  v4      127.0.0.1, one connection
  v6      ::1, one connection
  dns     the client resolves kernel-check.test (dnsmasq on 127.0.0.1 answers
          127.0.0.7) and connects to the server listening there
  long    127.0.0.1, held open 2.5 s after the exchange (updates)
  holder  127.0.0.1, accepted by kc-worker, a prefork worker of kc-server
          (which made the listener and keeps it), held open 2.5 s: only
          netflow's holders iterator can name the worker at its begin
          (feature "holders")
  refused 127.0.0.1, a port nobody listens on

Beside them (issue 23 point 6), on the same kernel and in the same run:
  returns_1      every program A and B attached to a cgroup (the programs behind
                 their cgroup links in /proc/PID/fdinfo, every cgroup program
                 each loaded: the positive control) returns 1 on every exit
                 path, read from the loaded programs with `bpftool prog dump
                 xlated` (tests/kernels/exits.ts, run while the flows run)
  sigkill        a third instance C, watching a child cgroup of its own
                 (kc-kill), is SIGKILLed as soon as its fdinfo shows a link to
                 a cgroup (the positive control: at least one, and the kernel
                 had every program, map and link C held); then every one of
                 them must go (BPF_*_GET_FD_BY_ID says ENOENT within 10 s), and
                 so must everything A and B held once they have stopped; nothing
                 new is pinned. No `bpftool cgroup show`: this host's bpftool
                 cannot make that query against 5.10 (tests/kernels/held_ids.py)
  two_instances  A and B both started, and report the v4 flow (B's only one)
                 alike: the same endpoints, owners, close and bytes

The result: {"kernel", "started", "start_error", "notes" (netflow's stderr
lines other than the ready line and the summary: features that are off),
"features": {begin_end, bytes, owners, holders, dns, lifecycle, filters: {"pass",
"reason"}}, "seconds": {...}, "events": N}.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import held_ids

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SENT, REPLY = 1000, 3000  # the client's bytes, the server's bytes
NAME, NAME_ADDR = "kernel-check.test", "127.0.0.7"
HOLD = 2.5  # seconds the long flow stays open after its exchange
READY_TIMEOUT = float(os.environ.get("NETFLOW_KERNELS_READY_TIMEOUT", "150"))
FEATURES = ["begin_end", "bytes", "owners", "holders", "dns", "lifecycle", "filters",
            "returns_1", "sigkill", "two_instances"]
FLOWS = ["v4", "v6", "dns", "long", "holder"]


def set_comm(name):
    import ctypes
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def recv_exact(conn, n):
    got = 0
    while got < n:
        chunk = conn.recv(min(65536, n - got))
        if not chunk:
            raise RuntimeError(f"stream ended after {got} of {n} bytes")
        got += len(chunk)


def recv_eof(conn):
    while conn.recv(65536):
        pass


# --- the peers -----------------------------------------------------------


def server(ports_file):
    """kc-server listens for every flow and accepts all but the holder flow;
    for that one its forked kc-worker accepts while kc-server keeps the
    listener open (a prefork server). Each connection: read SENT bytes, write
    REPLY bytes, read to the client's FIN, close. Prints {"worker": PID}."""
    set_comm("kc-server")
    ports = json.load(open(ports_file))
    listeners = {}
    for flow, host in [("v4", "127.0.0.1"), ("v6", "::1"), ("dns", NAME_ADDR),
                       ("long", "127.0.0.1"), ("holder", "127.0.0.1")]:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, ports[flow]))
        s.listen(4)
        listeners[flow] = s

    def serve(s):
        conn, _ = s.accept()
        with conn:
            recv_exact(conn, SENT)
            conn.sendall(b"s" * REPLY)
            recv_eof(conn)

    worker = os.fork()
    if worker == 0:
        set_comm("kc-worker")
        serve(listeners["holder"])
        os._exit(0)
    print(json.dumps({"worker": worker}), flush=True)
    threads = [threading.Thread(target=serve, args=(s,))
               for flow, s in listeners.items() if flow != "holder"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, status = os.waitpid(worker, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


def client(ports_file):
    """Runs the flows; prints {"ports": {flow: local port}, "resolved": ADDR}."""
    set_comm("kc-client")
    ports = json.load(open(ports_file))
    mine = {}

    def exchange(host, port, flow):
        c = socket.create_connection((host, port), timeout=30)
        mine[flow] = c.getsockname()[1]
        c.sendall(b"c" * SENT)
        recv_exact(c, REPLY)
        return c

    held = exchange("127.0.0.1", ports["long"], "long")
    held_since = time.monotonic()
    # Open until the end: its begin is written before anyone closes it (a
    # close would name the worker by itself, without the holders iterator).
    holder = exchange("127.0.0.1", ports["holder"], "holder")
    exchange("127.0.0.1", ports["v4"], "v4").close()
    exchange("::1", ports["v6"], "v6").close()
    resolved = socket.getaddrinfo(NAME, ports["dns"], socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    exchange(resolved, ports["dns"], "dns").close()
    r = socket.socket()
    try:
        r.connect(("127.0.0.1", ports["refused"]))
        refused = "connected"
    except ConnectionRefusedError:
        refused = "refused"
    mine["refused"] = r.getsockname()[1]
    r.close()
    time.sleep(max(0, HOLD - (time.monotonic() - held_since)))
    held.close()
    holder.close()
    print(json.dumps({"pid": os.getpid(), "ports": mine, "resolved": resolved, "refused": refused}),
          flush=True)


# --- netflow --------------------------------------------------------------


class Netflow:
    """One netflow process; its stdout events and stderr lines are collected
    by threads, so a blocked pipe never stalls it."""

    def __init__(self, args):
        deno = os.environ.get("NETFLOW_DENO", f"{ROOT}/.tools/node_modules/deno/deno")
        env = dict(os.environ, DENO_DIR=os.environ.get("DENO_DIR", f"{ROOT}/.tools/deno-dir"),
                   DENO_NO_UPDATE_CHECK="1", NO_COLOR="1")
        # As ./netflow runs it, offline (--cached-only: a guest has no network).
        self.proc = subprocess.Popen(
            [deno, "run", "--quiet", "--cached-only", "--allow-all",
             "--v8-flags=--max-semi-space-size=4,--heap-growing-percent=100",
             "--config", f"{ROOT}/deno.json",
             f"{ROOT}/src/cli.ts", "--format", "json", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.events, self.stderr, self.bad = [], [], []
        self.ready = threading.Event()
        self.metrics = None
        self.threads = [threading.Thread(target=self._out), threading.Thread(target=self._err)]
        for t in self.threads:
            t.start()

    def _out(self):
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.bad.append(line.decode(errors="replace").rstrip())

    def _err(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.stderr.append(line)
            if line.startswith("netflow: metrics at "):
                self.metrics = line.split(" at ", 1)[1].strip()
            if line.startswith("netflow: watching cgroup"):
                self.ready.set()
        self.ready.set()  # ended: no longer worth waiting for

    def started(self):
        return self.proc.poll() is None and any(l.startswith("netflow: watching cgroup") for l in self.stderr)

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self.threads:
            t.join()
        return self.proc.returncode

    def notes(self):
        """stderr lines other than the ready line, the metrics URL and the summary."""
        return [l for l in self.stderr
                if not l.startswith(("netflow: watching cgroup", "netflow: metrics at "))
                and not (l.startswith("netflow: ") and " events, " in l and "lost records" in l)]


# --- the comparison -------------------------------------------------------


def endpoint(events, kind, cport, sport, direction):
    """The events of KIND of the endpoint (outgoing: the client's; incoming:
    the server's) of the connection between ports cport and sport."""
    return [e for e in events if e.get("event") == f"net_flow_tcp_{kind}"
            and {e.get("src_port"), e.get("dst_port")} == {cport, sport}
            and e.get("conn_direction") == direction]


def compare(events, work, peers):
    """Per feature, the reasons it fails (empty: it passes)."""
    why = {f: [] for f in FEATURES}
    cports, sports = work["ports"], work["server_ports"]
    for flow in FLOWS:
        for direction, who in [("outgoing", "client"), ("incoming", "server")]:
            at = f"{flow} {direction}"
            begins = endpoint(events, "begin", cports.get(flow), sports[flow], direction)
            ends = endpoint(events, "end", cports.get(flow), sports[flow], direction)
            if len(begins) != 1 or len(ends) != 1:
                why["begin_end"].append(f"{at}: {len(begins)} begin, {len(ends)} end")
                if not ends:
                    continue
            end = ends[0]
            if begins and begins[0].get("flow_id") != end.get("flow_id"):
                why["begin_end"].append(f"{at}: begin and end flow_id differ")
            closer = "local" if who == "client" else "remote"
            if (end.get("closed_by"), end.get("reason")) != (closer, "fin"):
                why["begin_end"].append(
                    f"{at}: end {end.get('closed_by')}/{end.get('reason')}, not {closer}/fin")
            sent, received = (SENT, REPLY) if who == "client" else (REPLY, SENT)
            if (end.get("bytes_sent"), end.get("bytes_received")) != (sent, received):
                why["bytes"].append(f"{at}: bytes {end.get('bytes_sent')}/"
                                    f"{end.get('bytes_received')}, not {sent}/{received}")
            # The holder flow's incoming side is the prefork worker's.
            holder = flow == "holder" and who == "server"
            name = "kc-worker" if holder else f"kc-{who}"
            for e in begins + ends:
                owner = (e.get("pid"), e.get("comm"))
                if owner != (peers[name], name):
                    why["holders" if holder else "owners"].append(
                        f"{at} {e['event'][13:]}: owner {owner[0]}/{owner[1]}, "
                        f"not {peers[name]}/{name}")
            if flow == "dns":
                for e in begins:
                    if NAME not in (e.get("dst_dns") or []):
                        why["dns"].append(f"{at} begin: dst_dns {e.get('dst_dns')}, not [{NAME}]")
            if flow == "long":
                updates = [u for u in endpoint(events, "update", cports.get(flow), sports[flow],
                                               direction)]
                if not updates:
                    why["lifecycle"].append(f"long {direction}: no update")
                counts = [(u.get("bytes_sent") or 0) + (u.get("bytes_received") or 0)
                          for u in updates + [end]]
                if any(b < a for a, b in zip(counts, counts[1:])):
                    why["lifecycle"].append(f"long {direction}: counters decrease: {counts}")
                if any(u.get("flow_id") != end.get("flow_id") for u in updates):
                    why["lifecycle"].append(f"long {direction}: an update's flow_id is not the end's")
    fails = [e for e in events if e.get("event") == "net_flow_tcp_fail"
             and e.get("dst_port") == sports["refused"] and e.get("conn_direction") == "outgoing"]
    if len(fails) != 1:
        why["lifecycle"].append(f"refused: {len(fails)} outgoing fail events, not 1")
    elif (fails[0].get("reason"), fails[0].get("pid"), fails[0].get("src_port")) != (
            "refused", peers["kc-client"], cports.get("refused")):
        f = fails[0]
        why["lifecycle"].append(f"refused: fail {f.get('reason')} pid {f.get('pid')} port "
                                f"{f.get('src_port')}, not refused {peers['kc-client']} "
                                f"{cports.get('refused')}")
    if work.get("refused") != "refused":
        why["lifecycle"].append(f"refused: the connect was {work.get('refused')}")
    return why


def compare_filtered(b, sports, cports, filtered):
    """Instance B (--port v4): exactly the v4 flow's begins and ends, and the
    kernel's count of flows it dropped covers the other three flows."""
    why = []
    port = sports["v4"]
    others = [e for e in b.events if port not in (e.get("src_port"), e.get("dst_port"))]
    if others:
        e = others[0]
        why.append(f"{len(others)} events of other ports passed --port {port}, e.g. "
                   f"{e.get('event')} {e.get('src_port')}->{e.get('dst_port')}")
    for direction in ["outgoing", "incoming"]:
        n = [len(endpoint(b.events, k, cports.get("v4"), port, direction)) for k in ["begin", "end"]]
        if n != [1, 1]:  # the positive control: the flow that passes is there
            why.append(f"v4 {direction} with --port {port}: {n[0]} begin, {n[1]} end")
    if filtered is None:
        why.append("no netflow_flows_filtered_in_kernel_total from --metrics")
    elif filtered < 8:
        why.append(f"the kernel dropped {filtered} flow endpoints, not at least 8 "
                   "(v6, dns, long, holder)")
    return why


# --- point 6: exit values, SIGKILL, two instances --------------------------


def cgroup2_mount():
    for line in open("/proc/mounts"):
        f = line.split()
        if f[2] == "cgroup2":
            return f[1]
    raise RuntimeError("no cgroup2 mount")


def check_exits(instances):
    """exits.ts over the programs each running instance (name -> Netflow) attached to a cgroup
    (run in a thread beside the flows): the reasons returns_1 fails (never empty on an error)."""
    try:
        return _check_exits(instances)
    except Exception as e:  # noqa: BLE001 (the reason is the result)
        return [f"{type(e).__name__}: {e}"]


def _check_exits(instances):
    deno = os.environ.get("NETFLOW_DENO", f"{ROOT}/.tools/node_modules/deno/deno")
    env = dict(os.environ, DENO_DIR=os.environ.get("DENO_DIR", f"{ROOT}/.tools/deno-dir"),
               DENO_NO_UPDATE_CHECK="1", NO_COLOR="1")
    pids = {name: nf.proc.pid for name, nf in instances.items()}
    loaded = {name: held_ids.held(pid)["cgroup_progs"] for name, pid in pids.items()}
    out = subprocess.run([deno, "run", "--quiet", "--cached-only", "--allow-all", "--config",
                          f"{ROOT}/deno.json", f"{ROOT}/tests/kernels/exits.ts",
                          *map(str, pids.values())],
                         capture_output=True, timeout=300, stdin=subprocess.DEVNULL, env=env)
    if out.returncode != 0:
        return [f"exits.ts: {out.stderr.decode().strip()[-300:]}"]
    progs = json.loads(out.stdout)
    why = [f"{p['name']} (id {p['id']}): exits return {p['exits']}"
           for p in progs if not p["exits"] or any(v != 1 for v in p["exits"])]
    why += [f"{p['name']} (id {p['id']}) is not netflow's" for p in progs
            if not str(p["name"]).startswith("netflow_")]
    for name, pid in pids.items():
        checked = {p["id"] for p in progs if p["pid"] == pid}
        # The positive control: each instance's cgroup programs, every one it loaded.
        if not checked or checked != loaded[name]:
            why.append(f"{name}: {len(checked)} programs attached to cgroups checked, "
                       f"{len(loaded[name])} cgroup programs loaded")
    if len(progs) < 7:
        why.append(f"only {len(progs)} programs checked")
    return why


class KillAtAttach:
    """Instance C on cgroup DIR, SIGKILLed as soon as it holds a link to a cgroup (its
    /proc/PID/fdinfo: a program attached); then everything it held must go."""

    def __init__(self, cgdir):
        self.cgdir = cgdir
        self.nf = Netflow(["--cgroup", cgdir])
        self.attached_at_kill = None
        self.ids = None
        self.why = []
        self.thread = threading.Thread(target=self._watch)
        self.thread.start()

    def _watch(self):
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while time.monotonic() < deadline and self.nf.proc.poll() is None:
                ready = self.nf.ready.is_set()  # before the look: a link it names is there
                ids = held_ids.held(self.nf.proc.pid)
                links = held_ids.cgroup_links(ids)
                if links or ready:
                    # The positive control: the kernel has everything C holds.
                    seen = held_ids.remaining(ids)
                    self.nf.proc.kill()
                    self.attached_at_kill, self.ids = len(links), ids
                    counts = [len(ids["progs"]), len(ids["maps"]), len(ids["links"])]
                    if [len(seen[k]) for k in ("prog", "map", "link")] != counts:
                        self.why.append(f"the kernel did not show everything C held: {seen}")
                    break
                time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 (the reason is the result)
            self.why.append(f"{type(e).__name__}: {e}")
        finally:
            if self.nf.proc.poll() is None:
                self.nf.proc.kill()

    def result(self):
        """The reasons sigkill fails, as far as C goes (A and B are checked after they stop)."""
        self.thread.join()
        self.nf.stop(10)
        why = list(self.why)
        if not self.attached_at_kill:
            why.append(f"C was killed with {self.attached_at_kill} programs attached "
                       f"(ready line: {self.nf.started() or any('watching' in l for l in self.nf.stderr)})")
        if self.ids is not None:
            left = held_ids.wait_gone(self.ids)
            if any(left.values()):
                why.append(f"10 s after SIGKILL the kernel still has C's {left}")
        return why


def compare_instances(a, b, cports, sports, b_started):
    """The reasons two_instances fails: B's v4 flow as A reports it."""
    if not b_started:
        return ["B did not start beside A"]
    why = []
    keys = ["event", "conn_direction", "src", "dst", "src_port", "dst_port", "pid", "comm",
            "closed_by", "reason", "bytes_sent", "bytes_received"]
    for direction in ["outgoing", "incoming"]:
        for kind in ["begin", "end"]:
            ea = endpoint(a.events, kind, cports.get("v4"), sports["v4"], direction)
            eb = endpoint(b.events, kind, cports.get("v4"), sports["v4"], direction)
            pa = [{k: e.get(k) for k in keys} for e in ea]
            pb = [{k: e.get(k) for k in keys} for e in eb]
            if len(pa) != 1 or pa != pb:
                why.append(f"v4 {direction} {kind}: A {pa}, B {pb}")
    return why


# --- the check ------------------------------------------------------------


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def guard():
    """Refuses to run where it would disturb a real host (see the module doc)."""
    in_vm = "netflow_kernel_check" in open("/proc/cmdline").read()
    own_netns = [name for _, name in socket.if_nameindex()] == ["lo"]  # a fresh namespace
    if in_vm:
        try:
            os.unlink("/etc/resolv.conf")  # the overlay's copy (maybe a symlink)
        except FileNotFoundError:
            pass
        with open("/etc/resolv.conf", "w") as f:
            f.write("nameserver 127.0.0.1\n")
    elif not own_netns:
        sys.exit("guest_check: runs only in a VM booted by boot.sh or in a private network namespace")
    if "nameserver 127.0.0.1" not in open("/etc/resolv.conf").read():
        sys.exit("guest_check: /etc/resolv.conf must name 127.0.0.1")


def refusals(lines):
    """The lines of a --verbose log that say why: libbpf's failures and, for
    each program the verifier refused, its last word before "processed N insns"."""
    why = []
    for i, line in enumerate(lines):
        if line.startswith("processed ") and " insns " in line and i > 0:
            why.append(lines[i - 1].strip())
        elif line.startswith("libbpf: ") and ("failed" in line or "not found" in line):
            why.append(line.strip())
    return why[:12]


def scrape(url, name):
    try:
        text = urllib.request.urlopen(url, timeout=20).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return int(float(line.split()[-1]))
    return None


def check(result_path):
    t0 = time.monotonic()
    seconds = {}
    result = {"kernel": os.uname().release, "started": False, "start_error": None, "notes": [],
              "features": {f: {"pass": False, "reason": "not run"} for f in FEATURES},
              "seconds": seconds, "events": 0}

    def write():
        seconds["check"] = round(time.monotonic() - t0, 1)
        with open(result_path, "w") as f:
            json.dump(result, f, indent=1)

    guard()
    procs = []
    netflows = []
    kill_dir = None
    try:
        cg_root = cgroup2_mount()
        kill_dir = os.path.join(cg_root, f"kc-kill-{os.getpid()}")
        os.mkdir(kill_dir)
        pins_before = held_ids.pins()
        dnsmasq = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
             "--listen-address=127.0.0.1", "--port=53", "--user=root", "--pid-file=",
             f"--address=/{NAME}/{NAME_ADDR}", "--log-facility=-"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(dnsmasq)
        sports = {f: free_port("::1" if f == "v6" else "127.0.0.1") for f in FLOWS + ["refused"]}
        a = Netflow(["--events", "begin,end,fail,update", "--update-interval", "1"])
        b = Netflow(["--events", "begin,end", "--port", str(sports["v4"]),
                     "--metrics", "127.0.0.1:0"])
        netflows += [a, b]
        killer = KillAtAttach(kill_dir)
        netflows.append(killer.nf)
        a.ready.wait(READY_TIMEOUT)
        if not a.started() and any("net_flow_tcp_update" in l for l in a.stderr):
            # A kernel without the open-flow iterator refuses updates in one
            # line: check the rest without them (lifecycle then fails, named).
            a.stop(10)
            result["updates_refused"] = [l for l in a.stderr if l.strip()][-1]
            a = Netflow(["--events", "begin,end,fail"])
            netflows.append(a)
            a.ready.wait(READY_TIMEOUT)
        b.ready.wait(max(1, READY_TIMEOUT - (time.monotonic() - t0)))
        seconds["ready"] = round(time.monotonic() - t0, 1)
        result["started"] = a.started()
        b_started = b.started()
        if not result["started"]:
            a.stop(10)
            b.stop(10)
            result["notes"] = a.notes()
            errors = [l for l in a.stderr if l.strip()]
            result["start_error"] = errors[-1] if errors else f"no ready line in {READY_TIMEOUT} s"
            for f in FEATURES:
                result["features"][f] = {"pass": False, "reason": "netflow did not start"}
            # Why, for the reader: libbpf's log and the verifier's (the last lines).
            v = Netflow(["--verbose", "--duration", "1"])
            v.stop(READY_TIMEOUT) if v.ready.wait(READY_TIMEOUT) else v.stop(1)
            lines = [l for l in v.stderr if l.strip()]
            result["verbose_tail"] = lines[-40:]
            result["refused_by"] = refusals(lines)
            return

        ports_file = f"{result_path}.ports"
        with open(ports_file, "w") as f:
            json.dump(sports, f)
        srv = subprocess.Popen([sys.executable, __file__, "server", ports_file],
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        procs.append(srv)
        try:
            worker = json.loads(srv.stdout.readline())["worker"]
        except ValueError:
            raise RuntimeError("the server peer did not start")
        exits_why = []
        ab_ids = held_ids.merge(*(held_ids.held(n.proc.pid) for n in (a, b) if n.started()))
        exits = threading.Thread(target=lambda: exits_why.extend(
            check_exits({n: i for n, i in [("A", a), ("B", b)] if i.started()})))
        exits.start()
        cli = subprocess.run([sys.executable, __file__, "client", ports_file],
                             capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        if cli.returncode != 0:
            raise RuntimeError(f"the client peer failed: {cli.stderr.decode()[-400:]}")
        work = json.loads(cli.stdout)
        work["server_ports"] = sports
        srv.wait(30)
        peers = {"kc-client": work["pid"], "kc-server": srv.pid, "kc-worker": worker}
        seconds["flows"] = round(time.monotonic() - t0, 1)

        # Every end (8), and the fail, or 20 s.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ends = [e for e in a.events if e.get("event") == "net_flow_tcp_end"]
            if len(ends) >= 2 * len(FLOWS) and any(e.get("event") == "net_flow_tcp_fail" for e in a.events):
                break
            time.sleep(0.2)
        time.sleep(1)  # anything that would come late or twice
        filtered = scrape(b.metrics, "netflow_flows_filtered_in_kernel_total") if b.metrics else None
        exits.join()
        kill_why = killer.result()
        a.stop()
        b.stop()
        # Nothing A and B held stays in the kernel once they have stopped (what they
        # attached to the root cgroup goes with its program), and nothing new is pinned.
        left = held_ids.wait_gone(ab_ids)
        if any(left.values()):
            kill_why.append(f"10 s after A and B stopped the kernel still has {left}")
        if not ab_ids["links"]:  # the positive control: there was something to go
            kill_why.append("A and B held no links")
        if held_ids.pins() != pins_before:
            kill_why.append(f"pinned: {sorted(set(held_ids.pins()) - set(pins_before))[:4]}")
        result["notes"] = a.notes()
        result["events"] = len(a.events)
        with open(f"{result_path}.events", "w") as f:  # netflow's output, for a failure's reader
            f.writelines(json.dumps(e) + "\n" for e in a.events)
        why = compare(a.events, work, peers)
        if "updates_refused" in result:
            why["lifecycle"].insert(0, result["updates_refused"])
        why["filters"] = (compare_filtered(b, sports, work["ports"], filtered) if b_started
                          else [f"netflow --port did not start: {b.notes()[-1:]}"])
        why["returns_1"] = exits_why
        why["sigkill"] = kill_why
        why["two_instances"] = compare_instances(a, b, work["ports"], sports, b_started)
        result["killed_with_attached"] = killer.attached_at_kill
        if a.bad:
            why["begin_end"].append(f"{len(a.bad)} lines on stdout are not JSON: {a.bad[0][:80]}")
        for f in FEATURES:
            result["features"][f] = {"pass": not why[f], "reason": "; ".join(why[f][:4]) or "ok"}
        result["filtered_in_kernel"] = filtered
        result["peers"] = peers
        result["work"] = work
    except Exception as e:  # the result says what broke; the harness never crashes on it
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        for n in netflows:
            n.stop(10)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if kill_dir is not None:
            try:
                os.rmdir(kill_dir)
            except OSError:
                pass
        write()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "server", "client"):
        sys.exit(__doc__.split("\n\n")[1])
    {"check": check, "server": server, "client": client}[sys.argv[1]](sys.argv[2])
