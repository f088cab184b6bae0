"""Builds from a source tarball end to end, as a CI system without git would deploy: the
tarball uploaded to the API, or fetched by the worker from a URL; the output streams as
the build runs, and the release serves."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.platform import FIXTURES, Platform, running_platform, wait_until

pytestmark = pytest.mark.slow

APP = "tarball-site"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform of its own, set as an operator with an artifact server on the premises
    sets it: these tests serve tarballs from 127.0.0.1, which builds may fetch only with
    PAAS_SOURCE_URL_ALLOW_PRIVATE=1 (tests/unit/test_url_guard.py: refused without)."""
    with running_platform(tmp_path_factory.mktemp("source-builds"), "process",
                          {"PAAS_SOURCE_URL_ALLOW_PRIVATE": "1"}) as p:
        yield p


def site_tarball(marker: str) -> bytes:
    """The static site fixture inside a top folder (as GitHub's archives are), its page
    changed to show `marker`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for path in sorted((FIXTURES / "static-site").rglob("*")):
            name = f"site-main/{path.relative_to(FIXTURES / 'static-site')}"
            if path.name == "index.html":
                data = path.read_bytes().replace(b"</body>", f"{marker}</body>".encode())
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.add(path, arcname=name, recursive=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def app_name(platform: Platform) -> str:
    platform.cli("apps:create", APP)
    platform.cli("config:set", "HOST=127.0.0.1", "-a", APP)
    return APP


def stream_output(platform: Platform, build: dict) -> str:
    with requests.get(build["output_stream_url"], stream=True, timeout=600, headers={
            "Host": "localhost", "Authorization": f"Bearer {platform.token}"}) as response:
        assert response.status_code == 200
        return "".join(chunk.decode() for chunk in response.iter_content(None))


def test_an_uploaded_tarball_builds_streams_and_serves(platform: Platform,
                                                       app_name: str) -> None:
    answer = platform.api("POST", f"/apps/{app_name}/builds?version=ci-41",
                          data=site_tarball("build-one"),
                          headers={"Content-Type": "application/gzip"})
    assert answer.status_code == 201, answer.text
    out = stream_output(platform, answer.json())
    assert "-----> Static site detected" in out, out + platform.log()
    assert out.rstrip().endswith("-----> Build succeeded: v2")
    wait_until(lambda: "build-one" in platform.get_app(app_name).text, timeout=60,
               what="the uploaded build to serve")
    release = platform.api("GET", f"/apps/{app_name}/releases/2").json()
    assert release["commit"] == "ci-41" and release["status"] == "succeeded"


@pytest.fixture()
def tarball_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "site.tgz").write_bytes(site_tarball("build-two"))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_tarball_url_is_fetched_by_the_worker(platform: Platform, app_name: str,
                                                tarball_server: str) -> None:
    answer = platform.api("POST", f"/apps/{app_name}/builds", json={
        "source_blob": {"url": f"{tarball_server}/site.tgz", "version": "ci-42"}})
    assert answer.status_code == 201, answer.text
    out = stream_output(platform, answer.json())
    assert f"-----> Fetching source from {tarball_server}/site.tgz" in out
    assert out.rstrip().endswith("-----> Build succeeded: v3"), out
    assert "build-two" in platform.get_app(app_name).text
    missing = platform.api("POST", f"/apps/{app_name}/builds", json={
        "source_blob": {"url": f"{tarball_server}/nothing.tgz"}})
    out = stream_output(platform, missing.json())
    assert "answered 404" in out and "Build failed" in out
    assert "build-two" in platform.get_app(app_name).text
