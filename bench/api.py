"""API read speed with a big store, and the live log view's delay.

1. p50/p99 of GET /api/apps and GET /api/apps/{app}, and of the dashboard's apps list,
   app page and activity page (logged in as a person is), with 1,000 apps and 10,000
   releases, over real HTTP on loopback, with a real redis-server. The web app runs in-process
   under werkzeug's threaded server (not gunicorn), so the figures are the API's own
   cost plus one HTTP round trip.
2. Live logs (bench/live_logs.py): a real platform (`paas up`), the tick-app fixture
   pushed with git, the dashboard's log page open in headless chromium; each request
   to /tick makes the dyno print `tick <epoch ns>`, and a script in the page notes when
   the line's text arrives. p50/p95/max of the delay; target p95 < 500 ms.

Prints figures; asserts nothing.
Usage: .venv/bin/python bench/api.py [--apps 1000] [--releases 10000] [--requests 300]
       [--lines 200] [--rate 20] [--runtime runc|process] [--only api|logs]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import live_logs  # noqa: E402
from paas.config import Settings  # noqa: E402
from paas.store import Store  # noqa: E402
from web import create_app  # noqa: E402


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = workdir / "redis.sock"
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline:
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)
    return proc, f"unix://{sock}"


def fill(store: Store, apps: int, releases: int) -> tuple[str, list[str]]:
    """An admin token, and the names of `apps` apps sharing `releases` releases."""
    admin = store.create_user("admin", is_admin=True)
    token = store.create_token(admin.id)
    names = [f"app-{n:05d}" for n in range(apps)]
    per_app = max(1, releases // apps)
    started = time.monotonic()
    for name in names:
        app = store.create_app(name, admin.id)
        for version in range(per_app):
            release = store.create_release(
                app, description=f"Deploy {version}", user=admin, config={"A": "1"},
                slug="sha256:" + "0" * 64, commit_sha="0" * 40,
                process_types={"web": "gunicorn app:app"})
            store.set_release_status(release, "succeeded")
    print(f"filled {apps} apps, {apps * per_app} releases in "
          f"{time.monotonic() - started:.1f} s")
    return token, names


def measure(session: requests.Session, url: str, count: int, paths: list[str],
            pages: bool = False) -> list[float]:
    """Timings (ms) of `count` GETs over `paths`, each of which must answer 200; with
    `pages`, as a browser on the dashboard (see as_browser), and a redirect (to the login
    form) is a failure, not a page."""
    timings = []
    for n in range(count):
        path = paths[n % len(paths)]
        started = time.perf_counter()
        response = session.get(url + path, timeout=60, allow_redirects=not pages)
        timings.append((time.perf_counter() - started) * 1000)
        if pages:
            as_browser(session)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}: {response.text}")
    return timings


def dashboard_login(browser: requests.Session, site: str, token: str) -> None:
    """Log `browser` in to the dashboard with the token form, as a person would."""
    page = browser.get(site + "/login", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if csrf is None:
        raise SystemExit("the login page has no CSRF token")
    as_browser(browser)
    answer = browser.post(site + "/login", data={"csrf_token": csrf.group(1), "token": token,
                                                  "next": "/"}, timeout=30,
                          allow_redirects=False)
    if answer.status_code != 302 or "/login" in answer.headers.get("Location", ""):
        raise SystemExit(f"dashboard login failed: {answer.status_code}")
    as_browser(browser)


def as_browser(browser: requests.Session) -> None:
    """Send the dashboard's Secure cookies over plain http to 127.0.0.1, as a browser
    does for a loopback address (a secure context) and requests does not."""
    for cookie in browser.cookies:
        cookie.secure = False


def report(label: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{label:<28} n={len(timings):<5} p50={statistics.median(ordered):7.1f} ms  "
          f"p99={p99:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--lines", type=int, default=200, help="log lines to time")
    parser.add_argument("--rate", type=float, default=20.0, help="log lines a second")
    default_runtime = "runc" if os.geteuid() == 0 and shutil.which("runc") else "process"
    parser.add_argument("--runtime", choices=("runc", "process"), default=default_runtime)
    parser.add_argument("--only", choices=("api", "logs"), default=None)
    args = parser.parse_args()
    if args.only != "logs":
        api_reads(args)
    if args.only != "api":
        live_logs.run(args.runtime, args.lines, args.rate)


def api_reads(args: argparse.Namespace) -> None:
    os.environ["PAAS_API_RATE"] = "0"  # measure the API, not the limiter
    workdir = Path(tempfile.mkdtemp(prefix="paas-bench-api-"))
    redis_proc, redis_url = start_redis(workdir)
    try:
        s = Settings(home=workdir / "home", domain="localhost", http_port=8080,
                     redis_url_override=redis_url, runtime="process")
        store = Store(s.db_path)
        store.migrate()
        token, names = fill(store, args.apps, args.releases)
        app = create_app(s)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/api"
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            measure(session, url, 5, ["/apps"])  # warm up
            report(f"GET /api/apps ({args.apps})", measure(session, url, args.requests // 3,
                                                            ["/apps"]))
            picked = [f"/apps/{name}" for name in random.Random(1).sample(names, len(names))]
            report("GET /api/apps/{app}", measure(session, url, args.requests, picked))
            report("GET /api/apps/{app}/releases",
                   measure(session, url, args.requests, [p + "/releases" for p in picked]))
        site = url.removesuffix("/api")
        with requests.Session() as browser:
            dashboard_login(browser, site, token)
            measure(browser, site, 5, ["/"], pages=True)  # warm up
            report(f"dashboard apps list ({args.apps})",
                   measure(browser, site, args.requests // 3, ["/"], pages=True))
            report("dashboard app page", measure(browser, site, args.requests, picked,
                                                 pages=True))
            report("dashboard activity page",
                   measure(browser, site, args.requests, [p + "/activity" for p in picked],
                           pages=True))
        server.shutdown()
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
