"""The dashboard in a real browser (Debian's headless chromium through Selenium) against
a real platform: log in, create an app, push it with git, watch the build, change a
config var, scale, roll back, see a log line arrive live, log out.

A screenshot of each main page is saved under the test's tmp directory.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.e2e.platform import Platform, make_app_repo, wait_until

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
APP = "dash-e2e"

@pytest.fixture()
def browser() -> Iterator[WebDriver]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (`make test` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--no-proxy-server", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


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
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def shot(self, name: str) -> None:
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
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

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

    # A push runs beside the browser, which follows the build on the activity tab.
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
    ui.reload_until(f"/apps/{APP}/activity", lambda text: "Builds" in text and "No builds yet"
                    not in text, "the build to show in the activity tab")
    browser.find_element(By.CSS_SELECTOR, "#builds a").click()
    assert "/builds/" in browser.current_url
    # Live output (or, once done, the stored output) and the outcome, without a reload by us.
    wait_until(lambda: ui.text("#build-status") == "succeeded", timeout=300, interval=0.5,
               what="the build page to show the build succeeded")
    assert "app detected" in ui.text("#build-output").lower()
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
    browser.find_element(By.CSS_SELECTOR, 'button[data-rollback="1"]').click()
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
    browser.find_element(By.CSS_SELECTOR, "#log-filter button").click()
    assert "type=router" in browser.current_url
    assert all("router[router]" in line for line in ui.text("#log-lines").splitlines() if line)

    # Metrics: the router's lines drawn as charts.
    ui.open(f"/apps/{APP}/metrics")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, '[data-chart="requests"] rect'),
               timeout=30, what="the requests chart to be drawn")
    assert int(ui.text("#metrics-totals dd")) >= 1
    ui.shot("metrics")

    ui.open(f"/apps/{APP}/access")
    assert "owner" in ui.text("#collaborators")
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
    browser.find_element(By.ID, "logout").click()
    assert browser.current_url == ui.base + "/login"
    ui.open(f"/apps/{APP}")
    assert browser.current_url.startswith(ui.base + "/login")
    assert {p.name for p in ui.shots.iterdir()} >= {
        "login.png", "build.png", "overview.png", "settings.png", "resources.png",
        "activity.png", "logs.png", "metrics.png", "apps.png"}
