"""The static buildpack, run for real: bin/detect and bin/compile through the runner, then
the server compile ships, started as a dyno would start it and asked over real HTTP.

The server's pure helpers (ranges, Accept-Encoding, paths, globs) are also tested directly,
loaded from the buildpacks/static/static_server package.
"""

from __future__ import annotations

import gzip
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from paas.build import buildpack
from paas.build.buildpack import Buildpack, BuildpackError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "static-site"
STATIC_DIR = buildpack.BUILDPACKS_DIR / "static"
# The interpreter dynos run the server with: the stack's, stdlib only.
STACK_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
BIG_SIZE = 3 * 1024 * 1024 + 7  # above the server's in-memory limit: sent with sendfile


# --- helpers ------------------------------------------------------------------------------


def static_bp() -> Buildpack:
    return Buildpack("static", STATIC_DIR)


def load_server_module(name: str) -> ModuleType:
    package_dir = STATIC_DIR / "static_server"
    spec = importlib.util.spec_from_file_location(
        "static_server", package_dir / "__init__.py",
        submodule_search_locations=[str(package_dir)])
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package  # dataclasses look their module up there
    spec.loader.exec_module(package)
    return importlib.import_module(f"static_server.{name}")


static_core = load_server_module("core")


def write_app(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    return root


def env_for(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return buildpack.build_env([], home=home)


def run_compile(app: Path, tmp_path: Path) -> list[str]:
    lines: list[str] = []
    buildpack.compile(static_bp(), app, tmp_path / "cache", {}, env_for(tmp_path), lines.append,
                      timeout=120)
    return lines


def failed_compile(app: Path, tmp_path: Path) -> list[str]:
    lines: list[str] = []
    with pytest.raises(BuildpackError, match="failed to compile"):
        buildpack.compile(static_bp(), app, tmp_path / "cache", {}, env_for(tmp_path),
                          lines.append, timeout=120)
    return lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningSite:
    """The server compile put in app/.paas, run as the dyno's web process would run it."""

    def __init__(self, app: Path, log: Path) -> None:
        self.app = app
        self.log = log
        # Another process may take the free port before the server binds it: try again.
        for _ in range(3):
            self.port = free_port()
            if self._start():
                return
        raise AssertionError(f"the server did not start:\n{log.read_text()}")

    def _start(self) -> bool:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.app), "LANG": "C.UTF-8",
               "PORT": str(self.port), "HOST": "127.0.0.1"}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [STACK_PYTHON, "-I", str(self.app / ".paas" / "static_server")], cwd=self.app,
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        # It says so once it listens (a connection could reach whoever else holds the port).
        deadline = time.monotonic() + 15
        while self.proc.poll() is None:
            if self.log.read_text().startswith("static: serving "):
                return True
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the server did not listen within 15 s")
            time.sleep(0.02)
        assert "cannot listen" in self.log.read_text(), self.log.read_text()
        return False

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> tuple[http.client.HTTPResponse, bytes]:
        conn = self.connection()
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def raw(self, data: bytes) -> bytes:
        """Send bytes as they are and read until the server closes the connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def prepare_site(dest: Path) -> Path:
    """A copy of the fixture with what the tests need besides: a large file, more types,
    a symlink out of the site, hidden files and a .well-known file."""
    app = dest / "app"
    shutil.copytree(FIXTURE, app)
    (app / "big.bin").write_bytes(bytes(range(256)) * (BIG_SIZE // 256) + b"x" * (BIG_SIZE % 256))
    (app / "data.json").write_text(json.dumps({"items": list(range(200))}))
    (app / "mod.wasm").write_bytes(b"\0asm\1\0\0\0")
    (app / "font.woff2").write_bytes(b"wOF2" + b"\0" * 60)
    (app / "pic.webp").write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")
    (app / "passwd").symlink_to("/etc/passwd")
    (app / "docs" / "readme-link.html").symlink_to("../about.html")
    (app / ".env").write_text("SECRET=do-not-serve\n")
    (app / ".well-known").mkdir()
    (app / ".well-known" / "security.txt").write_text("Contact: mailto:security@example.com\n")
    return app


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("static")
    app = prepare_site(tmp)
    return app, run_compile(app, tmp)


@pytest.fixture(scope="module")
def site(built: tuple[Path, list[str]]) -> Iterator[RunningSite]:
    app, _ = built
    running = RunningSite(app, app.parent / "server.log")
    try:
        yield running
    finally:
        assert running.stop() == 0


# --- detect ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "detected"),
    [
        ({"index.html": "<p>hi</p>\n"}, True),
        ({"static.json": '{"root": "public"}\n', "public/index.html": "hi\n"}, True),
        ({"README.md": "# nothing to serve\n"}, False),
        ({"public/index.html": "hi\n"}, False),
        ({}, False),
    ],
)
def test_detect_claims_an_index_html_or_a_static_json(
    tmp_path: Path, files: dict[str, str], detected: bool
) -> None:
    app = write_app(tmp_path / "app", files)
    if detected:
        assert buildpack.detect(app, [static_bp()], env_for(tmp_path)) == (static_bp(), "Static")
    else:
        with pytest.raises(BuildpackError, match="no buildpack recognised"):
            buildpack.detect(app, [static_bp()], env_for(tmp_path))


def test_an_app_with_requirements_is_python_even_with_an_index_html(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"index.html": "hi\n", "requirements.txt": "flask\n"})
    order = [bp.name for bp in buildpack.builtin_buildpacks()]
    assert order.index("static") > order.index("python")
    bp, _ = buildpack.detect(app, buildpack.builtin_buildpacks(), env_for(tmp_path))
    assert bp.name == "python"


def test_release_serves_the_site_with_the_shipped_server(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"index.html": "hi\n"})
    assert buildpack.release(static_bp(), app, env_for(tmp_path)) == {
        "web": "python3 -I .paas/static_server"
    }


# --- compile -------------------------------------------------------------------------------


def test_compile_gzips_text_files_beside_themselves(built: tuple[Path, list[str]]) -> None:
    app, lines = built
    assert lines[0] == "-----> Static site detected"
    assert any(line.startswith("       Gzipped ") and "saves" in line for line in lines), lines
    assert lines[-1] == "-----> Static site ready: web: python3 -I .paas/static_server"
    for rel in ("index.html", "about.html", "404.html", "docs/index.html", "assets/style.css",
                "assets/app.js", "assets/logo.svg", "data.json"):
        original = (app / rel).read_bytes()
        packed = (app / f"{rel}.gz").read_bytes()
        assert len(packed) < len(original)
        assert gzip.decompress(packed) == original
    # Not text, or too small to gain anything.
    for rel in ("img/dot.png", "big.bin", "mod.wasm"):
        assert not (app / f"{rel}.gz").exists()
    assert not any(app.glob(".paas/*.tmp"))


def test_compile_writes_the_server_and_the_resolved_config(built: tuple[Path, list[str]]) -> None:
    app, lines = built
    shipped = app / ".paas" / "static_server"
    sources = sorted((STATIC_DIR / "static_server").glob("*.py"))
    assert sorted(p.name for p in shipped.glob("*.py")) == [p.name for p in sources]
    for source in sources:
        assert (shipped / source.name).read_bytes() == source.read_bytes()
    resolved = json.loads((app / ".paas" / "static.json").read_text())
    assert resolved["root"] == "."
    assert resolved["clean_urls"] is True
    assert resolved["error_page"] == "404.html"  # found, not configured
    assert resolved["headers"] == [
        ["/assets/**", {"Cache-Control": "public, max-age=31536000, immutable"}]
    ]
    assert resolved["redirects"] == [["/old", {"url": "/about", "status": 301}]]
    files = resolved["files"]
    assert files["assets/app.js"]["gzip"] is True
    assert files["img/dot.png"]["gzip"] is False
    assert len(files["index.html"]["etag"]) == 20
    for hidden in ("static.json", ".env", "passwd", ".paas/static.json"):
        assert hidden not in files
    assert " !     passwd is a symlink to outside the site (or to a hidden file); not served" \
        in lines


def test_a_root_folder_serves_only_that_folder_and_https_only_is_ignored(
    tmp_path: Path,
) -> None:
    app = write_app(tmp_path / "app", {
        "static.json": json.dumps({"root": "./public/", "https_only": True,
                                   "error_page": "errors/oops.html"}),
        "public/index.html": "<p>public</p>\n" * 20,
        "public/errors/oops.html": "<p>oops</p>\n" * 20,
        "secret.html": "<p>not in the root</p>\n" * 20,
    })
    lines = run_compile(app, tmp_path)
    assert ' !     static.json: "https_only" is ignored (HTTPS is the router\'s business, not ' \
        "the dyno's)" in lines
    resolved = json.loads((app / ".paas" / "static.json").read_text())
    assert resolved["root"] == "public"
    assert resolved["error_page"] == "errors/oops.html"
    assert set(resolved["files"]) == {"index.html", "index.html.gz", "errors/oops.html",
                                      "errors/oops.html.gz"}
    assert not (app / "secret.html.gz").exists()


@pytest.mark.parametrize(
    ("static_json", "message"),
    [
        ('{"root": "public",}', "static.json is not valid JSON: "),
        ('["public"]', "static.json must hold a JSON object"),
        ('{"root": "public"}', 'static.json: the root folder "public" does not exist in the app'),
        ('{"root": "../elsewhere"}', "give a path inside the app"),
        ('{"root": "/srv/www"}', "give a path inside the app"),
        ('{"clean_urls": "yes"}', '"clean_urls" must be true or false'),
        ('{"error_page": "missing.html"}', 'the error_page "missing.html" is not a file'),
        ('{"redirects": {"/a": {"url": "/b", "status": 200}}}', "redirect '/a' has status 200"),
        ('{"redirects": {"a": {"url": "/b"}}}', "redirects path 'a' must start with /"),
        ('{"headers": {"/**": {"Content-Length": "1"}}}', "Content-Length (headers of '/**') is "
                                                          "set by the server"),
        ('{"headers": {"/**": {"X-A": "one\\r\\nX-B: two"}}}', "printable ASCII on one line"),
    ],
)
def test_an_unusable_static_json_fails_the_build_naming_the_problem(
    tmp_path: Path, static_json: str, message: str
) -> None:
    app = write_app(tmp_path / "app", {"static.json": static_json, "index.html": "hi\n"})
    lines = failed_compile(app, tmp_path)
    problem = next(line for line in lines if line.startswith(" !     ") and message in line)
    assert lines.index(problem) < len(lines) - 1
    assert lines[-1] == " !     The site was not prepared; fix what is named above, commit " \
        "and push again."
    assert not (app / ".paas" / "static.json").exists()


def test_a_root_symlinked_outside_the_app_is_refused(tmp_path: Path) -> None:
    outside = write_app(tmp_path / "outside", {"index.html": "elsewhere\n"})
    app = write_app(tmp_path / "app", {"static.json": '{"root": "www"}'})
    (app / "www").symlink_to(outside)
    lines = failed_compile(app, tmp_path)
    assert ' !     static.json: the root "www" leads outside the app' in lines


# --- the server over HTTP ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/logo.svg", "image/svg+xml"),
        ("/img/dot.png", "image/png"),
        ("/data.json", "application/json"),
        ("/mod.wasm", "application/wasm"),
        ("/font.woff2", "font/woff2"),
        ("/pic.webp", "image/webp"),
        ("/big.bin", "application/octet-stream"),
    ],
)
def test_content_types(site: RunningSite, path: str, content_type: str) -> None:
    response, _ = site.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_files_are_served_as_they_are(site: RunningSite) -> None:
    for path, rel in (("/", "index.html"), ("/assets/app.js", "assets/app.js"),
                      ("/img/dot.png", "img/dot.png"), ("/big.bin", "big.bin"),
                      ("/docs/readme-link.html", "about.html")):
        response, body = site.get(path)
        assert response.status == 200
        assert body == (site.app / rel).read_bytes()
        assert int(response.headers["Content-Length"]) == len(body)


def test_gzip_is_served_to_clients_that_ask_for_it(site: RunningSite) -> None:
    original = (site.app / "assets" / "style.css").read_bytes()
    response, body = site.get("/assets/style.css", {"Accept-Encoding": "br, gzip;q=0.8"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert int(response.headers["Content-Length"]) == len(body) < len(original)
    assert gzip.decompress(body) == original

    for refused in ({}, {"Accept-Encoding": "gzip;q=0"}, {"Accept-Encoding": "br"}):
        response, body = site.get("/assets/style.css", refused)
        assert response.headers["Content-Encoding"] is None
        assert response.headers["Vary"] == "Accept-Encoding"
        assert body == original

    response, body = site.get("/img/dot.png", {"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] is None and response.headers["Vary"] is None


def test_conditional_requests_get_304(site: RunningSite) -> None:
    response, _ = site.get("/assets/app.js")
    etag = response.headers["ETag"]
    last_modified = response.headers["Last-Modified"]
    for conditional in ({"If-None-Match": etag}, {"If-None-Match": f'"nope", W/{etag}'},
                        {"If-None-Match": "*"}, {"If-Modified-Since": last_modified}):
        response, body = site.get("/assets/app.js", conditional)
        assert response.status == 304, conditional
        assert body == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"

    gz, _ = site.get("/assets/app.js", {"Accept-Encoding": "gzip"})
    assert gz.headers["ETag"] != etag
    response, _ = site.get("/assets/app.js", {"Accept-Encoding": "gzip",
                                              "If-None-Match": gz.headers["ETag"]})
    assert response.status == 304

    # If-None-Match decides when both are sent; If-Modified-Since matches only exactly.
    for changed in ({"If-None-Match": '"other"', "If-Modified-Since": last_modified},
                    {"If-Modified-Since": "Thu, 01 Jan 2099 00:00:00 GMT"}):
        response, body = site.get("/assets/app.js", changed)
        assert response.status == 200 and body


def test_many_requests_share_one_keep_alive_connection(site: RunningSite) -> None:
    conn = site.connection()
    try:
        first_socket = None
        for path, method, status in [("/", "GET", 200), ("/about", "HEAD", 200),
                                     ("/nope", "GET", 404), ("/big.bin", "GET", 200),
                                     ("/old", "GET", 301), ("/assets/logo.svg", "HEAD", 200),
                                     ("/docs/", "GET", 200)]:
            conn.request(method, path, headers={"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            body = response.read()
            assert response.status == status, path
            assert response.headers["Connection"] is None  # HTTP/1.1: open unless closed
            if method == "HEAD":
                assert body == b""
            first_socket = first_socket or conn.sock
            assert conn.sock is first_socket, f"the connection was not kept after {path}"
    finally:
        conn.close()


def read_responses(data: bytes, methods: list[str]) -> list[tuple[bytes, bytes]]:
    """Split a stream of HTTP responses (all with Content-Length) into (head, body) pairs."""
    responses = []
    for method in methods:
        head, _, data = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        if method == "HEAD":
            length = 0
        responses.append((head, data[:length]))
        data = data[length:]
    assert data == b""
    return responses


def test_pipelined_requests_are_answered_in_order(site: RunningSite) -> None:
    requests = [("GET", "/big.bin"), ("HEAD", "/"), ("GET", "/about"), ("GET", "/img/dot.png")]
    data = b"".join(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode()
        + (b"Connection: close\r\n" if n == len(requests) - 1 else b"") + b"\r\n"
        for n, (method, path) in enumerate(requests)
    )
    # All at once: the big file goes out with sendfile while the rest wait their turn.
    responses = read_responses(site.raw(data), [method for method, _ in requests])
    assert [head.split(b"\r\n")[0] for head, _ in responses] == [b"HTTP/1.1 200 OK"] * 4
    assert [body for _, body in responses] == [
        (site.app / "big.bin").read_bytes(), b"", (site.app / "about.html").read_bytes(),
        (site.app / "img" / "dot.png").read_bytes(),
    ]
    assert b"Connection: close" in responses[3][0]


def test_head_has_the_headers_of_get_and_no_body(site: RunningSite) -> None:
    conn = site.connection()
    try:
        conn.request("HEAD", "/big.bin")
        head = conn.getresponse()
        assert head.read() == b""
        # Had the HEAD answer carried a body, this response would be garbage.
        conn.request("GET", "/about")
        response = conn.getresponse()
        assert response.read() == (site.app / "about.html").read_bytes()
    finally:
        conn.close()
    assert int(head.headers["Content-Length"]) == BIG_SIZE
    assert head.headers["ETag"]


def test_folders_clean_urls_and_redirects(site: RunningSite) -> None:
    response, body = site.get("/docs/")
    assert body == (site.app / "docs" / "index.html").read_bytes()
    response, _ = site.get("/docs?page=2")
    assert (response.status, response.headers["Location"]) == (301, "/docs/?page=2")
    response, body = site.get("/about")
    assert response.status == 200 and body == (site.app / "about.html").read_bytes()
    response, _ = site.get("/old")
    assert (response.status, response.headers["Location"]) == (301, "/about")
    response, _ = site.get("/old?from=mail")
    assert response.headers["Location"] == "/about?from=mail"
    response, _ = site.get("/img/")  # a folder without index.html: no listing
    assert response.status == 404


def test_cache_control_defaults_and_static_json_headers(site: RunningSite) -> None:
    expected = {
        "/": "no-cache",
        "/about": "no-cache",
        "/img/dot.png": "public, max-age=3600",
        "/assets/style.css": "public, max-age=31536000, immutable",
    }
    for path, cache_control in expected.items():
        response, _ = site.get(path)
        assert response.headers["Cache-Control"] == cache_control, path


def test_missing_pages_get_the_apps_404_page(site: RunningSite) -> None:
    page = (site.app / "404.html").read_bytes()
    response, body = site.get("/no/such/page")
    assert (response.status, body) == (404, page)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    response, body = site.get("/no/such/page", {"Accept-Encoding": "gzip"})
    assert response.status == 404 and gzip.decompress(body) == page
    response, body = site.get("/no/such/page", method="HEAD")
    assert (response.status, body) == (404, b"")


@pytest.mark.parametrize(
    "path",
    [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/assets/../../../../etc/passwd",
        "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%5c..%5cetc%5cpasswd",
        "/passwd",
        "http://localhost/../../etc/passwd",
    ],
)
def test_paths_out_of_the_site_are_404(site: RunningSite, path: str) -> None:
    response, body = site.get(path)
    assert response.status == 404
    assert b"root:" not in body


@pytest.mark.parametrize(
    "path",
    ["/.paas/static.json", "/.paas/static_server/server.py", "/.env", "/static.json",
     "/%2epaas/static.json", "/assets/./app.js", "/index.html%00.png"],
)
def test_hidden_and_platform_files_are_404(site: RunningSite, path: str) -> None:
    response, _ = site.get(path)
    assert response.status == 404


def test_well_known_is_served(site: RunningSite) -> None:
    response, body = site.get("/.well-known/security.txt")
    assert response.status == 200 and body.startswith(b"Contact:")


def test_single_byte_ranges(site: RunningSite) -> None:
    data = (site.app / "big.bin").read_bytes()
    for header, first, last in (("bytes=10-19", 10, 19), ("bytes=-5", BIG_SIZE - 5, BIG_SIZE - 1),
                                ("bytes=3000000-", 3000000, BIG_SIZE - 1)):
        response, body = site.get("/big.bin", {"Range": header})
        assert response.status == 206, header
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{BIG_SIZE}"
        assert body == data[first:last + 1]
    response, body = site.get("/assets/app.js", {"Range": "bytes=0-9",
                                                 "Accept-Encoding": "gzip"})
    assert (response.status, body) == (206, (site.app / "assets" / "app.js").read_bytes()[:10])
    response, _ = site.get("/big.bin", {"Range": f"bytes={BIG_SIZE}-"})
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{BIG_SIZE}"
    response, body = site.get("/big.bin", {"Range": "bytes=0-1,5-6"})  # several: whole file
    assert response.status == 200 and len(body) == BIG_SIZE
    response, body = site.get("/big.bin", {"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert response.status == 200 and len(body) == BIG_SIZE


def test_other_methods_and_malformed_requests(site: RunningSite) -> None:
    response, _ = site.get("/", method="POST")
    assert response.status == 405 and response.headers["Allow"] == "GET, HEAD"
    assert site.raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert site.raw(b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")  # no Host
    assert site.raw(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    reply = site.raw(b"GET / HTTP/1.0\r\n\r\n")  # HTTP/1.0 closes unless asked not to
    assert reply.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in reply


def test_requests_are_logged_one_short_line_each(site: RunningSite) -> None:
    site.get("/about?utm=1")
    deadline = time.monotonic() + 5
    while "GET /about?utm=1 200 " not in site.log.read_text():
        assert time.monotonic() < deadline, site.log.read_text()
        time.sleep(0.05)
    assert site.log.read_text().startswith("static: serving ")


def test_sigterm_closes_the_listener_and_exits_0(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"index.html": "<p>hi</p>\n"})
    run_compile(app, tmp_path)
    running = RunningSite(app, tmp_path / "server.log")
    idle = socket.create_connection(("127.0.0.1", running.port))  # an idle keep-alive client
    try:
        started = time.monotonic()
        assert running.stop() == 0
        assert time.monotonic() - started < 2.5  # not the 3 s left to answers in flight
        assert idle.recv(10) == b""  # closed by the server
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", running.port), timeout=2).close()
    finally:
        idle.close()


# --- the server's helpers, without a socket ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"bytes=0-0", (0, 0)),
        (b"bytes=5-", (5, 99)),
        (b"bytes=-10", (90, 99)),
        (b"bytes=-500", (0, 99)),
        (b"bytes=90-1000", (90, 99)),
        (b"bytes=100-", (-1, -1)),
        (b"bytes=-0", (-1, -1)),
        (b"bytes=5-4", None),
        (b"bytes=0-1,3-4", None),
        (b"items=0-1", None),
        (b"bytes=a-b", None),
        (b"bytes=-", None),
    ],
)
def test_parse_range(value: bytes, expected: tuple[int, int] | None) -> None:
    assert static_core.parse_range(value, 100) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"gzip", True),
        (b"gzip, deflate, br", True),
        (b"br;q=1.0, GZIP;q=0.5", True),
        (b"*", True),
        (b"gzip;q=0", False),
        (b"gzip;q=0, *", False),
        (b"*;q=0", False),
        (b"br, deflate", False),
        (b"identity", False),
        (b"gzipped", False),
    ],
)
def test_accepts_gzip(value: bytes, expected: bool) -> None:
    assert static_core.accepts_gzip(value) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ("", True)),
        ("/a//b/", ("a/b", True)),
        ("/a/b.html", ("a/b.html", False)),
        ("/.well-known/x", (".well-known/x", False)),
        ("/a/../b", None),
        ("/./a", None),
        ("/.git/config", None),
        ("/a\x00b", None),
    ],
)
def test_site_relative(path: str, expected: tuple[str, bool] | None) -> None:
    assert static_core.site_relative(path) == expected


def test_glob_patterns_follow_herokus_static_json() -> None:
    assets = static_core.glob_regex("/assets/**")
    assert assets.match("/assets/a/b.js") and not assets.match("/assets")
    html = static_core.glob_regex("/*.html")
    assert html.match("/a.html") and not html.match("/a/b.html")
    exact = static_core.glob_regex("/a.b")
    assert exact.match("/a.b") and not exact.match("/aXb")
