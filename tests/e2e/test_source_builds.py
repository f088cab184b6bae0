"""Builds from a source tarball end to end, as a CI system without git would deploy: the
tarball uploaded to the API, or fetched by the worker from a URL; the output streams as
the build runs, and the release serves. A tarball build and a git push of one app build
one after the other, even with two build workers."""

from __future__ import annotations

import http.server
import io
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from rq import Queue, Worker

from tests.e2e.platform import (
    FIXTURES,
    Platform,
    commit_change,
    make_app_repo,
    running_platform,
    wait_until,
)

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


def site_tarball(marker: str, extra: dict[str, str] | None = None) -> bytes:
    """The static site fixture inside a top folder (as GitHub's archives are), its page
    changed to show `marker`, with `extra` files added."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name, text in (extra or {}).items():
            info = tarfile.TarInfo(f"site-main/{name}")
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
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


def events_of(platform: Platform, app: str) -> list[dict]:
    return platform.api("GET", f"/apps/{app}/events?limit=1000").json()


def test_a_tarball_build_and_a_push_of_one_app_build_in_turn(platform: Platform,
                                                             workdir: Path) -> None:
    """With a second build worker free, a push made while a tarball build of the same app
    is deploying waits for it (it says so) instead of building beside it; the releases
    come out in the order the builds were made."""
    app = "tarball-turns"
    platform.cli("apps:create", app)
    platform.cli("config:set", "HOST=127.0.0.1", "-a", app)
    extra = subprocess.Popen([sys.executable, "-m", "paas.build.worker"], env=platform.env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(unix_socket_path=str(platform.home / "run" / "redis.sock"))
    try:
        wait_until(lambda: Worker.count(connection=r, queue=Queue("builds", connection=r)) >= 2,
                   timeout=30, what="the second build worker")
        # The tarball's release phase keeps its build job busy for a few seconds.
        upload = platform.api("POST", f"/apps/{app}/builds?version=ci-1",
                              data=site_tarball("from-tarball", {"Procfile": "release: sleep 4\n"}),
                              headers={"Content-Type": "application/gzip"}).json()
        wait_until(lambda: any(rel["build_id"] == upload["id"] for rel in platform.api(
            "GET", f"/apps/{app}/releases").json()), timeout=120,
            what="the tarball build's release phase")
        repo = make_app_repo(workdir / "repo", "static-site")
        commit_change(repo, "index.html", "</body>", "from-push</body>", "push")
        pushed = platform.git("push", platform.remote_url(app, platform.token), "main",
                              cwd=repo)
        upload_output = stream_output(platform, upload)
    finally:
        extra.terminate()
        extra.wait(30)
        r.close()
    push_build = max(b["id"] for b in platform.api("GET", f"/apps/{app}/builds").json())
    assert push_build > upload["id"]
    assert f"remote: -----> Waiting for build {upload['id']} of {app} to finish" in (
        pushed.stderr), pushed.stderr
    releases = {rel["build_id"]: rel for rel in platform.api(
        "GET", f"/apps/{app}/releases").json()}
    first = releases[upload["id"]]["version"]
    assert releases[push_build]["version"] == first + 1
    assert upload_output.rstrip().endswith(f"-----> Build succeeded: v{first}"), upload_output
    assert [releases[b]["status"] for b in (upload["id"], push_build)] == ["succeeded"] * 2
    seen = [(e["event"], e["fields"]) for e in events_of(platform, app)]
    tarball_deployed = seen.index(("deploy.finished", {"release": f"v{first}"}))
    push_started = next(n for n, (event, fields) in enumerate(seen)
                        if event == "build.started" and fields["build"] == str(push_build))
    assert tarball_deployed < push_started
    assert "from-push" in platform.get_app(app).text
