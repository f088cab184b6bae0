"""The runc driver against real runc: a dyno's identity, its walls, its limits, its writes,
what it leaves behind, its adoption by a restarted agent, and SIGTERM.

Every test builds its image layers in tmp_path (root-owned, like real layers) and stops the
dynos it started; a module fixture checks that no mount or cgroup outlives the module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest

from paas.runtime import BOOT_CPU_SHARES, DynoSpec, RunningDyno
from paas.runtime import runc as runc_module
from paas.runtime.ocispec import Limits
from paas.runtime.runc import RuncDriver, cgroup_v2

if os.geteuid() != 0 or shutil.which("runc") is None:
    pytest.skip("needs root and runc (CI has both): the runc driver creates namespaces, "
                "cgroups and mounts", allow_module_level=True)

UID_A = 200000  # app "alpha"
UID_B = 200001  # app "beta"
#: In every spec id of this run, so the leak checks only look at our own cgroups.
RUN = f"t{os.getpid()}"
_serial = count(1)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def make_layer(root: Path, files: dict[str, tuple[str, int]]) -> Path:
    """A layer tree as the image builder makes them: root's, dirs 0755, files 0644/0755."""
    root.mkdir(parents=True)
    root.chmod(0o755)
    for rel, (text, mode) in files.items():
        path = root / rel
        for parent in reversed(path.relative_to(root).parents[:-1]):
            (root / parent).mkdir(exist_ok=True)
            (root / parent).chmod(0o755)
        path.write_text(text)
        path.chmod(mode)
    for path in [root, *root.rglob("*")]:
        os.lchown(path, 0, 0)
    return root


def tree_digest(root: Path) -> list[tuple[str, int, int, int, str]]:
    """Every entry's path, mode, owner and content hash."""
    found = []
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        body = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found.append((str(path.relative_to(root)), st.st_mode, st.st_uid, st.st_gid, body))
    return found


def cgroup_dirs(cid: str) -> list[Path]:
    """The container's cgroup directories that exist: one per v1 controller (plus the
    hybrid unified one) or the single v2 one."""
    candidates = [*Path("/sys/fs/cgroup").glob(f"*/paas/{cid}"), Path("/sys/fs/cgroup/paas") / cid]
    return [p for p in candidates if p.is_dir()]


def cgroup_file(cid: str, controller: str, name: str) -> Path:
    if cgroup_v2():
        return Path("/sys/fs/cgroup/paas") / cid / name
    return Path("/sys/fs/cgroup") / controller / "paas" / cid / name


def runc_ids(home: Path) -> set[str]:
    listed = subprocess.run(["runc", "--root", str(home / "run" / "runc"), "list",
                             "--format", "json"], capture_output=True, text=True, check=True)
    return {c["id"] for c in json.loads(listed.stdout or "null") or []}


def mount_count() -> int:
    return len(Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.fixture(scope="module", autouse=True)
def no_leaks() -> Iterator[None]:
    before = mount_count()
    yield
    leftover = [*Path("/sys/fs/cgroup").glob(f"*/paas/paas-*{RUN}*"),
                *Path("/sys/fs/cgroup/paas").glob(f"paas-*{RUN}*"),
                *Path("/sys/fs/cgroup/cpu/paas-idle").glob(f"paas-*{RUN}*")]
    assert leftover == []
    assert mount_count() == before


@dataclass
class Ran:
    code: int | None
    reason: str | None
    lines: list[str]


@dataclass
class Dynos:
    """Starts dynos on one driver and remembers them, so the fixture can stop them all."""

    home: Path
    layer: Path
    driver: RuncDriver
    started: list[RunningDyno] = field(default_factory=list)

    def start(self, command: str, *, app: str = "alpha", uid: int = UID_A,
              layers: tuple[Path, ...] | None = None, limits: Limits | None = None,
              port: int | None = None,
              env: dict[str, str] | None = None) -> tuple[RunningDyno, list[str]]:
        spec = DynoSpec(id=f"{app}.web.1.{RUN}x{next(_serial)}", app=app, name="web.1",
                        type="web", release=1, restart_seq=0,
                        layers=layers if layers is not None else (self.layer,),
                        command=command, env=env or {}, port=port, uid=uid,
                        limits=limits or Limits())
        lines: list[str] = []
        dyno = self.driver.start(spec, lines.append)
        self.started.append(dyno)
        return dyno, lines

    def wait_exit(self, dyno: RunningDyno) -> int:
        wait_until(lambda: self.driver.poll(dyno) is not None, f"{dyno.spec.id} to exit")
        code = self.driver.poll(dyno)
        assert code is not None
        return code

    def stop(self, dyno: RunningDyno, grace: float = 5.0) -> int | None:
        self.forget(dyno)
        return self.driver.stop(dyno, grace)

    def forget(self, dyno: RunningDyno) -> None:
        self.started = [d for d in self.started if d.spec.id != dyno.spec.id]

    def run(self, command: str, **kwargs) -> Ran:
        """Start, wait for the exit, ask why it ended, stop (which ships the last output)."""
        dyno, lines = self.start(command, **kwargs)
        code = self.wait_exit(dyno)
        reason = self.driver.exit_reason(dyno)
        self.stop(dyno)
        return Ran(code, reason, lines)

    def workdir(self, dyno: RunningDyno) -> Path:
        return self.home / "dynos" / dyno.spec.app / dyno.spec.id


@pytest.fixture()
def app_layer(tmp_path: Path) -> Path:
    return make_layer(tmp_path / "layers" / "alpha", {
        "Procfile": ("web: bin/hello.sh\n", 0o644),
        "bin/hello.sh": ('#!/bin/bash\necho "hello from $DYNO"\n', 0o755),
        "data.txt": ("image data\n", 0o644),
        "lib/deep/module.txt": ("deep\n", 0o644),
    })


@pytest.fixture()
def dynos(tmp_path: Path, app_layer: Path) -> Iterator[Dynos]:
    harness = Dynos(home=tmp_path, layer=app_layer, driver=RuncDriver(home=tmp_path))
    try:
        yield harness
    finally:
        for dyno in reversed(harness.started):
            harness.driver.stop(dyno, 1.0)
    assert runc_ids(tmp_path) == set()


# --- who a dyno is -------------------------------------------------------------------
def test_a_dyno_runs_as_its_app_with_its_env_and_ordered_output(dynos: Dynos) -> None:
    ran = dynos.run(
        'id -u; id -g; echo "HOME=$HOME PORT=$PORT DYNO=$DYNO GREETING=$GREETING"; pwd; '
        'bin/hello.sh; for i in $(seq 1 50); do echo "line $i"; done; exit 7',
        port=5123, env={"GREETING": "hi there"},
    )
    assert ran.lines == [
        str(UID_A), str(UID_A), "HOME=/app PORT=5123 DYNO=web.1 GREETING=hi there", "/app",
        "hello from web.1", *[f"line {i}" for i in range(1, 51)],
    ]
    assert ran.code == 7
    assert ran.reason is None


# --- the walls -----------------------------------------------------------------------
def test_another_apps_files_are_out_of_reach(dynos: Dynos, app_layer: Path) -> None:
    alpha, alpha_lines = dynos.start("echo top-secret-alpha > /app/secret.txt && echo written; "
                                     "sleep 60")
    wait_until(lambda: "written" in alpha_lines, "alpha to write its secret")
    alpha_upper = dynos.workdir(alpha) / "upper"
    assert (alpha_upper / "secret.txt").read_text() == "top-secret-alpha\n"  # it is there

    # beta even shares alpha's image layer: still it sees nothing alpha wrote.
    beta = dynos.run(f"cat {alpha_upper}/secret.txt; ls {alpha_upper}; ls {dynos.home}/dynos; "
                     "ls -a /app; cat /proc/*/root/app/secret.txt",
                     app="beta", uid=UID_B, layers=(app_layer,))
    assert "top-secret-alpha" not in "\n".join(beta.lines)
    assert "secret.txt" not in beta.lines  # not in beta's /app
    assert f"cat: {alpha_upper}/secret.txt: No such file or directory" in beta.lines
    assert f"ls: cannot access '{alpha_upper}': No such file or directory" in beta.lines
    assert f"ls: cannot access '{dynos.home}/dynos': No such file or directory" in beta.lines


def test_the_platform_database_does_not_exist_inside(dynos: Dynos, tmp_path: Path) -> None:
    db = tmp_path / "paas.db"
    db.write_text("platform-secret\n")
    db.chmod(0o644)  # readable by anyone who can reach it: only the mount namespace hides it
    ran = dynos.run(f"cat {db}; ls -d {tmp_path}; "
                    r"find / \( -path /proc -o -path /sys -o -path /usr \) -prune "
                    "-o -name paas.db -print 2>/dev/null; echo searched")
    assert "platform-secret" not in "\n".join(ran.lines)
    assert f"cat: {db}: No such file or directory" in ran.lines
    assert f"ls: cannot access '{tmp_path}': No such file or directory" in ran.lines
    assert not [line for line in ran.lines if line.endswith("/paas.db")]
    assert ran.lines[-1] == "searched"


def test_a_host_process_can_be_neither_killed_nor_seen(dynos: Dynos) -> None:
    host = subprocess.Popen(["sleep", "60"])
    try:
        ran = dynos.run(f'kill -9 {host.pid}; echo "kill-status $?"; kill -9 -1; '
                        'ls /proc | grep -E "^[0-9]+$"; ps -e -o pid=')
        assert host.poll() is None  # still alive
    finally:
        host.kill()
        host.wait()
    assert f"/bin/bash: line 1: kill: ({host.pid}) - No such process" in ran.lines
    assert "kill-status 1" in ran.lines
    pids = [line.strip() for line in ran.lines if line.strip().isdigit()]
    assert "1" in pids
    assert str(host.pid) not in pids
    assert all(int(pid) < 20 for pid in pids)  # the container's own few processes


def test_the_root_and_usr_are_read_only(dynos: Dynos) -> None:
    ran = dynos.run("touch /usr/escape; touch /escape; echo x >> /etc/passwd; echo done")
    assert "touch: cannot touch '/usr/escape': Read-only file system" in ran.lines
    assert "touch: cannot touch '/escape': Read-only file system" in ran.lines
    passwd = [line for line in ran.lines if "/etc/passwd" in line]
    assert len(passwd) == 1
    assert passwd[0].endswith(("Read-only file system", "Permission denied"))
    assert not Path("/usr/escape").exists()
    assert not (dynos.driver.ensure_stack() / "escape").exists()


def test_mounting_is_refused(dynos: Dynos) -> None:
    ran = dynos.run('mkdir -p /tmp/x; mount -t tmpfs x /tmp/x; echo "mount-status $?"; '
                    'grep -c " /tmp/x " /proc/self/mountinfo')
    status = [line for line in ran.lines if line.startswith("mount-status ")]
    assert status != ["mount-status 0"]
    assert len(status) == 1
    assert ran.lines[-1] == "0"  # no such mount


def test_a_dyno_has_no_capabilities(dynos: Dynos) -> None:
    ran = dynos.run('grep -E "^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):" /proc/self/status')
    fields = dict(line.split(":\t") for line in ran.lines)
    assert {k: v for k, v in fields.items() if k.startswith("Cap")} == {
        name: "0000000000000000" for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    }
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"  # filtered


def test_dev_has_only_the_standard_nodes(dynos: Dynos) -> None:
    ran = dynos.run("ls -A /dev")
    assert set(ran.lines) == {"null", "zero", "full", "random", "urandom", "tty", "ptmx",
                              "pts", "shm", "mqueue", "fd", "stdin", "stdout", "stderr"}


# --- limits ----------------------------------------------------------------------------
def test_memory_over_the_limit_is_an_oom_kill(dynos: Dynos) -> None:
    dyno, _ = dynos.start('python3 -c "b=bytearray(200*1024*1024); import time; time.sleep(5)"',
                          limits=Limits(memory_mb=64))
    cid = dynos.driver.container_id(dyno.spec)
    limit = cgroup_file(cid, "memory", "memory.max" if cgroup_v2() else "memory.limit_in_bytes")
    assert int(limit.read_text()) == 64 * 1024 * 1024
    assert dynos.wait_exit(dyno) == 137
    assert dynos.driver.exit_reason(dyno) == "oom"


def weight_of(dyno: RunningDyno) -> int:
    cid = RuncDriver.container_id(dyno.spec)
    return int(cgroup_file(cid, "cpu", "cpu.weight" if cgroup_v2() else "cpu.shares")
               .read_text())


def idle_of(dyno: RunningDyno) -> str:
    return cgroup_file(RuncDriver.container_id(dyno.spec), "cpu", "cpu.idle").read_text().strip()


def held_idle(dyno: RunningDyno) -> list[str] | None:
    """The processes held at the top of the tree, in /paas-idle (cgroup v1); None on v2,
    where a booting dyno stays idle in its own group."""
    if cgroup_v2():
        return None
    held = Path("/sys/fs/cgroup/cpu/paas-idle") / RuncDriver.container_id(dyno.spec)
    return (held / "cgroup.procs").read_text().split() if held.is_dir() else []


def in_own_group(dyno: RunningDyno) -> list[str]:
    procs = cgroup_file(RuncDriver.container_id(dyno.spec), "cpu", "cgroup.procs")
    return procs.read_text().split()


def as_weight(shares: int) -> int:
    """runc's mapping of shares onto a v2 weight (v1 keeps the shares)."""
    return 1 + (shares - 2) * 9999 // 262142 if cgroup_v2() else shares


def test_a_dyno_boots_idle_and_gets_its_own_weight_once_booted(
    dynos: Dynos, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dyno, _ = dynos.start("sleep 30")
    assert idle_of(dyno) == "1"  # preempted by any serving process that wakes
    held = held_idle(dyno)
    if held is None:  # v2: the dyno runs in its own idle group
        assert str(dyno.pid) in in_own_group(dyno)
    else:  # v1: at the top of the tree, where every process that is not idle comes first
        assert str(dyno.pid) in held and not in_own_group(dyno)
        assert Path("/sys/fs/cgroup/cpu/paas-idle/cpu.idle").read_text().strip() == "1"
    run_runc = dynos.driver._run_runc
    used: list[str] = []

    def recording(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        used.append(args[0])
        return run_runc(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(dynos.driver, "_run_runc", recording)
    dynos.driver.booted(dyno)
    assert idle_of(dyno) == "0"
    assert weight_of(dyno) == as_weight(Limits().cpu_shares)
    assert str(dyno.pid) in in_own_group(dyno) and not held_idle(dyno)  # back, holder gone
    assert "update" not in used  # written to the cgroup, not through a runc start
    dynos.stop(dyno, grace=1.0)


def test_a_dyno_still_booting_after_its_idle_spell_boots_on_at_the_boot_weight(
    dynos: Dynos, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runc_module, "BOOT_IDLE_SECONDS", 0.2)
    assert 0 < BOOT_CPU_SHARES < Limits().cpu_shares
    dyno, _ = dynos.start("sleep 30")
    wait_until(lambda: idle_of(dyno) == "0", "the idle spell to end")
    assert weight_of(dyno) == as_weight(BOOT_CPU_SHARES)
    wait_until(lambda: str(dyno.pid) in in_own_group(dyno), "the dyno to be back in its group")
    assert not held_idle(dyno)
    dynos.driver.booted(dyno)
    assert weight_of(dyno) == as_weight(Limits().cpu_shares)
    dynos.stop(dyno, grace=1.0)


@pytest.mark.parametrize("port", [5124, None], ids=["web", "other"])
def test_a_stopping_web_dyno_shuts_down_idle_and_other_types_at_their_weight(
    dynos: Dynos, port: int | None,
) -> None:
    dyno, lines = dynos.start("trap 'echo stopping; sleep 1; exit 0' TERM; echo ready; "
                              "while true; do sleep 0.1; done", port=port)
    wait_until(lambda: "ready" in lines, "the trap to be set")
    dynos.driver.booted(dyno)
    assert idle_of(dyno) == "0"
    seen: list[str] = []
    stopping = threading.Thread(target=lambda: seen.append(str(dynos.stop(dyno, 5.0))))
    stopping.start()
    wait_until(lambda: "stopping" in lines, "the SIGTERM to arrive")
    assert idle_of(dyno) == ("1" if port else "0")
    if port and held_idle(dyno) is not None:
        assert held_idle(dyno)  # its shutdown is held at the top of the tree
    stopping.join(20)
    assert seen == ["0"]


def test_a_web_dyno_that_ignores_sigterm_is_killed_while_it_is_held_idle(dynos: Dynos) -> None:
    # runc signals the container's processes wherever the cpu hierarchy holds them.
    dyno, lines = dynos.start("trap 'echo ignored' TERM; echo ready; "
                              "while true; do sleep 0.1; done", port=5125)
    wait_until(lambda: "ready" in lines, "the trap to be set")
    dynos.driver.booted(dyno)
    codes: list[int | None] = []
    stopping = threading.Thread(target=lambda: codes.append(dynos.stop(dyno, 2.0)))
    stopping.start()  # SIGTERM, then after the grace SIGKILL
    wait_until(lambda: "ignored" in lines, "the SIGTERM to arrive")
    held = held_idle(dyno)
    if held is not None:  # v1: the SIGKILL has to reach processes held in /paas-idle
        assert str(dyno.pid) in held
    stopping.join(20)
    assert codes and codes[0] is not None and dynos.driver.poll(dyno) is not None
    assert held_idle(dyno) in (None, [])  # the holder went with the dyno


def test_without_idle_boots_a_dyno_boots_at_a_low_weight(
    dynos: Dynos, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runc_module, "BOOT_IDLE", False)
    dyno, _ = dynos.start("sleep 30")
    assert idle_of(dyno) == "0"
    assert weight_of(dyno) == as_weight(BOOT_CPU_SHARES)
    dynos.driver.booted(dyno)
    assert weight_of(dyno) == as_weight(Limits().cpu_shares)
    dynos.stop(dyno, grace=1.0)


def test_pids_over_the_limit_fail_to_fork_and_spare_the_host(dynos: Dynos) -> None:
    dyno, lines = dynos.start("for i in $(seq 100); do sleep 5 & done; wait",
                              limits=Limits(pids=32))
    wait_until(lambda: any("Resource temporarily unavailable" in line for line in lines),
               "a fork to fail")
    cid = dynos.driver.container_id(dyno.spec)
    assert cgroup_file(cid, "pids", "pids.max").read_text().strip() == "32"
    assert int(cgroup_file(cid, "pids", "pids.current").read_text()) <= 32
    # The host forks as usual meanwhile.
    subprocess.run(["bash", "-c", "for i in $(seq 64); do true & done; wait"], check=True)


def test_tmp_is_size_limited(dynos: Dynos) -> None:
    ran = dynos.run('echo small > /tmp/small && cat /tmp/small; '
                    'head -c 100M /dev/zero > /tmp/big; echo "write-status $?"; '
                    "stat -c 'size %s' /tmp/big", limits=Limits(tmp_mb=16))
    assert "small" in ran.lines
    assert any(line.endswith("No space left on device") for line in ran.lines)
    assert "write-status 1" in ran.lines
    sizes = [int(line.split()[1]) for line in ran.lines if line.startswith("size ")]
    assert len(sizes) == 1
    assert sizes[0] <= 16 * 1024 * 1024


# --- writes ----------------------------------------------------------------------------
def test_writes_land_in_the_dynos_upper_dir_and_spare_the_layer(
        dynos: Dynos, app_layer: Path) -> None:
    before = tree_digest(app_layer)
    dyno, lines = dynos.start(
        "echo fresh > /app/new.txt && mkdir -p /app/cache/deep && echo c > /app/cache/deep/f "
        "&& echo t > /tmp/t && cat /tmp/t /app/new.txt; "
        # Whether or not these are allowed, the image must not change.
        "rm -f /app/data.txt /app/bin/hello.sh; echo more >> /app/lib/deep/module.txt; exit 0")
    assert dynos.wait_exit(dyno) == 0
    upper = dynos.workdir(dyno) / "upper"
    new = upper / "new.txt"
    assert new.read_text() == "fresh\n"
    assert (new.stat().st_uid, new.stat().st_gid) == (UID_A, UID_A)
    assert (upper / "cache" / "deep" / "f").stat().st_uid == UID_A
    dynos.stop(dyno)
    assert lines[:2] == ["t", "fresh"]
    assert tree_digest(app_layer) == before

    # Another dyno of the same release starts from the image, not from the first one's writes.
    second = dynos.run("ls -A /app; cat /app/data.txt")
    assert sorted(second.lines[:-1]) == ["Procfile", "bin", "data.txt", "lib"]
    assert second.lines[-1] == "image data"


# --- cleanup ---------------------------------------------------------------------------
def test_stop_leaves_no_container_files_or_cgroups(dynos: Dynos) -> None:
    dyno, lines = dynos.start("echo up; sleep 60")
    wait_until(lambda: "up" in lines, "the dyno to run")
    cid = dynos.driver.container_id(dyno.spec)
    workdir = dynos.workdir(dyno)
    assert cid in runc_ids(dynos.home)
    assert workdir.is_dir()
    assert cgroup_dirs(cid)  # where to look is right

    assert dynos.stop(dyno, 5.0) == 143  # bash ended by SIGTERM
    assert runc_ids(dynos.home) == set()
    assert not workdir.exists()
    assert cgroup_dirs(cid) == []


def test_a_dyno_that_cannot_start_leaves_nothing(dynos: Dynos, tmp_path: Path) -> None:
    spec = DynoSpec(id=f"alpha.web.1.{RUN}x{next(_serial)}", app="alpha", name="web.1",
                    type="web", release=1, restart_seq=0, layers=(tmp_path / "missing",),
                    command="true", uid=UID_A)
    with pytest.raises(RuntimeError, match="runc could not start the container"):
        dynos.driver.start(spec, [].append)
    assert runc_ids(dynos.home) == set()
    assert not (dynos.home / "dynos" / "alpha" / spec.id).exists()
    assert cgroup_dirs(dynos.driver.container_id(spec)) == []


# --- a restarted agent ------------------------------------------------------------------
def test_a_restarted_agent_adopts_a_running_dyno_without_losing_or_repeating_lines(
        dynos: Dynos) -> None:
    first = dynos.driver
    dyno, first_lines = dynos.start(
        'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done')
    wait_until(lambda: len(first_lines) >= 3, "a few ticks")
    first._tails[dyno.spec.id].stop()  # the agent dies: nobody follows the output any more
    shipped = len(first_lines)
    log_file = dynos.workdir(dyno) / "output.log"
    wait_until(lambda: log_file.read_text().count("\n") >= shipped + 2,
               "ticks nobody followed")

    second = RuncDriver(home=dynos.home)
    strays = second.strays()
    assert [(s.spec, s.pid) for s in strays] == [(dyno.spec, dyno.pid)]
    second_lines: list[str] = []
    second.attach(strays[0], second_lines.append)
    wait_until(lambda: len(second_lines) >= 5, "ticks after the adoption")
    dynos.forget(dyno)
    assert second.stop(strays[0], 5.0) == 143

    shipped_lines = first_lines + second_lines
    assert shipped_lines == [f"tick {i}" for i in range(len(shipped_lines))]
    assert len(first_lines) == shipped  # the first tail shipped nothing after it stopped


def test_strays_cleans_up_a_dyno_that_died_meanwhile(dynos: Dynos) -> None:
    first = dynos.driver
    dyno, _ = dynos.start("echo bye; exit 3")
    wait_until(lambda: first.poll(dyno) is not None, "the dyno to exit")
    first._tails.pop(dyno.spec.id).stop()
    cid = first.container_id(dyno.spec)
    assert cid in runc_ids(dynos.home)  # stopped, not deleted

    assert RuncDriver(home=dynos.home).strays() == []
    dynos.forget(dyno)
    assert runc_ids(dynos.home) == set()
    assert not dynos.workdir(dyno).exists()
    assert cgroup_dirs(cid) == []


# The agent may be PID 1 of its own container, or a subreaper: then the container's init
# becomes its child once `runc run --detach` returns, and stays a zombie until reaped.
NOBODY_REAPS = textwrap.dedent("""
    import ctypes, json, sys, time
    from pathlib import Path
    from paas.runtime import DynoSpec
    from paas.runtime.runc import RuncDriver

    PR_SET_CHILD_SUBREAPER = 36
    assert ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    home, layer, dyno_id = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    driver = RuncDriver(home)
    spec = DynoSpec(id=dyno_id, app="alpha", name="web.1", type="web", release=1,
                    restart_seq=0, layers=(layer,), command="exit 3", uid=200000)
    dyno = driver.start(spec, lambda line: None)
    deadline = time.monotonic() + 10
    while driver.poll(dyno) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = driver.poll(dyno)
    print(json.dumps({"poll": seen, "stop": driver.stop(dyno, 1.0)}))
""")


def test_an_exit_is_seen_while_nobody_reaps_the_container(dynos: Dynos, app_layer: Path) -> None:
    dyno_id = f"alpha.web.1.{RUN}x{next(_serial)}"
    done = subprocess.run([sys.executable, "-c", NOBODY_REAPS, str(dynos.home), str(app_layer),
                           dyno_id], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"poll": 3, "stop": 3}


# --- SIGTERM ---------------------------------------------------------------------------
def test_sigterm_reaches_the_command(dynos: Dynos) -> None:
    dyno, lines = dynos.start(
        "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done")
    wait_until(lambda: "ready" in lines, "the trap to be set")
    assert dynos.stop(dyno, 5.0) == 0
    # Every process of the dyno gets SIGTERM, as on Heroku: here also the loop's `sleep`,
    # whose end bash reports as "Terminated".
    assert lines[0] == "ready" and "got-term" in lines


def test_a_command_ignoring_sigterm_is_killed_after_the_grace(dynos: Dynos) -> None:
    dyno, lines = dynos.start("trap '' TERM; echo ready; while true; do sleep 0.1; done")
    wait_until(lambda: "ready" in lines, "the trap to be set")
    workdir = dynos.workdir(dyno)
    assert dynos.stop(dyno, 0.5) == 137
    assert runc_ids(dynos.home) == set()
    assert not workdir.exists()


def test_an_exit_status_file_the_app_replaced_with_a_link_is_not_followed(
    dynos: Dynos,
) -> None:
    dyno, lines = dynos.start("ln -sf /dev/zero /run/paas/exit; echo linked; exit 0")
    wait_until(lambda: "linked" in lines, "the link to be made")
    assert dynos.stop(dyno, 5.0) == 137
