"""CPU for the traffic first: the platform's control plane in a cgroup below the
traffic's weight, and booting dynos and builds in idle cgroups (`make_idle`, `idle_for`,
`hold_idle`).

Dynos and builds each have a cgroup under /paas (runc makes them); everything else
`paas up` starts sits in the root cgroup, where each busy thread weighs as much as the
whole /paas group. The processes that deploy rather than serve (web: the API and git;
the build worker; the agent; the SSH server) go into /paas-platform, whose weight
(PAAS_PLATFORM_CPU_SHARES, 256 against a dyno's 1024) only counts when every core is
busy: then a push, a config change or a dyno's start slows itself, not the requests in
flight. `paas up` keeps that group idle while it finds spare CPU (`IdleUnlessStarved`).
The router and Redis stay where they are: they carry the traffic.

Idleness counts among siblings only: a group idle under /paas gives way at once to the
other dynos, but at the top of the tree the scheduler sees /paas, which is not idle, and
the router or any other process there waits for its turn. So idle work goes to the top:
a build's own group is made there, and a booting or stopping dyno's processes are held
in /paas-idle/<id> (`hold_idle`, cgroup v1's cpu hierarchy, which can place them apart
from their other controllers) until they get their weight back in /paas.

Needs root and a cpu controller (cgroup v1's, or v2's enabled for the root's
children); without them nothing moves and the platform runs as before.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

NAME = "paas-platform"
#: The root-level idle cpu group (cgroup v1) that holds booting and stopping dynos.
IDLE_PARENT = "paas-idle"
ROOT = Path("/sys/fs/cgroup")
#: 0 leaves the control plane in the root cgroup.
PLATFORM_CPU_SHARES = int(os.environ.get("PAAS_PLATFORM_CPU_SHARES", "256"))
#: 0 keeps the control plane's cgroup at its weight instead of idle (IdleUnlessStarved).
PLATFORM_IDLE = os.environ.get("PAAS_PLATFORM_IDLE", "1") != "0"


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
        else:
            if not (root / "cpu" / "cpu.shares").exists():
                return None
            group = root / "cpu" / NAME
        group.mkdir(exist_ok=True)
        _weigh(group, shares, _unified(root))
    except OSError as exc:
        log.warning("no cgroup for the platform's own processes: %s", exc)
        return None
    return group


def set_cpu_shares(path: str, shares: int, root: Path = ROOT) -> bool:
    """Set the CPU weight of the existing cgroup `path` (as runc names it, `/paas/<id>`)
    to `shares`, in v1 terms; False when there is no such group to write to."""
    try:
        _weigh(_cpu_group(path, root), shares, _unified(root))
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
    """`make_idle`, for at most `seconds`: then the group gets `shares` of weight (and what
    `hold_idle` moved away, back), so work that finds no spare CPU (every core busy with
    traffic for that long) still gets done, slowly. The timer is returned for the caller
    to cancel once it sets the weight itself; None when the group could not be made idle."""
    if not make_idle(path, root):
        return None
    timer = threading.Timer(seconds, give_weight, args=(path, shares, root))
    timer.daemon = True
    timer.start()
    return timer


def give_weight(path: str, shares: int, root: Path = ROOT) -> bool:
    """End an idle spell: the processes `hold_idle` moved away come back to `path`, which
    gets `shares` of weight; False when there is no group to write to."""
    release_idle(path, root)
    return set_cpu_shares(path, shares, root)


def hold_idle(path: str, root: Path = ROOT) -> bool:
    """Move the processes of the cgroup `path` (`/paas/<id>`) into /paas-idle/<id>, idle at
    the top of the tree, where every process that is not idle comes first (see above).

    cgroup v1 only: there the cpu hierarchy is apart from the others, so the container's
    memory, pids and devices groups, which runc reads, stay where runc made them. False
    on v2 (a process has one group for all controllers there), without a cpu.idle, or
    when nothing could be moved; the processes then stay idle under /paas."""
    if _unified(root):
        return False
    parent = root / "cpu" / IDLE_PARENT
    held = parent / Path(path).name
    try:
        parent.mkdir(exist_ok=True)
        (parent / "cpu.idle").write_text("1")
        held.mkdir(exist_ok=True)
    except OSError:
        return False
    return _move_all(_cpu_group(path, root), held) > 0


def release_idle(path: str, root: Path = ROOT) -> None:
    """Bring the processes `hold_idle` moved back into `path`, and remove their holder."""
    held = root / "cpu" / IDLE_PARENT / Path(path).name
    if _unified(root) or not held.is_dir():
        return
    _move_all(held, _cpu_group(path, root))
    try:
        held.rmdir()
    except OSError:  # a process forked faster than the moves: remove() retries at the end
        log.warning("could not remove %s: processes are still in it", held)


def _move_all(source: Path, target: Path, passes: int = 20) -> int:
    """Move every process of the cgroup `source` into `target` (a process forked during a
    move is in `source` the next time it is read); how many were moved."""
    moved = 0
    for _ in range(passes):
        try:
            pids = (source / "cgroup.procs").read_text().split()
        except OSError:
            return moved
        if not pids:
            return moved
        for pid in pids:
            try:
                (target / "cgroup.procs").write_text(pid)
                moved += 1
            except OSError:  # it exited meanwhile
                pass
    return moved


def remove(path: str, root: Path = ROOT) -> None:
    """Remove the (empty) cpu cgroup `path` that `make_idle` made, and its holder in
    /paas-idle, if they are still there."""
    for group in (root / "cpu" / IDLE_PARENT / Path(path).name, _cpu_group(path, root)):
        try:
            group.rmdir()
        except OSError:
            pass


def _weigh(group: Path, shares: int, unified: bool) -> None:
    """Give `group` `shares` of CPU weight, in v1 terms (v2 gets runc's mapping), ending its
    idleness first: an idle group refuses a weight."""
    idle = group / "cpu.idle"
    if idle.exists() and idle.read_text().strip() != "0":
        idle.write_text("0")
    if unified:
        (group / "cpu.weight").write_text(str(shares_to_weight(shares)))
    else:
        (group / "cpu.shares").write_text(str(shares))


def platform_idle(group: Path | None) -> IdleUnlessStarved | None:
    """The guard that keeps the control plane's cgroup idle, unless PAAS_PLATFORM_IDLE=0 or
    the kernel has no cpu.idle."""
    if group is None or not PLATFORM_IDLE or not (group / "cpu.idle").exists():
        return None
    return IdleUnlessStarved(group, PLATFORM_CPU_SHARES)


class IdleUnlessStarved:
    """Keeps the control plane's cgroup idle while it finds spare CPU, and gives it its
    weight while it does not.

    Idle, a push's git and build steps, an API call and the agent's `runc` runs take only
    CPU the traffic leaves, and give way at once to a request's processes. When every
    core is busy with traffic, that CPU is gone: so `tick()` (called every half second by
    `paas up`) adds up how long the group's threads waited for a CPU, and once more than
    STARVED of them on average have waited for STARVED_FOR seconds running, the group gets
    `shares` of weight for HOLD seconds, then goes idle again. The API, the agent's checks
    and a saturated app's deploy go on at that weight, as without idleness."""

    STARVED = 1.0
    STARVED_FOR = 2.0
    HOLD = 30.0

    def __init__(self, group: Path, shares: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.group, self.shares, self.clock = group, shares, clock
        self.idle = False
        self._waited: dict[str, int] = {}
        self._last = clock()
        self._starving_since: float | None = None
        self._weighted_until = 0.0
        self._set_idle(True)

    def tick(self) -> None:
        now = self.clock()
        waiting = self._waited_seconds() / max(now - self._last, 1e-3)
        self._last = now
        if not self.idle:
            if now >= self._weighted_until:
                self._set_idle(True)
            return
        if waiting < self.STARVED:
            self._starving_since = None
            return
        if self._starving_since is None:
            self._starving_since = now
        if now - self._starving_since >= self.STARVED_FOR:
            log.warning("the platform's processes found no spare CPU for %gs (every core "
                        "busy): %s runs at its weight for %gs", self.STARVED_FOR,
                        self.group, self.HOLD)
            self._set_idle(False)
            self._weighted_until = now + self.HOLD

    def _set_idle(self, idle: bool) -> None:
        try:
            if idle:
                (self.group / "cpu.idle").write_text("1")
            else:  # every v2 group has cgroup.controllers, as v2's root does
                _weigh(self.group, self.shares, _unified(self.group))
        except OSError as exc:
            log.warning("could not make %s %s: %s", self.group,
                        "idle" if idle else "weighted", exc)
            return
        self.idle = idle
        self._starving_since = None

    def _waited_seconds(self) -> float:
        """Seconds the group's threads spent waiting for a CPU since the last call
        (/proc/<tid>/schedstat: time on the CPU, time waiting for one, slices)."""
        threads = self.group / ("cgroup.threads" if (self.group / "cgroup.threads").exists()
                                else "tasks")
        try:
            tids = threads.read_text().split()
        except OSError:
            return 0.0
        # The first call only takes the starting points; later, a thread not seen before
        # (started since) counts from its start.
        first = not self._waited
        waited, total = {}, 0
        for tid in tids:
            try:
                with open(f"/proc/{tid}/schedstat") as f:
                    waited[tid] = int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if not first:
                total += waited[tid] - self._waited.get(tid, 0)
        self._waited = waited
        return total / 1e9


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
