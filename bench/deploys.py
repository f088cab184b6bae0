"""Deploys under traffic (issue 6): does an app keep answering, and as fast, while it is redeployed?

The flask fixture runs at web=2 behind the router and gets steady GET traffic (--rate
requests per second; by default half of what a quick as-fast-as-possible probe reaches),
with keep-alive and fresh connections both. After ~10 s of steady state, with the same
traffic running, the app is redeployed 10 times, mixing kinds: code pushes (`git push`
of a changed answer), `config:set`, `ps:scale web=3` and back to 2, and `ps:restart`.
Steady state is also sampled between deploys (2 s each, once the app runs exactly its
web dynos again), so the baseline spans the same minutes of this shared machine as the
deploys do.

Prints each deploy, then: total and failed requests (with a breakdown of the errors),
p50/p99 latency in steady state against during deploys, and for code pushes the time
from the start of `git push` to the moment all responses come from the new code (the
first request after which no old answer appears; config changes get the same figure).

Config, scale and restart changes are made through the REST API from this process, as a
CI script would: the `paas` CLI costs ~0.4 s of CPU per call plus its polling, which on
a 2-core machine shared with the app, the router and the load would be counted as the
platform's deploy latency. Code changes are real `git push`es.

Targets: 0 failed requests; p99 during deploys <= 2 x p99 in steady state.
Usage: .venv/bin/python bench/deploys.py [--runtime runc|process] [--rate N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.platform import Platform, commit_change, free_port, make_app_repo  # noqa: E402
from tests.e2e.traffic import Result, Traffic, TrafficProcess, percentile  # noqa: E402

APP = "bench-deploys"
STEADY_SECONDS = 10.0
#: A quiet window after each deploy, counted as steady state.
QUIET_SECONDS = 2.0
PROBE_SECONDS = 3.0
#: After each deploy, how long the traffic must show only the new answer (or, for deploys
#: that do not change it, how long to keep watching) before the next one starts; failures
#: from old dynos being stopped land in the deploy's window this way.
SETTLE_SECONDS = 2.0
#: Longest wait for a deploy to settle before the bench notes it and moves on.
SETTLE_TIMEOUT = 120.0
KINDS = ["push", "config", "push", "scale-up", "restart", "push", "scale-down", "config",
         "push", "restart"]


@dataclass
class Deploy:
    kind: str
    detail: str
    start: float
    #: How many results had come in by the start: none of those started after it.
    first: int = 0
    end: float = 0.0
    all_new: float | None = None  # seconds from the start to all-new answers
    problem: str = ""


@dataclass
class Running:
    """What the app answers and runs now, as the deploys so far left it."""

    code: str = "one"
    web: int = 2


def first_200(plat: Platform, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if plat.get_app(APP).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{APP} gave no 200 in {timeout:.0f} s:\n{plat.log()}")


def answered(traffic: Traffic, deploy: Deploy, t1: float = float("inf")) -> list[Result]:
    """The answers to the requests sent from the deploy's start up to `t1`, in order."""
    recent = traffic.current()[deploy.first:]
    return sorted((r for r in recent if deploy.start <= r.start < t1 and not r.failed),
                  key=lambda r: r.start)


def all_new_at(records: list[Result], is_new: Callable[[str], bool]) -> float | None:
    """The start of the first answered request after which no old answer appears."""
    last_old = max((i for i, r in enumerate(records) if not is_new(r.body)), default=-1)
    return records[last_old + 1].start if last_old + 1 < len(records) else None


def settle_on_answer(traffic: Traffic, deploy: Deploy, is_new: Callable[[str], bool]) -> bool:
    """Wait until the traffic since the deploy's start has answered only `is_new` for
    SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        switched = all_new_at(answered(traffic, deploy), is_new)
        if switched is not None and time.monotonic() - switched >= SETTLE_SECONDS:
            return True
        time.sleep(0.1)
    return False


def settle_dynos(plat: Platform, quantity: int, started_after: float,
                 settle: float = SETTLE_SECONDS) -> bool:
    """Wait until exactly `quantity` web dynos are up, all started after the wall-clock
    time `started_after`, then `settle` seconds more."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        web = [d for d in plat.api("GET", f"/apps/{APP}/dynos").json() if d["type"] == "web"]
        if len(web) == quantity and all(
            d["state"] == "up" and d.get("started_at")
            and datetime.fromisoformat(d["started_at"].replace("Z", "+00:00")).timestamp()
            >= started_after
            for d in web
        ):
            time.sleep(settle)
            return True
        time.sleep(0.2)
    return False


def begin(traffic: Traffic, kind: str, detail: str, label: str) -> Deploy:
    first = len(traffic.current())  # before the mark: these all started before it
    return Deploy(kind, detail, traffic.mark(label), first)


def redeploy(plat: Platform, traffic: Traffic, repo: Path, remote: str, kind: str,
             n: int, running: Running) -> Deploy:
    """Run deploy number `n` of `kind` and wait for it to settle."""
    if kind == "push":
        old, new = running.code, f"v{n}"
        commit_change(repo, "app.py", f'CODE_VERSION = "{old}"', f'CODE_VERSION = "{new}"',
                      f"answer {new}")
        deploy = begin(traffic, kind, f"code={new}", f"{n} push {new}")
        done = plat.git("push", remote, "main", cwd=repo, check=False)
        running.code = new
        return _finish_answer_change(traffic, deploy, done.returncode, done.stderr,
                                     lambda body: body.endswith(f" code={new}"))
    if kind == "config":
        greeting = f"hi{n}"
        deploy = begin(traffic, kind, f"GREETING={greeting}", f"{n} config {greeting}")
        answer = plat.api("PATCH", f"/apps/{APP}/config-vars", json={"GREETING": greeting})
        return _finish_answer_change(traffic, deploy, 0 if answer.ok else 1, answer.text,
                                     lambda body: body.startswith(f"{greeting} from "))
    if kind in ("scale-up", "scale-down"):
        quantity = 3 if kind == "scale-up" else 2
        deploy = begin(traffic, kind, f"web={quantity}", f"{n} scale web={quantity}")
        answer = plat.api("PATCH", f"/apps/{APP}/formation",
                          json={"updates": [{"type": "web", "quantity": quantity}]})
        running.web = quantity
        if not answer.ok:
            deploy.problem = f"scaling failed: {answer.text.strip()[-300:]}"
        elif not settle_dynos(plat, quantity, 0.0):
            deploy.problem = f"web did not reach {quantity} dynos within {SETTLE_TIMEOUT:.0f} s"
        deploy.end = time.monotonic()
        return deploy
    deploy = begin(traffic, kind, "web", f"{n} restart")
    restarted_at = time.time()
    answer = plat.api("DELETE", f"/apps/{APP}/dynos")
    if not answer.ok:
        deploy.problem = f"restart failed: {answer.text.strip()[-300:]}"
    elif not settle_dynos(plat, running.web, restarted_at):
        deploy.problem = f"dynos not all restarted and up within {SETTLE_TIMEOUT:.0f} s"
    deploy.end = time.monotonic()
    return deploy


def _finish_answer_change(traffic: Traffic, deploy: Deploy, returncode: int, stderr: str,
                          is_new: Callable[[str], bool]) -> Deploy:
    if returncode != 0:
        deploy.problem = f"failed ({returncode}): {stderr.strip()[-300:]}"
    elif not settle_on_answer(traffic, deploy, is_new):
        deploy.problem = f"old answers still seen {SETTLE_TIMEOUT:.0f} s later"
    deploy.end = time.monotonic()
    switched = all_new_at(answered(traffic, deploy, deploy.end), is_new)
    if switched is not None and not deploy.problem:
        deploy.all_new = switched - deploy.start
    return deploy


def probe_rate(plat: Platform) -> float:
    """Successful requests per second the app answers with the client going flat out."""
    with Traffic(f"{APP}.localhost", plat.port, workers=4) as probe:
        start = probe.mark("probe")
        time.sleep(PROBE_SECONDS)
        end = probe.mark("probe end")
    return len(probe.latencies(between=(start, end))) / (end - start)


def deploy_line(traffic: Traffic, n: int, deploy: Deploy) -> str:
    window = (deploy.start, deploy.end)
    sent = sum(deploy.start <= r.start < deploy.end for r in traffic.current())
    line = (f"deploy {n:2d} {deploy.kind:10} {deploy.detail:14}"
            f" {deploy.end - deploy.start:6.2f} s  requests {sent:5d}"
            f"  failed {len(traffic.failures(between=window)):4d}"
            f"  p99 {ms(percentile(traffic.latencies(between=window), 99))}")
    if deploy.all_new is not None:
        line += f"  all new after {deploy.all_new:.2f} s"
    return line + (f"  {deploy.problem}" if deploy.problem else "")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def report(traffic: Traffic, steady: list[tuple[float, float]], deploys: list[Deploy],
           rate: float) -> None:
    windows = [(d.start, d.end) for d in deploys]
    during = [lat for w in windows for lat in traffic.latencies(between=w)]
    calm = [lat for w in steady for lat in traffic.latencies(between=w)]
    failures = traffic.failures()
    total = len(traffic.results)
    print(f"\nrequests: {total} at {rate:.0f}/s ({sum(r.reused for r in traffic.results)}"
          f" on kept-alive connections)")
    print(f"failed:   {len(failures)}   target 0")
    for kind, count in Counter(r.error_kind for r in failures).most_common():
        print(f"  {count:6d}  {kind}")
    outside = [r for r in failures
               if not any(t0 <= r.start < t1 for t0, t1 in windows + steady)]
    if outside:
        print(f"  ({len(outside)} of them between windows)")
    print(f"\nlatency         {'steady':>10} {'deploys':>10}  ratio")
    for p in (50, 99):
        a, b = percentile(calm, p), percentile(during, p)
        target = "   target <= 2 x" if p == 99 else ""
        print(f"  p{p:<3}         {ms(a)} {ms(b)}  {b / a:5.2f} x{target}")
    print(f"  requests      {len(calm):10d} {len(during):10d}")
    for kind in ("push", "config"):
        times = [d.all_new for d in deploys if d.kind == kind and d.all_new is not None]
        label = "git push" if kind == "push" else "config:set"
        if times:
            print(f"\n{label} to all-new traffic: median {statistics.median(times):.2f} s,"
                  f" max {max(times):.2f} s  ({len(times)} deploys)")
        else:
            print(f"\n{label} to all-new traffic: not measured (see the problems above)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_runtime = "runc" if os.geteuid() == 0 and shutil.which("runc") else "process"
    parser.add_argument("--runtime", choices=("runc", "process"), default=default_runtime)
    parser.add_argument("--rate", type=float, default=None,
                        help="requests per second (default: half a quick probe's rate)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        plat = Platform(home=tmp_path / "home", user_home=tmp_path / "user", port=free_port(),
                        runtime=args.runtime)
        plat.user_home.mkdir()
        plat.start()
        try:
            repo = make_app_repo(tmp_path / "src")
            remote = plat.remote_url(APP, plat.token)
            plat.cli("apps:create", APP)
            plat.git("push", remote, "main", cwd=repo)
            first_200(plat)
            plat.cli("ps:scale", "web=2", "-a", APP)
            rate = args.rate
            if rate is None:
                probed = probe_rate(plat)
                rate = max(1.0, probed / 2)
                print(f"probe: {probed:.0f} requests/s as fast as 4 workers go;"
                      f" steady traffic at {rate:.0f}/s", flush=True)
            running = Running()
            deploys: list[Deploy] = []
            # In a child process: this one's polling and API calls during the deploys
            # must not hold up the requests (through the GIL) and count as their latency.
            with TrafficProcess(f"{APP}.localhost", plat.port, workers=8, rate=rate,
                                max_requests=int(rate * 3600)) as traffic:
                steady_start = traffic.mark("steady")
                time.sleep(STEADY_SECONDS)
                steady = [(steady_start, traffic.mark("deploys"))]
                print(f"steady state: {len(traffic.current())} requests,"
                      f" {len(traffic.failures())} failed", flush=True)
                for n, kind in enumerate(KINDS, start=1):
                    deploy = redeploy(plat, traffic, repo, remote, kind, n, running)
                    deploys.append(deploy)
                    print(deploy_line(traffic, n, deploy), flush=True)
                    if settle_dynos(plat, running.web, 0.0, settle=0.0):
                        quiet = traffic.mark(f"{n} quiet")
                        time.sleep(QUIET_SECONDS)
                        steady.append((quiet, traffic.mark(f"{n} quiet end")))
        finally:
            plat.stop()
    print(f"\nruntime {args.runtime}")
    report(traffic, steady, deploys, rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
