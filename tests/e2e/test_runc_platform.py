"""The whole platform on the runc runtime: a pushed app runs in a container as its own uid,
sees nothing of the platform or of other apps, and a killed agent's dynos are adopted."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from paas.runtime import cgroups
from tests.e2e.platform import Platform, make_app_repo, processes_mentioning, wait_until
from tests.e2e.traffic import Traffic

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("runc") is None,
        reason="needs root and runc (CI has both): dynos run in runc containers",
    ),
]


@pytest.fixture(scope="module", autouse=True)
def probe_apps(runc_platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two apps of the probe fixture, which report what they can see and do."""
    base = tmp_path_factory.mktemp("probe-src")
    for app in ("probe", "other"):
        runc_platform.cli("apps:create", app)
        repo = make_app_repo(base / app, fixture="probe-app")
        runc_platform.git("push", runc_platform.remote_url(app, runc_platform.token), "main",
                          cwd=repo)


def get(p: Platform, app: str, path: str) -> str:
    response = p.get_app(app, path)
    assert response.status_code == 200, response.text
    return response.text


def test_each_app_runs_as_its_own_uid_with_home_app(runc_platform: Platform) -> None:
    probe = get(runc_platform, "probe", "/")
    other = get(runc_platform, "other", "/")
    assert probe.startswith("uid=2") and "home=/app" in probe
    assert probe.split()[0] != other.split()[0], "two apps must not share a uid"


def test_an_app_cannot_see_the_platform_or_another_app(runc_platform: Platform) -> None:
    db = runc_platform.home / "paas.db"
    assert db.exists()
    assert get(runc_platform, "probe", f"/read?path={db}") == "missing"
    assert get(runc_platform, "probe", f"/read?path={runc_platform.home / 'admin.token'}") == (
        "missing"
    )
    get(runc_platform, "other", "/write?path=/app/secret.txt")
    other_dirs = list((runc_platform.home / "dynos" / "other").glob("*/upper/secret.txt"))
    assert other_dirs, "the write of app 'other' lands in its own dyno's upper dir"
    assert get(runc_platform, "probe", f"/read?path={other_dirs[0]}") == "missing"
    assert get(runc_platform, "probe", "/read?path=/app/secret.txt") == "missing"
    assert get(runc_platform, "probe", "/write?path=/usr/evil").startswith("refused:")
    assert get(runc_platform, "probe", "/write?path=/app/mine.txt") == "written"


def test_an_app_sees_only_its_own_processes(runc_platform: Platform) -> None:
    pids = get(runc_platform, "probe", "/pids").split()
    host_pids = [p for p in os.listdir("/proc") if p.isdigit()]
    # PID 1 is the dyno's launcher; the host's hundreds of processes are not there.
    assert "1" in pids and len(pids) < 10 < len(host_pids), pids


def test_a_killed_agent_leaves_the_dynos_serving_and_the_new_one_adopts_them(
    runc_platform: Platform,
) -> None:
    before = get(runc_platform, "probe", "/")
    dyno_dirs = sorted(p.name for p in (runc_platform.home / "dynos" / "probe").iterdir())
    agents = [
        pid for pid in processes_mentioning(str(runc_platform.home))
        if b"paas.agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(agents) == 1
    # While no agent runs, and after the next one starts, the app keeps answering: steady
    # traffic over kept-alive and new connections sees no error at all.
    with Traffic("probe.localhost", runc_platform.port, workers=2, rate=100) as traffic:
        os.kill(agents[0], signal.SIGKILL)
        wait_until(lambda: "adopted web.1 of probe" in runc_platform.log(), timeout=60,
                   what="the new agent to adopt the dyno")
        time.sleep(1)  # and a moment of the new agent's converging
    assert len(traffic.results) > 50
    assert traffic.failures() == [], traffic.failures()[:5]
    assert set(traffic.bodies()) == {before.rstrip("\n")}
    assert get(runc_platform, "probe", "/") == before
    after = sorted(p.name for p in (runc_platform.home / "dynos" / "probe").iterdir())
    assert after == dyno_dirs, "the adopted dyno was not restarted"


def test_the_same_tree_built_for_two_apps_gives_the_same_layers(runc_platform: Platform) -> None:
    # Builds run in a container at the fixed path /build, so even the compiled bytecode
    # (which records its source path) is the same: the store keeps one copy for both apps.
    from paas.image import ImageStore

    store = ImageStore(runc_platform.home / "images")
    layers = {}
    for app in ("probe", "other"):
        release = runc_platform.api("GET", f"/apps/{app}/releases").json()[0]
        layers[app] = store.image(release["image"]).layers
    assert layers["probe"] == layers["other"]
    assert len(layers["probe"]) == 2


def test_a_dyno_size_becomes_its_memory_limit(runc_platform: Platform) -> None:
    out = runc_platform.cli("ps:type", "-a", "other", "web=eco").stdout
    assert "done" in out

    def limit() -> int | None:
        for dyno in (runc_platform.home / "dynos" / "other").iterdir():
            v1 = Path(f"/sys/fs/cgroup/memory/paas/paas-{dyno.name}/memory.limit_in_bytes")
            v2 = Path(f"/sys/fs/cgroup/paas/paas-{dyno.name}/memory.max")
            for path in (v1, v2):
                if path.exists() and int(path.read_text()) == 256 * 1024 * 1024:
                    return 256
        return None

    assert wait_until(limit, timeout=60, what="the eco dyno with 256 MB") == 256
    listed = runc_platform.cli("ps:type", "-a", "other").stdout
    assert "eco" in listed and "256 MB" in listed
    assert get(runc_platform, "other", "/").startswith("uid=")


def test_an_app_on_the_debian_stack_runs_on_its_own_root(
    runc_platform: Platform, tmp_path: Path
) -> None:
    git_file = "/usr/share/git-core/templates/description"
    assert Path(git_file).exists(), "the host has git; the debian stack must not"
    runc_platform.cli("apps:create", "deb")
    runc_platform.cli("config:set", "-a", "deb", "STACK=debian")
    repo = make_app_repo(tmp_path / "src", fixture="probe-app")
    push = runc_platform.git("push", runc_platform.remote_url("deb", runc_platform.token),
                             "main", cwd=repo)
    assert "Using the debian stack" in push.stderr
    assert get(runc_platform, "deb", f"/read?path={git_file}") == "missing"
    assert get(runc_platform, "deb", "/read?path=/etc/debian_version").startswith("read:12")
    assert get(runc_platform, "probe", f"/read?path={git_file}").startswith("read:")


def test_the_platforms_own_processes_run_in_their_idle_cgroup(runc_platform: Platform) -> None:
    # web, worker and agent deploy rather than serve: paas-platform, idle unless starved
    # (paas/runtime/cgroups.py); the router and Redis stay with `paas up`, at full weight.
    group = Path("/sys/fs/cgroup/cpu") / cgroups.NAME
    if not (group / "cpu.idle").exists():
        pytest.skip("needs cgroup v1's cpu hierarchy with cpu.idle, as on CI")
    assert runc_platform.proc is not None
    up = runc_platform.proc.pid
    where = {}
    for pid in Path(f"/proc/{up}/task/{up}/children").read_text().split():
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        cpu = next(line.split(":", 2)[2] for line in
                   Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                   if line.split(":")[1] == "cpu")
        where[argv] = cpu
    placed = {name: any(name in argv and cpu == f"/{cgroups.NAME}" for argv, cpu in where.items())
              for name in ("gunicorn", "paas.build.worker", "paas.agent", "-m router",
                           "redis-server")}
    assert placed == {"gunicorn": True, "paas.build.worker": True, "paas.agent": True,
                      "-m router": False, "redis-server": False}, where
    # Idle, unless this busy suite starved it (then `paas up` says so, and for 30 s it
    # runs at its weight).
    idle = (group / "cpu.idle").read_text().strip()
    assert idle == "1" or "found no spare CPU" in runc_platform.log(), idle
