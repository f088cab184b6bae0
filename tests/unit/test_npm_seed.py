"""The platform's npm seed (paas/build/npm_seed.py): which tarballs a lockfile names and
which may be shared, and fetching, checking and pruning them, against a local registry."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import http.server
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from paas.build import npm_seed
from paas.build.npm_seed import NpmSeed, Tarball

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REGISTRY = "https://registry.npmjs.org"


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def digest(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


class Registry:
    """A local registry serving `files` (path -> bytes) and noting each path asked for."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.asked: list[str] = []
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                registry.asked.append(self.path)
                body = registry.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def tarball(self, path: str, data: bytes, named: bytes | None = None) -> Tarball:
        """Serve `data` at `path`; the Tarball a lockfile naming `named` (default: the same
        bytes) there would give."""
        self.files[path] = data
        return Tarball(self.url + path, digest(named if named is not None else data))


@pytest.fixture()
def registry() -> Iterator[Registry]:
    r = Registry()
    yield r
    r.server.shutdown()
    r.server.server_close()


# --- the pure part ----------------------------------------------------------------------------


def test_sha512_hex_reads_the_sha512_of_an_integrity_string() -> None:
    data = b"package bytes"
    assert npm_seed.sha512_hex(integrity(data)) == digest(data)
    sha1 = "sha1-" + base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert npm_seed.sha512_hex(f"{sha1} {integrity(data)}") == digest(data)
    assert npm_seed.sha512_hex(sha1) is None
    assert npm_seed.sha512_hex("sha512-not*base64") is None
    assert npm_seed.sha512_hex("sha512-" + base64.b64encode(b"short").decode()) is None


def test_the_fixtures_lockfile_names_its_two_tarballs() -> None:
    text = (FIXTURES / "node-app" / "package-lock.json").read_text()
    assert sorted(t.url for t in npm_seed.lockfile_tarballs(text)) == [
        f"{REGISTRY}/escape-html/-/escape-html-1.0.3.tgz",
        f"{REGISTRY}/ms/-/ms-2.1.3.tgz",
    ]


def test_a_version_1_lockfile_is_walked_through_its_nested_dependencies() -> None:
    a, b = integrity(b"a"), integrity(b"b")
    lockfile = {"lockfileVersion": 1, "dependencies": {
        "a": {"version": "1.0.0", "resolved": f"{REGISTRY}/a/-/a-1.0.0.tgz", "integrity": a,
              "dependencies": {"b": {"version": "2.0.0", "resolved": f"{REGISTRY}/b/-/b-2.0.0.tgz",
                                     "integrity": b}}},
    }}
    found = npm_seed.lockfile_tarballs(json.dumps(lockfile))
    assert sorted(t.digest for t in found) == sorted([digest(b"a"), digest(b"b")])


def test_links_bundled_packages_and_entries_without_a_sha512_are_left_out() -> None:
    same = integrity(b"same")
    packages = {
        "": {"name": "app"},
        "node_modules/kept": {"resolved": f"{REGISTRY}/k.tgz", "integrity": same},
        "node_modules/again/node_modules/kept": {"resolved": f"{REGISTRY}/k.tgz",
                                                 "integrity": same},
        "node_modules/linked": {"resolved": "packages/linked", "link": True},
        "node_modules/bundled": {"resolved": f"{REGISTRY}/b.tgz", "inBundle": True,
                                 "integrity": integrity(b"b")},
        "node_modules/sha1": {"resolved": f"{REGISTRY}/s.tgz",
                              "integrity": "sha1-" + base64.b64encode(b"x" * 20).decode()},
        "node_modules/git": {"resolved": "git+ssh://git@example.com/x.git#abc"},
    }
    found = npm_seed.lockfile_tarballs(json.dumps({"lockfileVersion": 3, "packages": packages}))
    assert found == [Tarball(f"{REGISTRY}/k.tgz", digest(b"same"))]
    assert npm_seed.lockfile_tarballs("not json") == []
    assert npm_seed.lockfile_tarballs("[1, 2]") == []


@pytest.mark.parametrize(("url", "shared"), [
    (f"{REGISTRY}/ms/-/ms-2.1.3.tgz", True),
    (f"{REGISTRY}/@scope/pkg/-/pkg-1.0.0.tgz", True),
    ("http://registry.npmjs.org/ms/-/ms-2.1.3.tgz", False),
    ("https://npm.example.com/ms/-/ms-2.1.3.tgz", False),
    ("https://registry.npmjs.org.example.com/ms.tgz", False),
    ("https://user:secret@registry.npmjs.org/ms.tgz", False),
    (f"{REGISTRY}/ms/../../elsewhere.tgz", False),
    (f"{REGISTRY}/ms.tgz?token=1", False),
    ("file:../vendored.tgz", False),
])
def test_only_tarballs_of_the_platforms_registry_are_shared(url: str, shared: bool) -> None:
    assert npm_seed.shared(Tarball(url, "0" * 128), REGISTRY) is shared


def test_a_digest_lives_where_cacache_keeps_its_content(tmp_path: Path) -> None:
    hex_digest = digest(b"x")
    assert npm_seed.content_path(tmp_path, hex_digest) == (
        tmp_path / "sha512" / hex_digest[:2] / hex_digest[2:4] / hex_digest[4:])


# --- fetching, checking, pruning -------------------------------------------------------------


def test_fetch_keeps_what_matches_its_digest_read_only(tmp_path: Path, registry: Registry) -> None:
    seed = NpmSeed(tmp_path / "seed", registry.url)
    good = registry.tarball("/good/-/good-1.0.0.tgz", b"good bytes")
    assert seed.fetch([good]) == 1
    stored = seed.path(good.digest)
    assert stored.read_bytes() == b"good bytes"
    assert stored.stat().st_mode & 0o777 == 0o444
    # Below the root a build can open a tarball it knows the digest of, not list them.
    assert (tmp_path / "seed" / "sha512").stat().st_mode & 0o777 == 0o711
    assert seed.missing([good]) == []
    registry.asked.clear()
    assert seed.fetch([good]) == 0 and registry.asked == []


def test_fetch_drops_bytes_that_do_not_match_and_what_the_registry_lacks(
    tmp_path: Path, registry: Registry
) -> None:
    seed = NpmSeed(tmp_path / "seed", registry.url)
    lying = registry.tarball("/lying/-/lying-1.0.0.tgz", b"other bytes", named=b"claimed bytes")
    absent = Tarball(registry.url + "/absent/-/absent-1.0.0.tgz", digest(b"absent"))
    assert seed.fetch([lying, absent]) == 0
    assert not seed.path(lying.digest).exists() and not seed.path(absent.digest).exists()
    assert [p for p in (tmp_path / "seed" / "sha512").rglob("*") if p.is_file()] == []


def test_fetch_asks_no_other_host_than_the_registry(tmp_path: Path, registry: Registry) -> None:
    elsewhere = Registry()
    try:
        seed = NpmSeed(tmp_path / "seed", registry.url)
        tarball = elsewhere.tarball("/x/-/x-1.0.0.tgz", b"x")
        assert seed.fetch([tarball]) == 0
        assert elsewhere.asked == []
    finally:
        elsewhere.server.shutdown()
        elsewhere.server.server_close()


def test_a_registry_that_cannot_be_reached_ends_the_fetching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        registry = f"http://127.0.0.1:{closed.getsockname()[1]}"
        tried: list[str] = []
        real_get = requests.Session.get

        def counting_get(self: requests.Session, url: str, **kwargs: object) -> object:
            tried.append(url)
            return real_get(self, url, **kwargs)

        monkeypatch.setattr(requests.Session, "get", counting_get)
        tarballs = [Tarball(f"{registry}/p{n}/-/p{n}-1.0.0.tgz", digest(b"%d" % n))
                    for n in range(40)]
        assert NpmSeed(tmp_path / "seed", registry).fetch(tarballs) == 0
    # Each fetcher tries once at most; after a refusal nothing more is asked.
    assert 1 <= len(tried) <= npm_seed.FETCHERS


def test_verify_removes_a_tampered_tarball_and_the_next_fetch_restores_it(
    tmp_path: Path, registry: Registry
) -> None:
    seed = NpmSeed(tmp_path / "seed", registry.url)
    good = registry.tarball("/good/-/good-1.0.0.tgz", b"good bytes")
    seed.fetch([good])
    stored = seed.path(good.digest)
    os.chmod(stored, 0o644)
    stored.write_bytes(b"tampered")
    assert seed.verify([good]) == 1
    assert not stored.exists()
    assert seed.fetch([good]) == 1 and stored.read_bytes() == b"good bytes"
    assert seed.verify([good]) == 0


def test_prune_removes_what_no_build_used_lately(tmp_path: Path, registry: Registry) -> None:
    seed = NpmSeed(tmp_path / "seed", registry.url)
    old = registry.tarball("/old/-/old-1.0.0.tgz", b"old")
    recent = registry.tarball("/recent/-/recent-1.0.0.tgz", b"recent")
    seed.fetch([old, recent])
    long_ago = time.time() - 40 * 86400
    os.utime(seed.path(old.digest), (long_ago, long_ago))
    os.utime(seed.path(recent.digest), (long_ago, long_ago))
    seed.verify([recent])  # a build used it
    assert seed.prune(keep_days=30) == 1
    assert not seed.path(old.digest).exists() and seed.path(recent.digest).exists()


def test_a_fetch_in_progress_elsewhere_is_waited_for_not_repeated(
    tmp_path: Path, registry: Registry
) -> None:
    seed = NpmSeed(tmp_path / "seed", registry.url)
    tarball = registry.tarball("/slow/-/slow-1.0.0.tgz", b"slow")
    results: list[bool] = []
    (tmp_path / "seed" / ".locks").mkdir(parents=True)
    with open(tmp_path / "seed" / ".locks" / tarball.digest[:2], "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the push's fetch of it holds it
        with requests.Session() as session:
            waiting = threading.Thread(
                target=lambda: results.append(
                    seed._fetch_one(session, tarball, 30, threading.Event())))
            waiting.start()
            assert seed._store(tarball.digest, [b"slow"])  # what that fetch stores
            fcntl.flock(held, fcntl.LOCK_UN)
            waiting.join()
    assert results == [False]
    assert registry.asked == []


def test_start_seeds_from_the_apps_lockfile_and_skips_an_app_without_one(
    tmp_path: Path, registry: Registry
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    assert npm_seed.start(tmp_path / "seed", app, registry.url) is None
    tarball = registry.tarball("/ms/-/ms-1.0.0.tgz", b"ms")
    lockfile = {"lockfileVersion": 3, "packages": {"": {}, "node_modules/ms": {
        "resolved": tarball.url, "integrity": integrity(b"ms")}}}
    (app / "package-lock.json").write_text(json.dumps(lockfile))
    seeding = npm_seed.start(tmp_path / "seed", app, registry.url)
    assert seeding is not None
    seeding.wait()
    assert seeding.fetched == 1
    assert NpmSeed(tmp_path / "seed", registry.url).path(tarball.digest).read_bytes() == b"ms"
