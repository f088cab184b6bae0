"""CPU for the traffic first: the platform's control plane in a cgroup below the
traffic's weight, and booting dynos and builds in idle cgroups (`make_idle`, `idle_for`).

Dynos and builds each have a cgroup under /paas (runc makes them); everything else
`paas up` starts sits in the root cgroup, where each busy thread weighs as much as the
whole /paas group. The processes that deploy rather than serve (web: the API and git;
the build worker; the agent; the SSH server) go into /paas-platform, whose weight
(PAAS_PLATFORM_CPU_SHARES, 256 against a dyno's 1024) only counts when every core is
busy: then a push, a config change or a dyno's start slows itself, not the requests in
flight. The router and Redis stay where they are: they carry the traffic.

Needs root and a cpu controller (cgroup v1's, or v2's enabled for the root's
children); without them nothing moves and the platform runs as before.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

NAME = "paas-platform"
ROOT = Path("/sys/fs/cgroup")
#: 0 leaves the control plane in the root cgroup.
PLATFORM_CPU_SHARES = int(os.environ.get("PAAS_PLATFORM_CPU_SHARES", "256"))


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares as a v2 cpu.weight, the way runc converts them."""
    return 1 + (max(2, min(shares, 262144)) - 2) * 9999 // 262142


def platform_cgroup(shares: int = PLATFORM_CPU_SHARES, root: Path = ROOT) -> Path | None:
    """Make (or find) the control plane's cgroup with `shares` of CPU weight; its
    folder, or None when there is none to make (not root, no cpu controller, or
    `shares` is 0)."""
    if not shares or os.geteuid() != 0:
        return None
    try:
        if _unified(root):
            if "cpu" not in (root / "cgroup.subtree_control").read_text().split():
                return None
            group = root / NAME
            group.mkdir(exist_ok=True)
            (group / "cpu.weight").write_text(str(shares_to_weight(shares)))
        else:
            if not (root / "cpu" / "cpu.shares").exists():
                return None
            group = root / "cpu" / NAME
            group.mkdir(exist_ok=True)
            (group / "cpu.shares").write_text(str(shares))
    except OSError as exc:
        log.warning("no cgroup for the platform's own processes: %s", exc)
        return None
    return group


def set_cpu_shares(path: str, shares: int, root: Path = ROOT) -> bool:
    """Set the CPU weight of the existing cgroup `path` (as runc names it, `/paas/<id>`)
    to `shares`, in v1 terms; False when there is no such group to write to."""
    group = _cpu_group(path, root)
    try:
        idle = group / "cpu.idle"
        if idle.exists() and idle.read_text().strip() != "0":
            idle.write_text("0")  # an idle group refuses a weight
        if _unified(root):
            (group / "cpu.weight").write_text(str(shares_to_weight(shares)))
        else:
            (group / "cpu.shares").write_text(str(shares))
    except OSError:
        return False
    return True


def make_idle(path: str, root: Path = ROOT) -> bool:
    """Make the cgroup `path` (runc's name, `/paas/<id>`), or find it, and mark it idle:
    its processes then run only on CPU time nobody else wants, and give way at once to
    any other that wakes. False when that cannot be done (no cpu.idle, not root)."""
    group = _cpu_group(path, root)
    try:
        if _unified(root):
            parent = root
            for part in group.relative_to(root).parts:
                if "cpu" not in (parent / "cgroup.subtree_control").read_text().split():
                    (parent / "cgroup.subtree_control").write_text("+cpu")
                parent = parent / part
                parent.mkdir(exist_ok=True)
        else:
            group.mkdir(parents=True, exist_ok=True)
        (group / "cpu.idle").write_text("1")
    except OSError:
        return False
    return True


def idle_for(path: str, seconds: float, shares: int, root: Path = ROOT) -> threading.Timer | None:
    """`make_idle`, for at most `seconds`: then the group gets `shares` of weight, so work
    that finds no spare CPU (every core busy with traffic for that long) still gets done,
    slowly. The timer is returned for the caller to cancel once it sets the weight itself;
    None when the group could not be made idle."""
    if not make_idle(path, root):
        return None
    timer = threading.Timer(seconds, set_cpu_shares, args=(path, shares, root))
    timer.daemon = True
    timer.start()
    return timer


def remove(path: str, root: Path = ROOT) -> None:
    """Remove the (empty) cpu cgroup `path` that `make_idle` made, if it is still there."""
    try:
        _cpu_group(path, root).rmdir()
    except OSError:
        pass


def _cpu_group(path: str, root: Path) -> Path:
    relative = path.strip("/")
    return root / relative if _unified(root) else root / "cpu" / relative


def _unified(root: Path) -> bool:
    """Whether `root` is cgroup v2's single hierarchy (else v1's, one per controller)."""
    return (root / "cgroup.controllers").exists()


def join(group: Path) -> None:
    """Move the calling process (all its threads) into `group`; its children follow.
    Meant for a child's preexec_fn, so it is in place before the program starts."""
    (group / "cgroup.procs").write_text("0")
