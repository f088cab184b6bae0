"""Dyno start speed of the runc driver, measured against bare `runc run` in the same run.

(a) baseline: `runc run --keep` of /bin/true on a bundle written once from the driver's own
    config (paas.runtime.ocispec: same mounts, seccomp, limits), spawn to exit, plus
    `runc delete`;
(b) RuncDriver.start() of a dyno whose command is /bin/true, to the process running
    (start() returns once `runc run --detach` has started it);
(c) RuncDriver.start() of `python3 -m http.server $PORT` to the port accepting connections.

Prints each round, the medians and (b) - (a); target: overhead <= 50 ms at the median. As
(a) includes the exit and the delete, (b)'s whole life (start(), poll() seeing the exit,
stop()) is set against (a) too, like for like.
Runs as root with runc installed; one warm-up round is not counted.
Usage: .venv/bin/python bench/runtime.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paas.runtime import DynoSpec, RunningDyno
from paas.runtime.ocispec import ContainerSpec, Limits, config, group, hosts, passwd
from paas.runtime.runc import RuncDriver

UID = 200000


def make_layer(root: Path) -> Path:
    """A tiny app layer, root's like a real one."""
    root.mkdir(parents=True)
    root.chmod(0o755)
    (root / "index.html").write_text("hello from the bench\n")
    (root / "index.html").chmod(0o644)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


class Baseline:
    """One bundle for bare runc: the driver's config with /bin/true as the process."""

    def __init__(self, driver: RuncDriver, work: Path, layer: Path) -> None:
        self.driver = driver
        self.state_root = work / "baseline-state"
        self.bundle = work / "baseline"
        for sub in ("upper", "work", "etc", "status", "bundle"):
            (self.bundle / sub).mkdir(parents=True)
        os.chown(self.bundle / "upper", UID, UID)
        os.chown(self.bundle / "status", UID, UID)
        (self.bundle / "etc" / "passwd").write_text(passwd(UID, UID))
        (self.bundle / "etc" / "group").write_text(group(UID))
        (self.bundle / "etc" / "hosts").write_text(hosts("bench"))
        (self.bundle / "etc" / "hostname").write_text("bench\n")
        spec = ContainerSpec(
            hostname="bench", args=["/bin/true"], env={"PATH": "/usr/bin:/bin"}, uid=UID,
            gid=UID, rootfs=str(driver.ensure_stack()), lower_dirs=[str(layer)],
            upper_dir=str(self.bundle / "upper"), work_dir=str(self.bundle / "work"),
            etc_dir=str(self.bundle / "etc"), status_dir=str(self.bundle / "status"),
            cgroups_path=f"/paas/paas-bench-{os.getpid()}", host_dirs=driver.host_dirs(),
            host_etc=driver.host_etc(), limits=Limits(),
        )
        (self.bundle / "bundle" / "config.json").write_text(json.dumps(config(spec)))

    def runc(self, *args: str) -> None:
        subprocess.run(["runc", "--root", str(self.state_root), *args], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=60)

    def round(self, n: int) -> tuple[float, float]:
        """Seconds for `runc run` (spawn to exit) and for `runc delete`."""
        cid = f"paas-bench-{os.getpid()}-{n}"
        start = time.monotonic()
        self.runc("run", "--keep", "--bundle", str(self.bundle / "bundle"), cid)
        ran = time.monotonic()
        self.runc("delete", cid)
        return ran - start, time.monotonic() - ran

    def cleanup(self) -> None:
        listed = subprocess.run(["runc", "--root", str(self.state_root), "list", "-q"],
                                capture_output=True, text=True)
        for cid in listed.stdout.split():
            subprocess.run(["runc", "--root", str(self.state_root), "delete", "--force", cid],
                           capture_output=True)


class Dynos:
    def __init__(self, driver: RuncDriver, layer: Path) -> None:
        self.driver = driver
        self.layer = layer
        self.running: list[RunningDyno] = []

    def start(self, name: str, command: str, port: int | None = None) -> RunningDyno:
        spec = DynoSpec(id=f"bench.{name}.{os.getpid()}", app="bench", name=name,
                        type=name.split(".")[0], release=1, restart_seq=0, layers=(self.layer,),
                        command=command, port=port, uid=UID)
        dyno = self.driver.start(spec, lambda line: None)
        self.running.append(dyno)
        return dyno

    def stop(self, dyno: RunningDyno) -> float:
        self.running.remove(dyno)
        start = time.monotonic()
        self.driver.stop(dyno, 2.0)
        return time.monotonic() - start

    def true_round(self, n: int) -> tuple[float, float]:
        """Seconds for start() of /bin/true, and for its whole life: start(), poll() seeing
        the exit, stop() (like for like with the baseline's run + delete)."""
        begin = time.monotonic()
        dyno = self.start(f"true.{n}", "/bin/true")
        started = time.monotonic() - begin
        while self.driver.poll(dyno) is None:
            time.sleep(0.001)
        self.stop(dyno)
        return started, time.monotonic() - begin

    def http_round(self, n: int) -> tuple[float, float]:
        """Seconds for start() of an HTTP server, and to its port accepting connections."""
        port = free_port()
        begin = time.monotonic()
        dyno = self.start(f"web.{n}", "python3 -m http.server $PORT --bind 127.0.0.1", port)
        started = time.monotonic() - begin
        deadline = begin + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.driver.poll(dyno) is not None:
                    raise RuntimeError(f"the HTTP dyno never listened on {port}") from None
                time.sleep(0.002)
        listening = time.monotonic() - begin
        self.stop(dyno)
        return started, listening

    def cleanup(self) -> None:
        for dyno in list(self.running):
            self.stop(dyno)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("runc") is None:
        print("bench/runtime.py needs root and runc", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="paas-bench-runtime-"))
    driver = RuncDriver(home=work / "home")
    layer = make_layer(work / "layer")
    baseline = Baseline(driver, work, layer)
    dynos = Dynos(driver, layer)
    rows: list[dict[str, float]] = []
    try:
        for n in range(args.rounds + 1):  # round 0 warms caches; not counted
            a_run, a_delete = baseline.round(n)
            b_start, b_life = dynos.true_round(n)
            c_start, c_listen = dynos.http_round(n)
            if n == 0:
                continue
            row = {"a": a_run + a_delete, "a_run": a_run, "a_delete": a_delete, "b": b_start,
                   "b_life": b_life, "c_start": c_start, "c": c_listen}
            row["overhead"] = row["b"] - row["a"]
            row["life_overhead"] = row["b_life"] - row["a"]
            rows.append(row)
            print(f"round {n:2}: (a) runc run {a_run * 1e3:6.1f} + delete {a_delete * 1e3:5.1f}"
                  f" = {row['a'] * 1e3:6.1f} ms   (b) start() {b_start * 1e3:6.1f} ms"
                  f" (b)-(a) {row['overhead'] * 1e3:+6.1f}   whole life {b_life * 1e3:6.1f}"
                  f" ({row['life_overhead'] * 1e3:+5.1f})"
                  f"   (c) listening {c_listen * 1e3:6.1f} ms [start() {c_start * 1e3:5.1f}]",
                  flush=True)
    finally:
        dynos.cleanup()
        baseline.cleanup()
        left = subprocess.run(["runc", "--root", str(driver.state_root), "list", "-q"],
                              capture_output=True, text=True).stdout.split()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"\nmedians over {len(rows)} rounds on {socket.gethostname()} "
          f"(runc containers left: {len(left)}):")
    print(f"  (a) bare runc run + delete of /bin/true   {med['a'] * 1e3:7.1f} ms"
          f"   (run {med['a_run'] * 1e3:.1f}, delete {med['a_delete'] * 1e3:.1f})")
    print(f"  (b) RuncDriver.start(), /bin/true         {med['b'] * 1e3:7.1f} ms")
    for key, what in (("overhead", "(b) - (a)"), ("life_overhead", "whole life - (a)")):
        values = [r[key] for r in rows]
        print(f"      {what + ' overhead:':27} median {statistics.median(values) * 1e3:+6.1f} ms,"
              f" p90 {p90(values) * 1e3:+6.1f} ms   target <= 50 ms at the median")
    print(f"      (whole life: start(), poll() seeing the exit, stop(); median"
          f" {med['b_life'] * 1e3:.1f} ms)")
    print(f"  (c) RuncDriver.start() to HTTP listening  {med['c'] * 1e3:7.1f} ms"
          f"   (start() itself {med['c_start'] * 1e3:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
