"""A static site pushed end to end: detected and built by the static buildpack (gzipped
ahead of time), then served by its own server through the router."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import requests

from tests.e2e.platform import FIXTURES, Platform, make_app_repo

pytestmark = pytest.mark.slow

APP = "static-site"
SITE = FIXTURES / "static-site"


@pytest.fixture(scope="module")
def push_output(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    platform.cli("apps:create", APP)
    # The tests' dynos listen on loopback only; the server binds $HOST (default 0.0.0.0).
    platform.cli("config:set", "HOST=127.0.0.1", "-a", APP)
    repo = make_app_repo(tmp_path_factory.mktemp("src") / APP, fixture="static-site")
    return platform.git("push", platform.remote_url(APP, platform.token), "main",
                        cwd=repo).stderr


def raw_get(platform: Platform, path: str,
            headers: dict[str, str]) -> tuple[requests.Response, bytes]:
    """A request through the router, and its body as sent (not decompressed)."""
    with requests.get(platform.url + path, headers={"Host": f"{APP}.localhost", **headers},
                      timeout=30, stream=True) as response:
        return response, response.raw.read(decode_content=False)


def test_the_push_builds_a_static_site(push_output: str) -> None:
    assert "remote: -----> Static site detected" in push_output
    assert "remote:        Gzipped " in push_output
    assert "remote: -----> Static site ready" in push_output


def test_pages_are_served_through_the_router(platform: Platform, push_output: str) -> None:
    for path, rel in (("/", "index.html"), ("/about", "about.html"),
                      ("/docs/", "docs/index.html"), ("/img/dot.png", "img/dot.png")):
        response = platform.get_app(APP, path)
        assert response.status_code == 200, (path, response.text)
        assert response.content == (SITE / rel).read_bytes(), path
    assert platform.get_app(APP, "/assets/app.js").headers["Content-Type"] == (
        "text/javascript; charset=utf-8")


def test_text_is_sent_gzipped_to_clients_that_accept_it(
    platform: Platform, push_output: str
) -> None:
    original = (SITE / "assets" / "style.css").read_bytes()
    response, body = raw_get(platform, "/assets/style.css", {"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert len(body) < len(original)
    assert gzip.decompress(body) == original

    plain, body = raw_get(platform, "/assets/style.css", {"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and body == original


def test_a_missing_page_gets_the_sites_404_page(platform: Platform, push_output: str) -> None:
    response = platform.get_app(APP, "/no/such/page")
    assert response.status_code == 404
    assert response.content == (SITE / "404.html").read_bytes()
    for hidden in ("/.paas/static.json", "/static.json", "/../../etc/passwd"):
        assert platform.get_app(APP, hidden).status_code == 404, hidden


def test_a_redirect_from_static_json(platform: Platform, push_output: str) -> None:
    response = requests.get(platform.url + "/old", headers={"Host": f"{APP}.localhost"},
                            timeout=30, allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"] == "/about"


def test_the_fixture_has_what_the_tests_need() -> None:
    names = {p.relative_to(SITE).as_posix() for p in Path(SITE).rglob("*") if p.is_file()}
    assert {"index.html", "404.html", "docs/index.html", "assets/style.css", "assets/app.js",
            "assets/logo.svg", "static.json"} <= names
