"""Buildpacks by URL under the rule for URLs a build fetches (paas.build.url_guard): a
tarball or git URL may not reach the platform's own network unless the operator allows
private addresses, and a git clone over HTTP(S) connects to the address that was checked."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from paas.build import sources, url_guard
from paas.build.buildpack import BuildpackError


def buildpack_tarball() -> bytes:
    """A buildpack in one top folder, as GitHub's archives are."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, text in (("bin/detect", "#!/bin/sh\necho Mine\n"),
                           ("bin/compile", "#!/bin/sh\necho compiling\n")):
            data = text.encode()
            info = tarfile.TarInfo(f"bp-main/{name}")
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture()
def served() -> Iterator[tuple[int, list[str]]]:
    body, paths = buildpack_tarball(), []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_port, paths
    httpd.shutdown()
    httpd.server_close()


def test_a_tarball_buildpack_on_a_private_address_needs_the_operators_consent(
    tmp_path: Path, served: tuple[int, list[str]]
) -> None:
    port, paths = served
    url = f"http://127.0.0.1:{port}/bp.tgz"
    with pytest.raises(BuildpackError) as refused:
        sources.resolve(url, tmp_path / "a", tmp_path / "home")
    assert "127.0.0.1 is a loopback address" in refused.value.message
    assert "PAAS_SOURCE_URL_ALLOW_PRIVATE=1" in refused.value.message
    assert paths == []  # refused before connecting
    bp = sources.resolve(url, tmp_path / "b", tmp_path / "home", allow_private=True)
    assert (bp.path / "bin" / "compile").is_file() and bp.name == "bp"
    assert paths == ["/bp.tgz"]


def test_a_git_buildpack_on_the_platforms_network_is_refused_before_git_runs(
    tmp_path: Path,
) -> None:
    for url, kind in (("https://127.0.0.1/bp.git", "a loopback address"),
                      ("git://10.1.2.3/bp.git", "a private address"),
                      ("http://169.254.169.254/bp.git", "a link-local address")):
        with pytest.raises(BuildpackError, match=kind):
            sources.resolve(url, tmp_path / "scratch", tmp_path / "home")
    assert not list((tmp_path / "scratch").glob("*/*")), "nothing was cloned"


def test_a_git_clone_over_https_is_pinned_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(url_guard, "resolve", lambda host, port: ["93.184.216.34"])
    assert sources._git_pins("https://git.example.com/bp.git", allow_private=False) == [
        "-c", "http.curloptResolve=git.example.com:443:93.184.216.34",
        "-c", "http.followRedirects=false",
    ]
    monkeypatch.setattr(url_guard, "resolve", lambda host, port: ["2606:2800:220:1::1"])
    assert sources._git_pins("http://git.example.com:8080/bp.git", allow_private=False)[1] == (
        "http.curloptResolve=git.example.com:8080:[2606:2800:220:1::1]")
    assert sources._git_pins("file:///srv/bp.git", allow_private=False) == []
