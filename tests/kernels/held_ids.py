# SPDX-License-Identifier: MIT
"""What a process holds in the kernel's BPF, read without bpftool's cgroup
query (which this host's bpftool cannot make against a 5.10 kernel): its BPF
links, programs and maps from /proc/PID/fd and /proc/PID/fdinfo, and whether
an id still exists, asked of the kernel itself (BPF_*_GET_FD_BY_ID).

Used by guest_check.py's returns_1 and sigkill checks (issue 23 point 6).
"""
import ctypes
import os
import time

# bpf(2)'s number, by machine (the matrix boots x86_64 guests).
SYS_BPF = {"x86_64": 321, "aarch64": 280}
GET_FD_BY_ID = {"prog": 13, "map": 14, "link": 30}  # enum bpf_cmd
ENOENT = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _fdinfo(pid, fd):
    out = {}
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


# enum bpf_prog_type: the program types attached to cgroups (they must return 1).
CGROUP_PROG_TYPES = {8, 9, 13, 15, 18, 23, 25}  # skb, sock, sock_ops, device, sock_addr, sysctl, sockopt


def held(pid):
    """{"links": [{"id", "type", "prog"}], "progs": {id}, "maps": {id}, "cgroup_progs": {id}}
    of process PID: its bpf-link fds (type: "cgroup", "iter", ...; prog: the
    program it attaches), bpf-prog fds (cgroup_progs: those of a cgroup
    program type) and bpf-map fds."""
    links, progs, maps, cgroup_progs = [], set(), set(), set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            info = _fdinfo(pid, fd)
        except OSError:  # closed meanwhile
            continue
        if target == "anon_inode:bpf_link" and "link_id" in info:
            link = {"id": int(info["link_id"]), "type": info.get("link_type"),
                    "prog": int(info.get("prog_id", 0))}
            links.append(link)
            progs.add(link["prog"])
        elif target == "anon_inode:bpf-prog" and "prog_id" in info:
            progs.add(int(info["prog_id"]))
            if int(info.get("prog_type", -1)) in CGROUP_PROG_TYPES:
                cgroup_progs.add(int(info["prog_id"]))
        elif target == "anon_inode:bpf-map" and "map_id" in info:
            maps.add(int(info["map_id"]))
    progs.discard(0)
    return {"links": links, "progs": progs, "maps": maps, "cgroup_progs": cgroup_progs}


def cgroup_links(ids):
    """The links to cgroups among held()'s: the programs attached (what `bpftool cgroup show` lists)."""
    return [l for l in ids["links"] if l["type"] == "cgroup"]


def exists(kind, obj_id):
    """Whether the kernel still has the program, map or link with this id."""
    attr = (ctypes.c_uint32 * 3)(obj_id, 0, 0)  # union { prog_id, map_id, link_id }, next_id, open_flags
    fd = _libc.syscall(SYS_BPF[os.uname().machine], GET_FD_BY_ID[kind], ctypes.byref(attr),
                       ctypes.sizeof(attr))
    if fd >= 0:
        os.close(fd)
        return True
    err = ctypes.get_errno()
    if err == ENOENT:
        return False
    raise OSError(err, f"bpf GET_FD_BY_ID {kind} {obj_id}: {os.strerror(err)}")


def remaining(ids):
    """Those of IDS (held()'s) the kernel still has: {"prog": [id], "map": [id], "link": [id]}."""
    return {"prog": sorted(i for i in ids["progs"] if exists("prog", i)),
            "map": sorted(i for i in ids["maps"] if exists("map", i)),
            "link": sorted(l["id"] for l in ids["links"] if exists("link", l["id"]))}


def merge(*all_ids):
    """One held() of several processes."""
    return {"links": [l for ids in all_ids for l in ids["links"]],
            **{k: set().union(*(ids[k] for ids in all_ids)) for k in ("progs", "maps", "cgroup_progs")}}


def wait_gone(ids, timeout=10.0):
    """Waits until none of IDS exists (the kernel frees a program once its last
    reference goes); returns what still exists after TIMEOUT seconds (empty lists: all gone)."""
    deadline = time.monotonic() + timeout
    while True:
        left = remaining(ids)
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def pins():
    """Everything in every mounted bpf filesystem (what netflow could have pinned)."""
    out = []
    for line in open("/proc/mounts"):
        f = line.split()
        if f[2] == "bpf":
            for d, dirs, files in os.walk(f[1]):
                out += [os.path.join(d, n) for n in dirs + files]
    return sorted(out)
