"""The dashboard in a real browser (Debian's headless chromium through Selenium) against
a real platform: log in, create an app, push it with git, watch the build, change a
config var, add a custom domain, turn maintenance on and off, scale, roll back, see a log
line arrive live, add a collaborator, log out.

A screenshot of each main page is saved under the test's tmp directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.platform import Platform, make_app_repo, wait_until

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
APP = "dash-e2e"
DOMAIN = "www.dash-e2e.test"
FRIEND = "dash-friend"

@pytest.fixture()
def browser() -> Iterator[WebDriver]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (`make test` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--no-proxy-server", "--window-size=1280,900"):
        options.add_argument(arg)
    # The console shows whether the Content-Security-Policy blocked anything.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def gate_buildpack(dest: Path, gates: Path) -> str:
    """A buildpack (a git repo; its file:// URL) whose compile prints a line, waits for
    the file `gates/1`, prints another, waits for `gates/2`, and ends."""
    gates.mkdir()
    (dest / "bin").mkdir(parents=True)
    scripts = {
        "detect": "echo Gated\n",
        "compile": "".join(
            f'echo "-----> Waiting at gate {n}"\n'
            # A bound on the wait, so a test that fails early leaves no build behind.
            f"for _ in $(seq 3000); do [ -e {gates / str(n)} ] && break; sleep 0.1; done\n"
            f'echo "-----> Through gate {n}"\n' for n in (1, 2)),
        "release": "printf -- '---\\ndefault_process_types: {}\\n'\n",
    }
    for name, body in scripts.items():
        script = dest / "bin" / name
        script.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
        script.chmod(0o755)
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "gate"]):
        subprocess.run(argv, cwd=dest, env=env, check=True)
    return f"file://{dest}"


class Dashboard:
    """The browser on the platform's dashboard, with the few moves the test repeats."""

    def __init__(self, driver: WebDriver, platform: Platform, shots: Path) -> None:
        self.driver, self.platform, self.shots = driver, platform, shots
        # The router serves the dashboard on the platform's own domain.
        self.base = f"http://localhost:{platform.port}"
        shots.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def text(self, css: str = "body") -> str:
        """The element's text; empty while the page is being replaced (a reload)."""
        try:
            return self.driver.find_element(By.CSS_SELECTOR, css).text
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    def shot(self, name: str, of: str | None = None) -> None:
        """A screenshot; with `of` (a CSS selector), scrolled to show that element."""
        if of is not None:
            self.driver.execute_script("arguments[0].scrollIntoView()",
                                       self.driver.find_element(By.CSS_SELECTOR, of))
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def submit(self, form_css: str, **fields: str) -> None:
        form = self.driver.find_element(By.CSS_SELECTOR, form_css)
        for name, value in fields.items():
            box = form.find_element(By.NAME, name)
            if box.tag_name == "select":
                Select(box).select_by_value(value)
            else:
                box.clear()
                box.send_keys(value)
        self.click_and_wait(form.find_element(By.CSS_SELECTOR, "button[type=submit]"))

    def click_and_wait(self, button: WebElement) -> None:
        """Click a button that loads another page, and wait until the old one is gone."""
        button.click()
        WebDriverWait(self.driver, 60).until(lambda _: _is_gone(button))

    def reload_until(self, path: str, predicate, what: str, timeout: float = 120) -> None:  # noqa: ANN001
        def check() -> bool:
            self.open(path)
            try:
                return predicate(self.text())
            except NoSuchElementException:  # the part it looks for is not on the page yet
                return False
        wait_until(check, timeout=timeout, interval=1, what=what)


def test_the_dashboard_end_to_end(platform: Platform, browser: WebDriver, tmp_path: Path) -> None:
    ui = Dashboard(browser, platform, tmp_path / "screenshots")

    # Logging in: any page sends to the login form; the admin's API token works.
    ui.open("/")
    assert browser.current_url.startswith(ui.base + "/login")
    ui.shot("login")
    ui.submit("#token-login", token=platform.token)
    assert "Apps" in ui.text("h1")
    assert "admin" in ui.text("header")

    ui.submit("#create-app", name=APP)
    assert browser.current_url == f"{ui.base}/apps/{APP}"
    assert "Nothing pushed yet" in ui.text()
    assert f"/git/{APP}.git" in ui.text()

    # The build waits at two gates the test opens, so the browser is sure to watch it live.
    gates = tmp_path / "gates"
    ui.open(f"/apps/{APP}/settings")
    ui.submit("#buildpacks", buildpacks=gate_buildpack(tmp_path / "gate-buildpack", gates))
    assert "Buildpacks saved" in ui.text(".flash")
    repo = make_app_repo(tmp_path / "src", "lifecycle-app")
    pushed: dict[str, object] = {}

    def push() -> None:
        try:
            pushed["result"] = platform.git("push", platform.remote_url(APP, platform.token),
                                            "main", cwd=repo)
        except AssertionError as exc:
            pushed["error"] = exc

    pusher = threading.Thread(target=push)
    pusher.start()
    try:
        ui.reload_until(f"/apps/{APP}/activity", lambda text: "Builds" in text
                        and "No builds yet" not in text, "the build to show in the activity tab")
        ui.click_and_wait(browser.find_element(By.CSS_SELECTOR, "#builds a"))
        assert "/builds/" in browser.current_url
        wait_until(lambda: "Waiting at gate 1" in ui.text("#build-output"), timeout=120,
                   interval=0.2, what="the build to reach its first gate")
        assert ui.text("#build-status") == "building"
        browser.execute_script("window.stillTheSamePage = true")
        (gates / "1").touch()
        wait_until(lambda: "Through gate 1" in ui.text("#build-output"), timeout=60,
                   interval=0.2, what="the build's next line to arrive in the open page")
        assert browser.execute_script("return window.stillTheSamePage") is True
        assert "Waiting at gate 1\n-----> Through gate 1" in ui.text("#build-output")
        ui.shot("build-live")
    finally:
        (gates / "1").touch()
        (gates / "2").touch()
    # At its end the page reloads itself and shows the outcome.
    wait_until(lambda: ui.text("#build-status") == "succeeded", timeout=300, interval=0.5,
               what="the build page to show the build succeeded")
    assert "Through gate 2" in ui.text("#build-output")
    ui.shot("build")
    pusher.join(300)
    assert "error" not in pushed, pushed.get("error")
    assert "Released v1" in pushed["result"].stderr  # type: ignore[union-attr]

    # Live: the overview shows the release and an up dyno, and the app answers.
    ui.reload_until(f"/apps/{APP}", lambda text: "v1" in text and "web.1" in text
                    and "up" in ui.text("#dynos"), "the overview to show web.1 up")
    assert ui.text("#app-state") == "up"
    assert platform.get_app(APP).text.startswith("hello from web.1")
    ui.shot("overview")

    # A config var: set with the form, revealed, and deployed as a new release.
    ui.open(f"/apps/{APP}/settings")
    ui.submit("#add-config", key="GREETING", value="howdy")
    assert "Set GREETING" in ui.text(".flash")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-key="GREETING"]')
    value = row.find_element(By.NAME, "value")
    assert not value.is_displayed()
    row.find_element(By.CSS_SELECTOR, "summary").click()
    assert value.is_displayed() and value.get_attribute("value") == "howdy"
    ui.shot("settings")
    wait_until(lambda: platform.get_app(APP).text.startswith("howdy from"), timeout=120,
               what="the app to answer with the new config var")

    # A custom domain: added on the settings page, the router sends it to the app.
    ui.submit("#add-domain", hostname=DOMAIN)
    assert f"Added {DOMAIN}" in ui.text(".flash")
    assert DOMAIN in ui.text("#domain-list")
    wait_until(lambda: by_host(platform, DOMAIN).text.startswith("howdy from"), timeout=30,
               what="the custom domain to reach the app")
    ui.shot("settings-domain", of="#domains")

    # Maintenance on: visitors get the router's 503 page; off: the app again.
    ui.submit("#maintenance-toggle")
    assert "Maintenance mode is on" in ui.text(".flash")
    assert ui.text("#maintenance-state") == "on"
    wait_until(lambda: platform.get_app(APP).status_code == 503, timeout=30,
               what="the app to answer 503 in maintenance mode")
    assert "maintenance" in platform.get_app(APP).text
    ui.shot("settings-maintenance", of="#domains")
    ui.submit("#maintenance-toggle")
    assert "Maintenance mode is off" in ui.text(".flash")
    assert ui.text("#maintenance-state") == "off"
    wait_until(lambda: platform.get_app(APP).status_code == 200, timeout=30,
               what="the app to answer again with maintenance off")
    ui.click_and_wait(browser.find_element(
        By.CSS_SELECTOR, f'tr[data-domain="{DOMAIN}"] button[type=submit]'))
    assert f"Removed {DOMAIN}" in ui.text(".flash")
    wait_until(lambda: by_host(platform, DOMAIN).status_code == 404, timeout=30,
               what="the removed domain to stop reaching the app")

    # Scale web to two dynos.
    ui.open(f"/apps/{APP}/resources")
    ui.submit('form[data-scale="web"]', quantity="2", size="eco")
    assert "Scaled web to 2" in ui.text(".flash")
    ui.reload_until(f"/apps/{APP}/resources",
                    lambda text: "web.2" in text and ui.text("#dynos").count(" up") >= 2,
                    "two web dynos up")
    assert platform.api("GET", f"/apps/{APP}/formation").json()[0]["size"] == "eco"
    ui.shot("resources")

    # Roll back to v1: the config var goes with it.
    ui.open(f"/apps/{APP}/activity")
    ui.click_and_wait(browser.find_element(By.CSS_SELECTOR, 'button[data-rollback="1"]'))
    assert "Rolling back to v1" in ui.text(".flash")
    wait_until(lambda: platform.get_app(APP).text.startswith("hello from"), timeout=120,
               what="the app to answer as v1 again")
    ui.reload_until(f"/apps/{APP}/activity", lambda text: "Rollback to v1" in text
                    and "current" in text, "the rollback release to be current")
    ui.shot("activity")

    # Live logs: a request made now shows as a router line without reloading the page.
    ui.open(f"/apps/{APP}/logs")
    wait_until(lambda: browser.find_element(By.ID, "log-live").is_displayed(), timeout=30,
               what="the log stream to open")
    marker = "/dashboard-live-marker"
    assert marker not in ui.text("#log-lines")
    assert platform.get_app(APP, marker).status_code == 200
    wait_until(lambda: marker in ui.text("#log-lines"), timeout=30,
               what="the router's line to appear live in the logs page")
    ui.shot("logs")
    Select(browser.find_element(By.NAME, "type")).select_by_value("router")
    ui.click_and_wait(browser.find_element(By.CSS_SELECTOR, "#log-filter button"))
    assert "type=router" in browser.current_url
    assert all("router[router]" in line for line in ui.text("#log-lines").splitlines() if line)

    # Metrics: the router's lines drawn as charts.
    ui.open(f"/apps/{APP}/metrics")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, '[data-chart="requests"] rect'),
               timeout=30, what="the requests chart to be drawn")
    assert int(ui.text("#metrics-totals dd")) >= 1
    ui.shot("metrics")

    # A collaborator: a user an admin made, added on the access tab with the view role.
    made = platform.api("POST", "/users", json={"name": FRIEND, "password": "a friend's pw"})
    assert made.status_code == 201, made.text
    ui.open(f"/apps/{APP}/access")
    assert "owner" in ui.text("#collaborators")
    ui.submit("#add-collaborator", user=FRIEND, role="view")
    assert f"Added {FRIEND} to {APP} with the view role" in ui.text(".flash")
    assert FRIEND in ui.text("#collaborators")
    collaborators = platform.api("GET", f"/apps/{APP}/collaborators").json()
    assert {"user": FRIEND, "role": "view", "app_owner": False} in collaborators
    audit = platform.api("GET", f"/apps/{APP}/audit").json()
    assert [(e["action"], e["detail"].get("body")) for e in audit[:1]] == [
        ("create_collaborator", {"user": FRIEND, "role": "view"})]
    assert {"add_domain", "set_routing", "remove_domain"} <= {e["action"] for e in audit}
    ui.shot("access")

    # At phone width the apps list and tabs still fit the screen.
    browser.set_window_size(390, 844)
    ui.open("/")
    assert APP in ui.text("#apps")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390
    ui.shot("apps-phone")
    browser.set_window_size(1280, 900)

    ui.open("/")
    ui.shot("apps")
    ui.click_and_wait(browser.find_element(By.ID, "logout"))
    assert browser.current_url == ui.base + "/login"
    ui.open(f"/apps/{APP}")
    assert browser.current_url.startswith(ui.base + "/login")
    blocked = [entry["message"] for entry in browser.get_log("browser")
               if "Content Security Policy" in entry["message"]]
    assert blocked == []
    assert {p.name for p in ui.shots.iterdir()} >= {
        "login.png", "build-live.png", "build.png", "overview.png", "settings.png", "resources.png",
        "activity.png", "logs.png", "metrics.png", "apps.png", "settings-domain.png",
        "settings-maintenance.png", "access.png"}


def by_host(platform: Platform, host: str) -> requests.Response:
    """A request through the router for another name than the app's own."""
    return requests.get(platform.url + "/", headers={"Host": host}, timeout=30)


def _is_gone(element: WebElement) -> bool:
    """Whether `element` left the document (a new page replaced it). Besides the usual
    stale-element answer, chromedriver sometimes reports a node of the page being
    replaced as one that "does not belong to the document"; that is gone too."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False
