"""The platform's own CPU weight: its control plane in a cgroup below the traffic's.

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
        if (root / "cgroup.controllers").exists():  # v2: the unified hierarchy
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
    relative = path.strip("/")
    try:
        if (root / "cgroup.controllers").exists():
            (root / relative / "cpu.weight").write_text(str(shares_to_weight(shares)))
        else:
            (root / "cpu" / relative / "cpu.shares").write_text(str(shares))
    except OSError:
        return False
    return True


def join(group: Path) -> None:
    """Move the calling process (all its threads) into `group`; its children follow.
    Meant for a child's preexec_fn, so it is in place before the program starts."""
    (group / "cgroup.procs").write_text("0")
