"""Build speed for the Python and Node.js fixtures, against what a developer does by hand.

For each fixture, in one run:
(a) by hand: a fresh venv + `pip install -r requirements.txt` (Python) or `npm ci` and
    `npm run build` (Node.js) from a warm cache, then start the app with the command its
    dynos run (the Procfile's gunicorn; `npm start`, the Node.js default web process), to
    the first 200;
(b) our cold build: `git push` of a new app to the first 200 through the router (build
    time alone is printed too, from the build's record). `paas apps:create` comes before
    and is timed apart: it is the app's set-up, as copying the files is for (a);
(a') for Node.js, when this environment sets NODE_EXTRA_CA_CERTS (node then parses the whole
    CA bundle at every start): (a) again with the CA store trusted the way the nodejs
    buildpack trusts it, which costs a node start nothing;
(c) our rebuild with the lockfile unchanged (a code-only change): build time;
(d) our rebuild after adding one dependency: build time, against (e) installing that one
    package by hand into the existing environment from a warm cache.

Targets: (b) <= 1.3 x (a); (c) <= 2 s; (d) <= (e) + 2 s.
Each is measured in several rounds (a new app each for ours), alternating by hand and
ours, and medians are compared.
Usage: .venv/bin/python bench/build.py [--runtime runc|process] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.platform import Platform, commit_change, free_port, make_app_repo  # noqa: E402

STACK_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


@dataclass
class Fixture:
    name: str
    code_file: str
    code_old: str
    code_new: str
    add_dependency: Callable[[Path], None]
    by_hand: Callable[[Path, Path, int, dict[str, str]], subprocess.Popen[bytes]]
    add_by_hand: Callable[[Path, Path], None]


def first_200(url: str, host: str | None = None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Host": host} if host else {}
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers=headers, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"no 200 from {url} in time")


def quiet(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def python_by_hand(work: Path, cache: Path, port: int,
                   base: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**base, "PIP_CACHE_DIR": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    quiet([STACK_PYTHON, "-m", "venv", "venv"], work, env)
    quiet(["venv/bin/pip", "install", "-q", "-r", "requirements.txt"], work, env)
    return subprocess.Popen(["venv/bin/gunicorn", "app:app", "--bind", f"127.0.0.1:{port}"],
                            cwd=work, stderr=subprocess.DEVNULL, start_new_session=True)


def python_add_by_hand(work: Path, cache: Path) -> None:
    env = {**os.environ, "PIP_CACHE_DIR": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    quiet(["venv/bin/pip", "install", "-q", "six"], work, env)


def node_by_hand(work: Path, cache: Path, port: int,
                 base: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**base, "npm_config_cache": str(cache), "npm_config_audit": "false",
           "npm_config_fund": "false", "npm_config_update_notifier": "false"}
    quiet(["npm", "ci"], work, env)
    quiet(["npm", "run", "build"], work, env)
    return subprocess.Popen(["npm", "start"], cwd=work, env={**env, "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def node_add_by_hand(work: Path, cache: Path) -> None:
    env = {**os.environ, "npm_config_cache": str(cache), "npm_config_audit": "false",
           "npm_config_fund": "false"}
    quiet(["npm", "install", "is-number@7.0.0"], work, env)


def add_python_dependency(repo: Path) -> None:
    with open(repo / "requirements.txt", "a") as f:
        f.write("six\n")


def add_node_dependency(repo: Path) -> None:
    quiet(["npm", "install", "--package-lock-only", "--no-audit", "--no-fund",
           "is-number@7.0.0"], repo, dict(os.environ))


FIXTURES = [
    Fixture("flask-app", "app.py", '"one"', '"two"', add_python_dependency,
            python_by_hand, python_add_by_hand),
    Fixture("node-app", "server.js", '"one"', '"two"', add_node_dependency,
            node_by_hand, node_add_by_hand),
]


def fast_trust() -> dict[str, str] | None:
    """This environment with NODE_EXTRA_CA_CERTS replaced by what the nodejs buildpack
    uses (node then parses no CA bundle as it starts); None if it does not set it."""
    if "NODE_EXTRA_CA_CERTS" not in os.environ:
        return None
    env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
    env["NODE_OPTIONS"] = " ".join(filter(None, ["--use-openssl-ca", env.get("NODE_OPTIONS")]))
    return env


def by_hand_round(fx: Fixture, tmp: Path, base: dict[str, str]) -> tuple[float, float]:
    """(a) and (e) once, in a fresh copy of the fixture, with the fixture's shared cache."""
    cache = tmp / f"cache-{fx.name}"
    work = Path(tempfile.mkdtemp(prefix=f"hand-{fx.name}-", dir=tmp))
    shutil.copytree(ROOT / "tests/fixtures" / fx.name, work, dirs_exist_ok=True)
    port = free_port()
    start = time.monotonic()
    server = fx.by_hand(work, cache, port, base)
    try:
        first_200(f"http://127.0.0.1:{port}/")
        a = time.monotonic() - start
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # npm start's node too
        server.wait()
    start = time.monotonic()
    fx.add_by_hand(work, cache)
    return a, time.monotonic() - start


@dataclass
class Ours:
    create: float  # paas apps:create, before the push
    cold: float  # (b)
    cold_build: float  # (b)'s build alone
    unchanged: float  # (c)
    one_more: float  # (d)


def our_round(plat: Platform, fx: Fixture, tmp: Path, number: int) -> Ours:
    """(b), (c) and (d) on a new app."""
    app = f"bench-{fx.name}-{number}"
    repo = make_app_repo(tmp / f"src-{fx.name}-{number}", fixture=fx.name)
    remote = plat.remote_url(app, plat.token)
    start = time.monotonic()
    plat.cli("apps:create", app)
    create = time.monotonic() - start
    start = time.monotonic()
    plat.git("push", remote, "main", cwd=repo)
    first_200(plat.url + "/", host=f"{app}.localhost")
    cold = time.monotonic() - start
    cold_build = build_seconds(plat, app)
    commit_change(repo, fx.code_file, fx.code_old, fx.code_new, "code only")
    plat.git("push", remote, "main", cwd=repo)
    unchanged = build_seconds(plat, app)
    fx.add_dependency(repo)
    subprocess.run(["git", "commit", "-qam", "one more dependency"], cwd=repo,
                   env=plat.env(), check=True)
    plat.git("push", remote, "main", cwd=repo)
    return Ours(create, cold, cold_build, unchanged, build_seconds(plat, app))


def spread(values: list[float]) -> str:
    """The median, and the range when there are several."""
    if len(values) == 1:
        return f"{values[0]:6.2f} s"
    return f"{statistics.median(values):6.2f} s ({min(values):.2f}-{max(values):.2f})"


def build_seconds(plat: Platform, app: str) -> float:
    build = plat.api("GET", f"/apps/{app}/builds").json()[0]
    started = datetime.fromisoformat(build["created_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(build["finished_at"].replace("Z", "+00:00"))
    return (finished - started).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_runtime = "runc" if os.geteuid() == 0 and shutil.which("runc") else "process"
    parser.add_argument("--runtime", choices=("runc", "process"), default=default_runtime)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of each measure; medians are compared (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        plat = Platform(home=tmp / "home", user_home=tmp / "user", port=free_port(),
                        runtime=args.runtime)
        plat.user_home.mkdir()
        plat.start()
        try:
            for fx in FIXTURES:
                if not (ROOT / "tests/fixtures" / fx.name).exists():
                    print(f"{fx.name}: fixture missing, skipped")
                    continue
                # With the machine's NODE_EXTRA_CA_CERTS, every node start by hand parses
                # the CA bundle; (a') is the same by hand without that cost.
                trusting = fast_trust() if fx.name.startswith("node") else None
                by_hand_round(fx, tmp, dict(os.environ))  # warms the fixture's cache
                hand, hand_fast, ours = [], [], []
                # Rounds alternate, so a busy spell of this shared machine hits both sides.
                for number in range(args.rounds):
                    hand.append(by_hand_round(fx, tmp, dict(os.environ)))
                    if trusting is not None:
                        hand_fast.append(by_hand_round(fx, tmp, trusting)[0])
                    ours.append(our_round(plat, fx, tmp, number))
                a = statistics.median(t[0] for t in hand)
                e = statistics.median(t[1] for t in hand)
                b = statistics.median(o.cold for o in ours)
                print(f"\n{fx.name} (runtime {args.runtime}; medians of {args.rounds} rounds,"
                      " range in brackets):")
                print(f"  (a) by hand, to first 200          {spread([t[0] for t in hand])}")
                if hand_fast:
                    a2 = statistics.median(hand_fast)
                    print(f"  (a') (a) with the CA trusted as the buildpack does "
                          f"(--use-openssl-ca, not NODE_EXTRA_CA_CERTS): {spread(hand_fast)};"
                          f" (b) = {b / a2:.2f} x (a')")
                print(f"  (b) cold push to first 200         {spread([o.cold for o in ours])}"
                      f" = {b / a:.2f} x (a)   target <= 1.3 x")
                print(f"      build alone {spread([o.cold_build for o in ours])};"
                      f" apps:create before it {spread([o.create for o in ours])}")
                print(f"  (c) rebuild, lockfile unchanged    "
                      f"{spread([o.unchanged for o in ours])}   target <= 2 s")
                print(f"  (d) rebuild, one more dependency   "
                      f"{spread([o.one_more for o in ours])}   target <= (e) + 2 s = "
                      f"{e + 2:.2f} s")
                print(f"  (e) that one package by hand       {spread([t[1] for t in hand])}",
                      flush=True)
        finally:
            plat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
