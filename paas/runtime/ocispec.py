"""The OCI runtime spec (config.json) of a dyno, built from plain data; no I/O.

Every dyno gets: new pid, mount, ipc, uts and cgroup namespaces (the host network
for now: it binds `$PORT` on 127.0.0.1); a read-only root made of the stack's
skeleton with the host's /usr bound read-only; `/app` an overlay of the image's
layers with the dyno's own upper dir; a size-limited `/tmp`; the app's own
uid/gid; no capabilities, `no_new_privileges`, a seccomp profile refusing the
system calls an app never needs; memory, CPU and pids limits from its size.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

#: Host directories the `host` stack lends read-only (those that exist and are not symlinks).
HOST_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
#: Files and folders of the host's /etc a program commonly needs; nothing naming the host.
HOST_ETC = (
    "alternatives", "ssl", "ca-certificates", "ca-certificates.conf", "ld.so.cache",
    "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "resolv.conf",
    "mime.types", "protocols", "services", "gai.conf", "host.conf",
)
#: Written per dyno and bound over the skeleton's empty files.
GENERATED_ETC = ("passwd", "group", "hosts", "hostname")
#: Mount points of the stack's skeleton: dynos use /app, builds the others.
SKELETON_DIRS = ("app", "proc", "dev", "sys", "run/paas", "etc", "root", "var/tmp",
                 "build", "cache", "env", "buildpack", "tools/bin", "exports", "seed/npm")
SKELETON_FILES = ("tools/bin/uv",)
#: Changes whenever the skeleton's layout does; each version has its own folder, so running
#: containers keep the one they started on.
SKELETON_VERSION = "4"

# System calls a web app or worker has no business making. Everything else is allowed
# (a deny list keeps language runtimes working; the capabilities are gone anyway).
DENIED_SYSCALLS = (
    "acct", "add_key", "adjtimex", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen",
    "fspick", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
    "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "perf_event_open", "personality", "pivot_root",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "quotactl_fd", "reboot", "request_key", "set_mempolicy", "setdomainname", "sethostname",
    "setns", "settimeofday", "swapoff", "swapon", "sysfs", "syslog", "umount", "umount2",
    "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old",
)

_ARCHES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 512
    pids: int = 256
    cpu_shares: int = 1024
    tmp_mb: int = 64


@dataclass(frozen=True)
class ContainerSpec:
    hostname: str
    args: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    rootfs: str  # the stack's read-only skeleton
    lower_dirs: list[str]  # image layers, bottom first
    upper_dir: str
    work_dir: str
    etc_dir: str  # the dyno's generated /etc files
    status_dir: str  # writable by the dyno: the launcher records the exit status here
    cgroups_path: str
    host_dirs: list[str] = field(default_factory=list)
    host_etc: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    #: Further bind mounts: (host path, path inside, writable).
    binds: list[tuple[str, str, bool]] = field(default_factory=list)
    cwd: str = "/app"


def seccomp_profile() -> dict:
    arch = _ARCHES.get(platform.machine(), [])
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": arch,
        "syscalls": [
            {"names": list(DENIED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        ],
    }


def _bind(source: str, destination: str, writable: bool = False) -> dict:
    options = ["rbind", "nosuid", "nodev"] + ([] if writable else ["ro"])
    return {"destination": destination, "type": "bind", "source": source, "options": options}


def mounts(spec: ContainerSpec) -> list[dict]:
    # overlayfs lists lower dirs top first.
    lowers = ":".join(reversed(spec.lower_dirs))
    found = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", f"size={spec.limits.tmp_mb}m"]},
        _bind(spec.status_dir, "/run/paas", writable=True),
    ]
    if spec.lower_dirs:
        found.append({"destination": "/app", "type": "overlay", "source": "overlay",
                      "options": [f"lowerdir={lowers}", f"upperdir={spec.upper_dir}",
                                  f"workdir={spec.work_dir}", "nosuid", "nodev"]})
    found += [_bind(src, dst, writable) for src, dst, writable in spec.binds]
    found += [_bind(d, d) for d in spec.host_dirs]
    found += [_bind(f"/etc/{name}", f"/etc/{name}") for name in spec.host_etc]
    found += [_bind(f"{spec.etc_dir}/{name}", f"/etc/{name}") for name in GENERATED_ETC]
    return found


def config(spec: ContainerSpec) -> dict:
    """The whole config.json."""
    limits = spec.limits
    memory = limits.memory_mb * 1024 * 1024
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": spec.uid, "gid": spec.gid},
            "args": spec.args,
            "env": [f"{k}={v}" for k, v in spec.env.items()],
            "cwd": spec.cwd,
            "capabilities": {"bounding": [], "effective": [], "inheritable": [],
                             "permitted": [], "ambient": []},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}],
            "noNewPrivileges": True,
        },
        "root": {"path": spec.rootfs, "readonly": True},
        "hostname": spec.hostname,
        "mounts": mounts(spec),
        "linux": {
            "cgroupsPath": spec.cgroups_path,
            "resources": {
                # Only the standard devices (the runtime adds null, zero, full, random,
                # urandom, tty, ptmx and pts to this deny-all).
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": memory, "swap": memory},
                "cpu": {"shares": limits.cpu_shares},
                "pids": {"limit": limits.pids},
            },
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")],
            "seccomp": seccomp_profile(),
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }


def passwd(uid: int, gid: int) -> str:
    return (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        f"app:x:{uid}:{gid}:app:/app:/bin/bash\n"
    )


def group(gid: int) -> str:
    return f"root:x:0:\nnogroup:x:65534:\napp:x:{gid}:\n"


def hosts(hostname: str) -> str:
    return f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
