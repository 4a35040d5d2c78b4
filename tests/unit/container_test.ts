import assert from "node:assert/strict";
import { containerIdFromCgroup } from "../../src/enrich/container.ts";

const ID = "3f7e4bd1c0a2f9e8d7c6b5a4938271605f4e3d2c1b0a99887766554433221100";
const ID2 = "a".repeat(64);

Deno.test("containerIdFromCgroup reads every runtime's layout, systemd and cgroupfs drivers", () => {
  const samples: [string, string | null][] = [
    // docker
    [`/system.slice/docker-${ID}.scope`, ID],
    [`/docker/${ID}`, ID],
    // containerd / CRI (kubepods, systemd and cgroupfs drivers)
    [
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e3d4c_5b6a_7980_1a2b_3c4d5e6f7a8b.slice/cri-containerd-${ID}.scope`,
      ID,
    ],
    [`/kubepods/besteffort/pod1f2e3d4c-5b6a-7980-1a2b-3c4d5e6f7a8b/${ID}`, ID],
    [`/kubepods/burstable/pod1f2e3d4c-5b6a-7980-1a2b-3c4d5e6f7a8b/${ID}`, ID],
    [`/kubepods.slice/kubepods-pod1f2e3d4c_5b6a.slice/cri-containerd-${ID}.scope`, ID],
    // cri-o
    [
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e.slice/crio-${ID}.scope`,
      ID,
    ],
    [`/kubepods/burstable/pod1f2e/crio-${ID}`, ID],
    // podman (rootful systemd, with the nested container directory; rootless; cgroupfs)
    [`/machine.slice/libpod-${ID}.scope/container`, ID],
    [`/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`, ID],
    [`/libpod_parent/libpod-${ID}`, ID],
    // nested: the deepest id wins
    [`/docker/${ID2}/docker/${ID}`, ID],
    // not containers
    ["/", null],
    ["/system.slice/ssh.service", null],
    ["/user.slice/user-1000.slice/session-3.scope", null],
    [`/system.slice/docker-${ID.slice(0, 12)}.scope`, null],
    ["/kubepods/besteffort/pod1f2e3d4c-5b6a-7980-1a2b-3c4d5e6f7a8b", null],
  ];
  for (const [path, id] of samples) assert.equal(containerIdFromCgroup(path), id, path);
});
