"""The build sandbox on runc: a compile runs in its own container, with a CPU weight below
a dyno's so a build yields the CPU to the apps that serve traffic."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from paas.build import sandbox as sandbox_module
from paas.build.sandbox import BUILD_CPU_SHARES, BuildSandbox
from paas.runtime.ocispec import Limits
from tests.e2e.platform import wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None,
    reason="needs root and runc (CI has both): the compile runs in a runc container",
)


def cpu_weight(cid: str) -> int | None:
    """The container's CPU weight from the host's side: cgroup v1 shares or v2 weight."""
    v1 = Path(f"/sys/fs/cgroup/cpu/{cid}/cpu.shares")
    if v1.exists():
        return int(v1.read_text())
    v2 = Path(f"/sys/fs/cgroup/{cid}/cpu.weight")
    if v2.exists():
        return int(v2.read_text())
    return None


def cpu_group(cid: str) -> Path:
    """The container's cgroup in the cpu hierarchy (v1), or its unified one (v2): at the
    top of the tree, where its idleness counts against every other process."""
    v1 = Path(f"/sys/fs/cgroup/cpu/{cid}")
    return v1 if v1.exists() else Path(f"/sys/fs/cgroup/{cid}")


def start_compile(
    tmp_path: Path, script: str, name: str
) -> tuple[BuildSandbox, subprocess.Popen[str]]:
    """A compile running `script` in its sandbox, its input and output pipes."""
    buildpack = tmp_path / "bp"
    (buildpack / "bin").mkdir(parents=True)
    compile_script = buildpack / "bin" / "compile"
    compile_script.write_text(script)
    compile_script.chmod(0o755)
    build, cache, env = (tmp_path / folder for folder in ("build", "cache", "env"))
    for folder in (build, cache, env):
        folder.mkdir()
    sandbox = BuildSandbox(tmp_path / "home", uid=os.getuid() + 40000, name=name)
    argv = sandbox.command(compile_script, build, cache, env, {"PATH": "/usr/bin:/bin"})
    return sandbox, subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, start_new_session=True)


def test_a_compile_runs_idle_then_with_a_cpu_weight_below_a_dynos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sandbox_module, "BUILD_IDLE_SECONDS", 1.0)
    assert BUILD_CPU_SHARES < Limits().cpu_shares
    sandbox, proc = start_compile(
        tmp_path, "#!/bin/bash\necho compiling in \"$1\"\nread -r _\n", "weight")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "compiling in /build"
        # The compile waits on stdin, so its container is there to look at. It starts on
        # spare CPU only, and after its idle spell gets its weight.
        group = cpu_group(sandbox.cid)
        assert (group / "cgroup.procs").read_text().split()  # the compile runs in it
        assert (group / "cpu.idle").read_text().strip() == "1"
        wait_until(lambda: (group / "cpu.idle").read_text().strip() == "0", timeout=10,
                   interval=0.05, what="the idle spell to end")
        weight = cpu_weight(sandbox.cid)
        v2 = not Path(f"/sys/fs/cgroup/cpu/{sandbox.cid}").exists()
        # On cgroup v2, runc maps shares to a weight: 1 + (shares - 2) * 9999 / 262142.
        expected = 1 + (BUILD_CPU_SHARES - 2) * 9999 // 262142 if v2 else BUILD_CPU_SHARES
        assert weight == expected
        proc.communicate("done\n", timeout=30)
        assert proc.returncode == 0
    finally:
        proc.kill()
        sandbox.cleanup()
    for group in (Path(f"/sys/fs/cgroup/cpu/{sandbox.cid}"), Path(f"/sys/fs/cgroup/{sandbox.cid}")):
        assert not group.exists()  # cleanup removed it


def test_a_compile_that_ended_leaves_nothing_and_its_cleanup_starts_no_runc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox, proc = start_compile(tmp_path, "#!/bin/bash\necho compiled\n", "ended")
    out, _ = proc.communicate(timeout=30)
    assert (out, proc.returncode) == ("compiled\n", 0)
    assert not (sandbox.driver.state_root / sandbox.cid).exists()  # runc run removed it
    started: list[list[str]] = []
    run = subprocess.run

    def recording_run(argv: list[str], **kw: object) -> object:
        started.append(argv)
        return run(argv, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(sandbox_module.subprocess, "run", recording_run)
    sandbox.cleanup()
    assert started == []
    assert not sandbox.bundle.exists() and not cpu_group(sandbox.cid).exists()


def test_a_compile_whose_runc_was_killed_is_killed_and_removed_by_its_cleanup(
    tmp_path: Path,
) -> None:
    sandbox, proc = start_compile(tmp_path, "#!/bin/bash\necho started\nexec sleep 300\n",
                                  "killed")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        pids = [int(pid) for pid in
                (cpu_group(sandbox.cid) / "cgroup.procs").read_text().split()]
        assert pids
        proc.kill()  # as at the build's time limit: runc goes, its container stays
        proc.wait()
        assert (sandbox.driver.state_root / sandbox.cid).exists()
        assert all(Path(f"/proc/{pid}").exists() for pid in pids)
    finally:
        proc.kill()
        proc.communicate()
        sandbox.cleanup()
    assert not (sandbox.driver.state_root / sandbox.cid).exists()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), timeout=10,
               interval=0.05, what="the compile to be killed")
    assert not cpu_group(sandbox.cid).exists()
