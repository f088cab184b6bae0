"""Stacks: the base operating system under an app's /app, for its builds and its dynos.

- `host` (the default: nothing to download): a skeleton root whose /usr (and /bin,
  /lib… where they are real folders) and a few /etc files are the host's, bound
  read-only.
- `debian`: a real Debian bookworm root made once with debootstrap from the Debian
  mirror this machine reaches (PAAS_DEBIAN_MIRROR), with python3 and CA certificates;
  nothing of the host's filesystem is visible in it.

Both are read-only roots that carry the mount points a dyno or build needs. Each
version of a stack has its own folder, so running containers keep the one they
started on.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from paas.errors import InvalidInput, PaasError
from paas.runtime import ocispec

DEFAULT_STACK = "host"
STACKS = ("host", "debian")
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "ca-certificates")
DEBIAN_HOST_ETC = ("resolv.conf", "ssl", "ca-certificates", "ca-certificates.conf")
DEBIAN_MIRROR = os.environ.get("PAAS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBOOTSTRAP_TIMEOUT = 1800


@dataclass(frozen=True)
class StackRoot:
    name: str
    rootfs: Path
    host_dirs: list[str] = field(default_factory=list)
    host_etc: list[str] = field(default_factory=list)


def check(name: str) -> str:
    if name not in STACKS:
        raise InvalidInput(f"there is no stack {name!r}; choose one of: {', '.join(STACKS)}")
    return name


class Stacks:
    def __init__(self, home: Path) -> None:
        self.root = home / "stacks"

    def get(self, name: str, progress: Callable[[str], None] | None = None) -> StackRoot:
        """The stack's root, made first if need be (debian: about a minute, once)."""
        check(name)
        if name == "host":
            return self._host()
        return self._debian(progress)

    # --- host -----------------------------------------------------------------------
    def _host(self) -> StackRoot:
        rootfs = self.root / "host" / f"v{ocispec.SKELETON_VERSION}"
        if not (rootfs / ".paas-stack").exists():
            self._make(rootfs, self._fill_host_skeleton)
        host_dirs = [d for d in ocispec.HOST_DIRS if os.path.isdir(d) and not os.path.islink(d)]
        host_etc = [n for n in ocispec.HOST_ETC if os.path.exists(f"/etc/{n}")]
        return StackRoot("host", rootfs, host_dirs, host_etc)

    @staticmethod
    def _fill_host_skeleton(tmp: Path) -> None:
        _mount_points(tmp)
        for d in ocispec.HOST_DIRS:
            name = d.lstrip("/")
            if os.path.islink(d):
                (tmp / name).symlink_to(os.readlink(d))
            elif os.path.isdir(d):
                (tmp / name).mkdir()
        for name in ocispec.HOST_ETC:
            host = f"/etc/{name}"
            if os.path.isdir(host):
                (tmp / "etc" / name).mkdir(exist_ok=True)
            elif os.path.exists(host):
                (tmp / "etc" / name).touch()

    # --- debian ---------------------------------------------------------------------
    def _debian(self, progress: Callable[[str], None] | None) -> StackRoot:
        rootfs = self.root / "debian" / f"{DEBIAN_SUITE}-v{ocispec.SKELETON_VERSION}"
        if not (rootfs / ".paas-stack").exists():
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / ".debian.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one debootstrap at a time
                if not (rootfs / ".paas-stack").exists():
                    if progress:
                        progress(f"-----> Preparing the debian stack ({DEBIAN_SUITE}); "
                                 "this happens once and takes about a minute")
                    self._make(rootfs, self._debootstrap)
        # The host's DNS settings and trust store: the operator's own CAs (a registry
        # proxy, say) must be trusted by builds on this stack too.
        etc = [n for n in DEBIAN_HOST_ETC if (rootfs / "etc" / n).exists()
               and os.path.exists(f"/etc/{n}")]
        return StackRoot("debian", rootfs, [], etc)

    @staticmethod
    def _debootstrap(tmp: Path) -> None:
        if shutil.which("debootstrap") is None:
            raise PaasError("the debian stack needs debootstrap; run `make install`")
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
             DEBIAN_SUITE, str(tmp), DEBIAN_MIRROR],
            capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT,
        )
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PaasError(f"could not make the debian stack from {DEBIAN_MIRROR}: "
                            + " / ".join(last) + "; check that the mirror is reachable")
        # Nothing of the build host's identity stays in the image.
        for name in ("hostname", "machine-id"):
            (tmp / "etc" / name).unlink(missing_ok=True)
        shutil.rmtree(tmp / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        _mount_points(tmp)
        (tmp / "etc" / "resolv.conf").unlink(missing_ok=True)
        (tmp / "etc" / "resolv.conf").touch()

    # --- shared -----------------------------------------------------------------------
    @staticmethod
    def _make(rootfs: Path, fill: Callable[[Path], None]) -> None:
        tmp = rootfs.with_name(f"tmp.{rootfs.name}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            fill(tmp)
            (tmp / ".paas-stack").write_text(f"{rootfs.parent.name} {rootfs.name}\n")
            try:
                tmp.rename(rootfs)
            except OSError:  # another process made it first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _mount_points(tmp: Path) -> None:
    """What the OCI config mounts over: it must exist in a read-only root."""
    for d in ocispec.SKELETON_DIRS:
        (tmp / d).mkdir(parents=True, exist_ok=True)
    for f in ocispec.SKELETON_FILES + tuple(f"etc/{n}" for n in ocispec.GENERATED_ETC):
        (tmp / f).touch()
    (tmp / "tmp").mkdir(exist_ok=True)
    # runc gives a tmpfs the mode of the directory it covers.
    (tmp / "tmp").chmod(0o1777)
    (tmp / "var" / "tmp").chmod(0o1777)
