"""Build speed for the Python and Node.js fixtures, against what a developer does by hand.

For each fixture, in one run:
(a) by hand: a fresh venv + `pip install -r requirements.txt` (Python) or `npm ci`
    (Node.js) from a warm cache, then start the app, to the first 200;
(b) our cold build: a new app, `git push` to the first 200 through the router (build
    time alone is printed too, from the build's record);
(c) our rebuild with the lockfile unchanged (a code-only change): build time;
(d) our rebuild after adding one dependency: build time, against (e) installing that one
    package by hand into the existing environment from a warm cache.

Targets: (b) <= 1.3 x (a); (c) <= 2 s; (d) <= (e) + 2 s.
Usage: .venv/bin/python bench/build.py [--runtime runc|process]
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    by_hand: Callable[[Path, Path, int], subprocess.Popen[bytes]]
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


def python_by_hand(work: Path, cache: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PIP_CACHE_DIR": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    quiet([STACK_PYTHON, "-m", "venv", "venv"], work, env)
    quiet(["venv/bin/pip", "install", "-q", "-r", "requirements.txt"], work, env)
    return subprocess.Popen(["venv/bin/gunicorn", "app:app", "--bind", f"127.0.0.1:{port}"],
                            cwd=work, stderr=subprocess.DEVNULL)


def python_add_by_hand(work: Path, cache: Path) -> None:
    env = {**os.environ, "PIP_CACHE_DIR": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    quiet(["venv/bin/pip", "install", "-q", "six"], work, env)


def node_by_hand(work: Path, cache: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "npm_config_cache": str(cache), "npm_config_audit": "false",
           "npm_config_fund": "false", "npm_config_update_notifier": "false"}
    quiet(["npm", "ci"], work, env)
    quiet(["npm", "run", "build"], work, env)
    return subprocess.Popen(["node", "server.js"], cwd=work, env={**env, "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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


def by_hand(fx: Fixture, tmp: Path) -> tuple[float, float]:
    """(a) and (e) for a fixture, with its cache warmed by an uncounted first round."""
    cache = tmp / f"cache-{fx.name}"
    times = []
    for _ in range(2):
        work = tmp / f"hand-{fx.name}-{len(times)}"
        shutil.copytree(ROOT / "tests/fixtures" / fx.name, work)
        port = free_port()
        start = time.monotonic()
        server = fx.by_hand(work, cache, port)
        try:
            first_200(f"http://127.0.0.1:{port}/")
            times.append(time.monotonic() - start)
        finally:
            server.terminate()
            server.wait()
    start = time.monotonic()
    fx.add_by_hand(work, cache)
    return times[-1], time.monotonic() - start


def build_seconds(plat: Platform, app: str) -> float:
    build = plat.api("GET", f"/apps/{app}/builds").json()[0]
    started = datetime.fromisoformat(build["created_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(build["finished_at"].replace("Z", "+00:00"))
    return (finished - started).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_runtime = "runc" if os.geteuid() == 0 and shutil.which("runc") else "process"
    parser.add_argument("--runtime", choices=("runc", "process"), default=default_runtime)
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
                a, e = by_hand(fx, tmp)
                app = f"bench-{fx.name}"
                repo = make_app_repo(tmp / f"src-{fx.name}", fixture=fx.name)
                remote = plat.remote_url(app, plat.token)
                start = time.monotonic()
                plat.cli("apps:create", app)
                plat.git("push", remote, "main", cwd=repo)
                first_200(plat.url + "/", host=f"{app}.localhost")
                b = time.monotonic() - start
                b_build = build_seconds(plat, app)
                commit_change(repo, fx.code_file, fx.code_old, fx.code_new, "code only")
                plat.git("push", remote, "main", cwd=repo)
                c = build_seconds(plat, app)
                fx.add_dependency(repo)
                subprocess.run(["git", "commit", "-qam", "one more dependency"], cwd=repo,
                               env=plat.env(), check=True)
                plat.git("push", remote, "main", cwd=repo)
                d = build_seconds(plat, app)
                print(f"\n{fx.name} (runtime {args.runtime}):")
                print(f"  (a) by hand, to first 200          {a:6.2f} s")
                print(f"  (b) cold push to first 200         {b:6.2f} s = {b / a:.2f} x (a)"
                      f"   target <= 1.3 x   (build alone {b_build:.2f} s)")
                print(f"  (c) rebuild, lockfile unchanged    {c:6.2f} s            target <= 2 s")
                print(f"  (d) rebuild, one more dependency   {d:6.2f} s"
                      f"            target <= (e) + 2 s = {e + 2:.2f} s")
                print(f"  (e) that one package by hand       {e:6.2f} s", flush=True)
        finally:
            plat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
