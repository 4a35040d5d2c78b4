/**
 * Container ids from cgroup paths. Every runtime netflow knows puts the 64-hex
 * container id in one path component, with a runtime prefix and a `.scope`
 * suffix under the systemd cgroup driver, or bare under the cgroupfs driver:
 *
 *   docker      /system.slice/docker-<id>.scope       /docker/<id>
 *   containerd  .../cri-containerd-<id>.scope          /kubepods/besteffort/pod<uid>/<id>
 *   cri-o       .../crio-<id>.scope                    /kubepods/.../crio-<id>
 *   podman      /machine.slice/libpod-<id>.scope/container   /libpod_parent/libpod-<id>
 *
 * The deepest such component wins (podman nests a `container` directory
 * below the scope; docker-in-docker nests ids).
 *
 * @module
 */

const COMPONENT =
  /^(?:(?:docker|cri-containerd|crio|libpod|containerd)-)?([0-9a-f]{64})(?:\.scope)?$/;

/** The container id in a cgroup path, or null when the path names none. */
export function containerIdFromCgroup(path: string): string | null {
  const parts = path.split("/");
  for (let i = parts.length - 1; i >= 0; i--) {
    const match = COMPONENT.exec(parts[i]!);
    if (match) return match[1]!;
  }
  return null;
}
