"""The live log view's delay, from a dyno's line to the browser (run by bench/api.py).

A real platform (`paas up`, as the E2E tests start it), the tick-app fixture pushed with
git, the dashboard's log page open in Debian's headless chromium through Selenium, the
page's own EventSource code delivering the lines. Each GET /tick (through the router, at
a steady rate) makes the dyno print `tick <epoch ns>`; a MutationObserver put into the
page notes `performance.timeOrigin + performance.now()` when the line's text is added.
The delay is that minus the line's own stamp: one machine, one clock (the browser's
offset from the system clock is measured and printed too).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests

from tests.e2e.platform import Platform, free_port, make_app_repo, wait_until

APP = "bench-logs"
TARGET_P95_MS = 500.0

#: Put into the log page: for each text node added to the log, the tick's stamp (ms,
#: from the line's nanoseconds, kept exact past 2^53 with BigInt) and the arrival (ms).
OBSERVER = r"""
window.__ticks = [];
const pre = document.getElementById("log-lines");
new MutationObserver((mutations) => {
  const now = performance.timeOrigin + performance.now();
  for (const m of mutations) {
    for (const node of m.addedNodes) {
      const found = /tick (\d+)/.exec(node.textContent || "");
      if (found) window.__ticks.push([Number(BigInt(found[1]) / 1000n) / 1000, now]);
    }
  }
}).observe(pre, { childList: true });
return true;
"""


def browser():  # noqa: ANN201 - selenium's type, imported only when the bench runs
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        raise SystemExit("needs Debian's chromium and chromium-driver (`make install`)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--no-proxy-server", "--window-size=1280,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")),
                            options=options)


def clock_offset_ms(driver) -> tuple[float, float]:  # noqa: ANN001
    """The browser's clock minus the system's, and the uncertainty (half the round trip)."""
    best = None
    for _ in range(20):
        before = time.time_ns()
        seen = driver.execute_script("return performance.timeOrigin + performance.now()")
        after = time.time_ns()
        half = (after - before) / 2e6
        offset = seen - (before + after) / 2e6
        if best is None or half < best[1]:
            best = (offset, half)
    assert best is not None
    return best


def tick_traffic(plat: Platform, lines: int, rate: float) -> threading.Thread:
    """GET /tick `lines` times at `rate` a second, on a schedule (not back to back)."""

    def run() -> None:
        with requests.Session() as session:
            start = time.monotonic()
            for n in range(lines):
                pause = start + n / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                session.get(f"{plat.url}/tick", headers={"Host": f"{APP}.localhost"},
                            timeout=10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def run(runtime: str, lines: int, rate: float) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="paas-bench-logs-") as tmp_name:
        tmp = Path(tmp_name)
        plat = Platform(home=tmp / "home", user_home=tmp / "user", port=free_port(),
                        runtime=runtime)
        plat.user_home.mkdir()
        plat.start()
        driver = None
        try:
            repo = make_app_repo(tmp / "src", "tick-app")
            plat.cli("apps:create", APP)
            plat.git("push", plat.remote_url(APP, plat.token), "main", cwd=repo)
            wait_until(lambda: plat.get_app(APP).status_code == 200, timeout=120,
                       what="the app to answer")
            driver = browser()
            base = f"http://localhost:{plat.port}"
            driver.get(base + "/login")
            form = driver.find_element(By.ID, "token-login")
            form.find_element(By.NAME, "token").send_keys(plat.token)
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)
            driver.get(f"{base}/apps/{APP}/logs")
            WebDriverWait(driver, 30).until(
                lambda d: d.find_element(By.ID, "log-live").is_displayed())
            driver.execute_script(OBSERVER)
            offset, uncertainty = clock_offset_ms(driver)
            started = time.monotonic()
            tick_traffic(plat, lines, rate).join(lines / rate + 60)
            sent = time.monotonic() - started
            wait_until(lambda: len(driver.execute_script("return window.__ticks")) >= lines,
                       timeout=30, interval=0.2, what=f"{lines} tick lines in the browser")
            ticks = driver.execute_script("return window.__ticks")
        finally:
            if driver is not None:
                driver.quit()
            plat.stop()
    delays = sorted(arrived - stamped for stamped, arrived in ticks)
    print(f"\nlive log delay, dyno line -> dashboard log page (runtime {runtime}, "
          f"{len(delays)} lines asked at {rate:g}/s, sent at {lines / sent:.0f}/s):")
    print(f"  p50 {statistics.median(delays):7.1f} ms   p95 {percentile(delays, 0.95):7.1f} ms"
          f"   max {delays[-1]:7.1f} ms   min {delays[0]:7.1f} ms")
    print(f"  target: p95 < {TARGET_P95_MS:.0f} ms -> "
          f"{'met' if percentile(delays, 0.95) < TARGET_P95_MS else 'NOT met'}")
    print(f"  browser clock - system clock: {offset:+.2f} ms (+/- {uncertainty:.2f} ms)")

