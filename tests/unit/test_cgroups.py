"""The control plane's cgroup (paas/runtime/cgroups.py): made with its weight on cgroup v1
and v2 layouts, skipped without a cpu controller, joined by a real child process, and
kept idle unless it starves; idle spells and the groups that hold them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paas.runtime import cgroups
from tests.e2e.platform import wait_until

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI has it): it writes "
                                                       "cgroup files")


@as_root
def test_on_v1_the_group_is_in_the_cpu_hierarchy_with_its_shares(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.shares").write_text("1024")
    group = cgroups.platform_cgroup(256, root=tmp_path)
    assert group == tmp_path / "cpu" / cgroups.NAME
    assert (group / "cpu.shares").read_text() == "256"


@as_root
def test_on_v2_the_group_gets_the_weight_runc_would_give_those_shares(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    group = cgroups.platform_cgroup(256, root=tmp_path)
    assert group == tmp_path / cgroups.NAME
    assert (group / "cpu.weight").read_text() == str(cgroups.shares_to_weight(256)) == "10"
    assert cgroups.shares_to_weight(1024) == 39 and cgroups.shares_to_weight(2) == 1


@as_root
def test_without_a_cpu_controller_or_with_zero_shares_nothing_is_made(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    assert cgroups.platform_cgroup(256, root=tmp_path) is None
    assert cgroups.platform_cgroup(0, root=tmp_path) is None
    assert not (tmp_path / cgroups.NAME).exists()


@as_root
def test_a_child_that_joins_runs_in_the_group_and_its_children_follow() -> None:
    group = cgroups.platform_cgroup(256)
    if group is None:
        pytest.skip("no cpu cgroup controller on this host (CI has one)")
    shell = subprocess.run(["sh", "-c", "cat /proc/self/cgroup; sh -c 'cat /proc/self/cgroup'"],
                           preexec_fn=lambda: cgroups.join(group), capture_output=True,
                           text=True, check=True)
    lines = shell.stdout.splitlines()
    # v1: the cpu hierarchy's line names the group (twice: the shell and its child); v2:
    # the single line does.
    assert sum(f"/{cgroups.NAME}" in line and ("cpu" in line or line.startswith("0::"))
               for line in lines) == 2, lines


def test_set_cpu_shares_writes_an_existing_group_on_v1_and_v2(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    (v1 / "cpu" / "paas" / "dyno-1").mkdir(parents=True)
    assert cgroups.set_cpu_shares("/paas/dyno-1", 1024, root=v1)
    assert (v1 / "cpu" / "paas" / "dyno-1" / "cpu.shares").read_text() == "1024"
    v2 = tmp_path / "v2"
    (v2 / "paas" / "dyno-1").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    assert cgroups.set_cpu_shares("/paas/dyno-1", 1024, root=v2)
    assert (v2 / "paas" / "dyno-1" / "cpu.weight").read_text() == "39"
    # no such group (a dyno runc placed elsewhere): the caller falls back to runc update
    assert not cgroups.set_cpu_shares("/paas/dyno-2", 1024, root=v1)
    assert not (v1 / "cpu" / "paas" / "dyno-2").exists()


def test_make_idle_makes_the_group_on_v1_and_v2_and_a_weight_ends_it(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    assert cgroups.make_idle("/paas/dyno-1", root=v1)
    group = v1 / "cpu" / "paas" / "dyno-1"
    assert (group / "cpu.idle").read_text() == "1"
    assert cgroups.set_cpu_shares("/paas/dyno-1", 512, root=v1)
    assert (group / "cpu.idle").read_text() == "0"  # first, or the kernel refuses the weight
    assert (group / "cpu.shares").read_text() == "512"
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    (v2 / "cgroup.subtree_control").write_text("memory pids\n")
    (v2 / "paas").mkdir()
    (v2 / "paas" / "cgroup.subtree_control").write_text("cpu\n")
    assert cgroups.make_idle("/paas/dyno-1", root=v2)
    assert (v2 / "cgroup.subtree_control").read_text() == "+cpu"  # enabled for /paas
    assert (v2 / "paas" / "dyno-1" / "cpu.idle").read_text() == "1"


def test_idle_for_gives_the_weight_when_the_spell_ends_unless_cancelled(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    timer = cgroups.idle_for("/paas/slow", 0.05, 128, root=tmp_path)
    assert timer is not None
    timer.join(5)
    assert (tmp_path / "cpu" / "paas" / "slow" / "cpu.idle").read_text() == "0"
    assert (tmp_path / "cpu" / "paas" / "slow" / "cpu.shares").read_text() == "128"
    timer = cgroups.idle_for("/paas/quick", 0.05, 128, root=tmp_path)
    assert timer is not None
    timer.cancel()
    timer.join(5)
    assert (tmp_path / "cpu" / "paas" / "quick" / "cpu.idle").read_text() == "1"
    assert not (tmp_path / "cpu" / "paas" / "quick" / "cpu.shares").exists()


def test_without_a_cpu_hierarchy_nothing_is_made_idle(tmp_path: Path) -> None:
    (tmp_path / "cpu").write_text("not a folder")
    assert cgroups.idle_for("/paas/dyno-1", 0.05, 128, root=tmp_path) is None


def test_on_v2_nothing_is_held_apart_and_releasing_nothing_is_harmless(tmp_path: Path) -> None:
    # A process has one group for every controller on v2: it stays idle in its own.
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (tmp_path / "paas").mkdir()
    (tmp_path / "paas" / "cgroup.subtree_control").write_text("cpu\n")
    assert cgroups.make_idle("/paas/dyno-1", root=tmp_path)
    assert cgroups.hold_idle("/paas/dyno-1", root=tmp_path) is False
    assert not (tmp_path / cgroups.IDLE_PARENT).exists()
    cgroups.release_idle("/paas/dyno-1", root=tmp_path)
    assert cgroups.give_weight("/paas/dyno-1", 1024, root=tmp_path)
    assert (tmp_path / "paas" / "dyno-1" / "cpu.idle").read_text() == "0"


def test_on_v1_an_empty_group_is_not_held_and_remove_takes_the_holder(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    assert cgroups.make_idle("/paas/dyno-1", root=tmp_path)
    (tmp_path / "cpu" / "paas" / "dyno-1" / "cgroup.procs").write_text("")
    assert cgroups.hold_idle("/paas/dyno-1", root=tmp_path) is False  # nothing to move
    parent = tmp_path / "cpu" / cgroups.IDLE_PARENT
    assert (parent / "cpu.idle").read_text() == "1"  # idle at the top of the tree
    assert (parent / "dyno-1").is_dir()
    (tmp_path / "cpu" / "paas" / "dyno-1" / "cgroup.procs").unlink()
    (tmp_path / "cpu" / "paas" / "dyno-1" / "cpu.idle").unlink()
    cgroups.remove("/paas/dyno-1", root=tmp_path)
    assert not (parent / "dyno-1").exists() and not (tmp_path / "cpu" / "paas" / "dyno-1").exists()


class Waits(cgroups.IdleUnlessStarved):
    """The guard with the waits it reads given by the test, on a clock the test moves."""

    def __init__(self, group: Path) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        super().__init__(group, 256, clock=lambda: self.now)

    def _waited_seconds(self) -> float:
        return self.waits.pop(0)

    def after(self, seconds: float, waiting: float) -> None:
        """Half a second per tick, with `waiting` threads waiting for a CPU on average."""
        for _ in range(int(seconds / 0.5)):
            self.now += 0.5
            self.waits.append(waiting * 0.5)
            self.tick()


def test_the_platform_stays_idle_until_it_starves_then_gets_its_weight_for_a_while(
    tmp_path: Path,
) -> None:
    group = tmp_path / "cpu" / cgroups.NAME
    group.mkdir(parents=True)
    guard = Waits(group)
    assert guard.idle and (group / "cpu.idle").read_text() == "1"
    guard.after(10, waiting=0.2)  # spare CPU: its threads hardly wait
    guard.after(1.5, waiting=3)  # a burst shorter than STARVED_FOR
    guard.after(1, waiting=0.1)
    assert guard.idle
    guard.after(cgroups.IdleUnlessStarved.STARVED_FOR + 0.5, waiting=3)
    assert not guard.idle
    assert (group / "cpu.idle").read_text() == "0" and (group / "cpu.shares").read_text() == "256"
    guard.after(cgroups.IdleUnlessStarved.HOLD - 1, waiting=0)
    assert not guard.idle  # held at its weight for HOLD seconds
    guard.after(1.5, waiting=0)
    assert guard.idle and (group / "cpu.idle").read_text() == "1"


@as_root
def test_a_platform_cgroup_left_idle_gets_its_weight_at_the_next_start(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.shares").write_text("1024")
    (tmp_path / "cpu" / cgroups.NAME).mkdir()
    (tmp_path / "cpu" / cgroups.NAME / "cpu.idle").write_text("1")
    group = cgroups.platform_cgroup(256, root=tmp_path)
    assert group is not None and (group / "cpu.idle").read_text() == "0"
    assert (group / "cpu.shares").read_text() == "256"


@as_root
def test_the_guard_sees_a_real_idle_group_starve_behind_busy_processes() -> None:
    # The kernel's cgroup, as `paas up` would use it, with every core kept busy by
    # processes at the top of the tree: the idle group's own busy process waits.
    cpu = Path("/sys/fs/cgroup/cpu")
    if not (cpu / "cpu.shares").exists():
        pytest.skip("needs cgroup v1's cpu hierarchy, as on CI")
    group = cpu / f"paas-test-starve-{os.getpid()}"
    group.mkdir()
    if not (group / "cpu.idle").exists():
        group.rmdir()
        pytest.skip("this kernel has no cpu.idle")
    spin = [sys.executable, "-c", "while True: pass"]
    busy = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 1)]
    starved = subprocess.Popen(spin, preexec_fn=lambda: cgroups.join(group))
    try:
        guard = cgroups.IdleUnlessStarved(group, 256)
        guard.STARVED_FOR = 1.0
        assert (group / "cpu.idle").read_text().strip() == "1"

        def ticked() -> bool:
            time.sleep(0.5)
            guard.tick()
            return not guard.idle

        wait_until(ticked, timeout=60, interval=0, what="the guard to give the group its weight")
        assert (group / "cpu.idle").read_text().strip() == "0"
        assert (group / "cpu.shares").read_text().strip() == "256"
    finally:
        for proc in [*busy, starved]:
            proc.kill()
            proc.wait()
        group.rmdir()
