"""Deploy speed, measured against a plain venv + pip + gunicorn baseline in the same run.

(a) baseline: a fresh venv, `pip install -r requirements.txt` from a warm pip cache,
    start gunicorn, first 200;
(b) cold deploy: `paas apps:create` then `git push` to the first 200 through the router
    (a new app each round, so its build cache starts empty);
(c) code-only redeploy: `git push` of a one-line change to the first response that shows it.

Also prints how much the image store grew with each code-only redeploy (target: the
changed files plus 64 KiB at most).

Prints each round and the medians; targets: (b) <= 1.5 x (a), (c) <= 3 s.
Usage: .venv/bin/python bench/deploy.py [--rounds N] [--runtime runc|process]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paas.image import ImageStore  # noqa: E402
from tests.e2e.platform import Platform, commit_change, free_port, make_app_repo  # noqa: E402

STACK_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def first_200(get, expect: str | None = None, timeout: float = 300) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = get()
            if response.status_code == 200 and (expect is None or expect in response.text):
                return
        except requests.RequestException:
            pass
        time.sleep(0.02)
    raise RuntimeError("no 200 in time")


def baseline(app_src: Path, pip_cache: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "app"
        shutil.copytree(app_src, work)
        port = free_port()
        env = {**os.environ, "PIP_CACHE_DIR": str(pip_cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        start = time.monotonic()
        subprocess.run([STACK_PYTHON, "-m", "venv", str(work / "venv")], check=True, env=env)
        # This machine's pip configuration warns about an index folder it lacks; keep the
        # figures readable (a failed install still raises).
        subprocess.run([str(work / "venv/bin/pip"), "install", "-q", "-r", "requirements.txt"],
                       cwd=work, check=True, env=env, stderr=subprocess.DEVNULL)
        server = subprocess.Popen(
            [str(work / "venv/bin/gunicorn"), "app:app", "--bind", f"127.0.0.1:{port}",
             "--workers", "1"], cwd=work, env=env, stderr=subprocess.DEVNULL)
        try:
            first_200(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5))
            return time.monotonic() - start
        finally:
            server.terminate()
            server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    default_runtime = "runc" if os.geteuid() == 0 and shutil.which("runc") else "process"
    parser.add_argument("--runtime", choices=("runc", "process"), default=default_runtime)
    args = parser.parse_args()
    fixture = ROOT / "tests/fixtures/flask-app"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        pip_cache = tmp_path / "pip-cache"
        baseline(fixture, pip_cache)  # warms the pip cache; not counted
        plat = Platform(home=tmp_path / "home", user_home=tmp_path / "user", port=free_port(),
                        runtime=args.runtime)
        plat.user_home.mkdir()
        plat.start()
        results: dict[str, list[float]] = {"a": [], "b": [], "c": [], "growth": []}
        try:
            for n in range(1, args.rounds + 1):
                results["a"].append(baseline(fixture, pip_cache))
                app = f"bench-{n}"
                repo = make_app_repo(tmp_path / f"src-{n}")
                remote = plat.remote_url(app, plat.token)
                start = time.monotonic()
                plat.cli("apps:create", app)
                plat.git("push", remote, "main", cwd=repo)
                first_200(lambda app=app: plat.get_app(app))
                results["b"].append(time.monotonic() - start)
                commit_change(repo, "app.py", '"one"', f'"round{n}"', "code change")
                images_before = ImageStore(plat.home / "images").disk_usage()
                start = time.monotonic()
                plat.git("push", remote, "main", cwd=repo)
                first_200(lambda app=app: plat.get_app(app), expect=f"code=round{n}")
                results["c"].append(time.monotonic() - start)
                results["growth"].append(
                    ImageStore(plat.home / "images").disk_usage() - images_before
                )
                print(f"round {n}: (a) baseline {results['a'][-1]:.2f}s  "
                      f"(b) cold deploy {results['b'][-1]:.2f}s  "
                      f"(c) code-only redeploy {results['c'][-1]:.2f}s  "
                      f"image store +{results['growth'][-1] / 1024:.0f} KiB", flush=True)
        finally:
            plat.stop()
    a, b, c = (statistics.median(results[k]) for k in "abc")
    code_kib = sum(f.stat().st_size for f in fixture.rglob("*") if f.is_file()) / 1024
    growth = statistics.median(results["growth"])
    print(f"\nmedians over {args.rounds} rounds, runtime {args.runtime}:")
    print(f"  (a) baseline venv+pip+gunicorn  {a:6.2f} s")
    print(f"  (b) cold deploy                 {b:6.2f} s   = {b / a:.2f} x (a)   target <= 1.5 x")
    print(f"  (c) code-only redeploy          {c:6.2f} s                  target <= 3 s")
    print(f"  image store growth per (c)      {growth / 1024:6.0f} KiB (app code"
          f" {code_kib:.1f} KiB; target <= changed files + 64 KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
