"""Source URLs may not reach the platform's own network: the rule over addresses, then
fetches from a local HTTP(S) server: refused on loopback unless the operator allows
private addresses, the checked address connected to with the name kept in Host and
SNI, and every redirect hop checked again."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from paas.build import source_blob, url_guard
from paas.errors import BuildFailed, PaasError
from router.tls import ensure_platform_certificate

TARBALL = b"pretend this is a tarball" * 100


@pytest.mark.parametrize(("address", "kind", "allowed_by_setting"), [
    ("93.184.216.34", None, True),
    ("2606:2800:220:1:248:1893:25c8:1946", None, True),
    ("127.0.0.1", "a loopback address", True),
    ("127.45.0.9", "a loopback address", True),
    ("::1", "a loopback address", True),
    ("10.1.2.3", "a private address", True),
    ("172.16.0.1", "a private address", True),
    ("192.168.1.10", "a private address", True),
    ("100.64.0.1", "a private address", True),  # carrier-grade NAT: not public either
    ("fd12:3456::1", "a private address", True),
    ("fec0::1", "a private address", True),
    ("::ffff:10.0.0.1", "a private address", True),  # IPv4 inside IPv6 counts as IPv4
    ("::ffff:127.0.0.1", "a loopback address", True),
    ("64:ff9b::a9fe:a9fe", "a link-local address", False),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::1", "a loopback address", True),  # 6to4 of 127.0.0.1
    ("169.254.169.254", "a link-local address", False),  # cloud metadata
    ("fe80::1", "a link-local address", False),
    ("0.0.0.0", "an unspecified address", False),
    ("0.1.2.3", "an unspecified address", False),
    ("::", "an unspecified address", False),
    ("224.0.0.1", "a multicast address", False),
    ("ff02::1", "a multicast address", False),
    ("255.255.255.255", "a reserved address", False),
    ("240.0.0.1", "a reserved address", False),
])
def test_the_rule(address: str, kind: str | None, allowed_by_setting: bool) -> None:
    assert url_guard.refusal(address, allow_private=False) == kind
    assert (url_guard.refusal(address, allow_private=True) is None) == allowed_by_setting


@dataclass
class Served:
    """What the local server saw."""

    hosts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)


def handler(seen: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            seen.hosts.append(self.headers.get("Host", ""))
            seen.paths.append(self.path)
            seen.auth.append(self.headers.get("Authorization"))
            redirects = {
                "/to-metadata": "http://169.254.169.254/latest/meta-data/",
                "/to-file": "file:///etc/passwd",
                "/to-tarball": "/app.tgz",
                "/to-other-name": f"http://localhost:{self.server.server_port}/app.tgz",
            }
            if self.path in redirects:
                self.send_response(302)
                self.send_header("Location", redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path.startswith("/loop/"):
                self.send_response(302)
                self.send_header("Location", f"/loop/{int(self.path[6:]) + 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/app.tgz":
                self.send_response(200)
                self.send_header("Content-Length", str(len(TARBALL)))
                self.end_headers()
                self.wfile.write(TARBALL)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture()
def seen() -> Served:
    return Served()


@pytest.fixture()
def server(seen: Served) -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(seen))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_port
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def tls_server(seen: Served, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """HTTPS with a certificate for artifacts.test (and 127.0.0.1), trusted by the fetch."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    ensure_platform_certificate(cert, key, "artifacts.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen.sni.append(name)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(seen))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_port
    httpd.shutdown()
    httpd.server_close()


def fetch(url: str, dest: Path, allow_private: bool) -> bytes:
    source_blob.fetch(url, dest, allow_private=allow_private)
    return dest.read_bytes()


def test_loopback_is_refused_unless_the_operator_allows_private_addresses(
        server: int, seen: Served, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server}/app.tgz"
    with pytest.raises(BuildFailed) as refused:
        fetch(url, tmp_path / "a.tar", allow_private=False)
    assert refused.value.message == (
        f"http://127.0.0.1:{server}/app.tgz is refused: 127.0.0.1 is a loopback address, "
        "and the URLs a build fetches reach only public addresses; an operator can allow "
        "private ones with PAAS_SOURCE_URL_ALLOW_PRIVATE=1")
    assert seen.paths == []  # refused before connecting
    assert fetch(url, tmp_path / "b.tar", allow_private=True) == TARBALL


def test_a_name_is_resolved_once_and_that_address_connected_to(server: int,
                                                               seen: Served) -> None:
    """A rebinding name answers 127.0.0.1 first and the metadata address after: the fetch
    connects where the first, checked, answer said, and asks the name's Host there."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"], ["169.254.169.254"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    url = f"http://artifacts.test:{server}/app.tgz"
    with url_guard.open_url(url, allow_private=True, timeout=(5, 5),
                            resolver=rebinding) as response:
        assert response.status == 200 and response.read() == TARBALL
    assert asked == ["artifacts.test"]
    assert seen.hosts == [f"artifacts.test:{server}"]


def test_https_keeps_the_name_for_sni_and_the_certificate(tls_server: int,
                                                          seen: Served) -> None:
    to_loopback = {"artifacts.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}

    def resolver(host: str, port: int) -> list[str]:
        return to_loopback[host]

    url = f"https://artifacts.test:{tls_server}/app.tgz"
    with url_guard.open_url(url, allow_private=True, timeout=(5, 5),
                            resolver=resolver) as response:
        assert response.read() == TARBALL
    assert seen.sni == ["artifacts.test"]
    assert seen.hosts == [f"artifacts.test:{tls_server}"]
    # The certificate also names 127.0.0.1; it is checked against the URL's name anyway.
    with pytest.raises(Exception, match="other.test"):  # noqa: B017 - ssl's own error types
        with url_guard.open_url(f"https://other.test:{tls_server}/app.tgz",
                                allow_private=True, timeout=(5, 5), resolver=resolver):
            pass


@pytest.mark.parametrize(("path", "message"), [
    ("/to-metadata", "169.254.169.254 is a link-local address, which the URLs a build "
                     "fetches never reach"),
    ("/to-file", "'file:///etc/passwd' is not an http(s) URL"),
    ("/loop/0", "redirects more than 5 times"),
])
def test_every_redirect_hop_is_checked(server: int, seen: Served, tmp_path: Path,
                                       path: str, message: str) -> None:
    with pytest.raises(BuildFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
        fetch(f"http://127.0.0.1:{server}{path}", tmp_path / "a.tar", allow_private=True)
    assert not (tmp_path / "a.tar").exists()
    assert all(not p.startswith("/latest") for p in seen.paths)


def test_a_redirect_keeps_credentials_only_on_the_same_origin(
        server: int, seen: Served, tmp_path: Path) -> None:
    assert fetch(f"http://ci:s3cret@127.0.0.1:{server}/to-tarball", tmp_path / "a.tar",
                 allow_private=True) == TARBALL
    assert seen.auth[0] == seen.auth[1] and seen.auth[0] is not None
    assert fetch(f"http://ci:s3cret@127.0.0.1:{server}/to-other-name", tmp_path / "b.tar",
                 allow_private=True) == TARBALL
    assert seen.hosts[-1] == f"localhost:{server}" and seen.auth[-1] is None


def test_only_http_and_https() -> None:
    for url in ("ftp://example.com/a.tgz", "file:///etc/passwd", "gopher://x/", "http://"):
        with pytest.raises(PaasError, match="http"):
            source_blob.check_url(url)


@pytest.fixture()
def client(make_web) -> FlaskClient:  # noqa: ANN001
    web = make_web()
    client = web.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {web.admin_token}"
    client.post("/api/apps", json={"name": "hello"})
    client.settings = web  # type: ignore[attr-defined]
    return client


@pytest.mark.parametrize(("url", "allowed_by_setting", "message"), [
    ("http://127.0.0.1:8000/app.tgz", True, "127.0.0.1 is a loopback address, and the URLs "
                                           "a build fetches reach only public addresses; an "
                                           "operator can allow private ones with "
                                           "PAAS_SOURCE_URL_ALLOW_PRIVATE=1"),
    ("http://localhost/app.tgz", True, "localhost (127.0.0.1) is a loopback address"),
    ("https://10.0.0.7/app.tgz", True, "10.0.0.7 is a private address"),
    ("http://[::1]:80/app.tgz", True, "::1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", False,
     "169.254.169.254 is a link-local address, which the URLs a build fetches never reach"),
    ("http://[fe80::1]/a.tgz", False, "fe80::1 is a link-local address"),
    ("http://0.0.0.0:8080/a.tgz", False, "0.0.0.0 is an unspecified address"),
])
def test_the_api_refuses_an_inward_url_with_422(client: FlaskClient, url: str,
                                                allowed_by_setting: bool,
                                                message: str) -> None:
    answer = client.post("/api/apps/hello/builds", json={"source_blob": {"url": url}})
    assert answer.status_code == 422
    assert answer.get_json()["id"] == "invalid_params"
    assert message in answer.get_json()["message"]
    assert client.get("/api/apps/hello/builds").get_json() == []
    web = client.settings  # type: ignore[attr-defined]
    web.app.config["PAAS_SETTINGS"] = replace(web.settings, source_url_allow_private=True)
    allowed = client.post("/api/apps/hello/builds", json={"source_blob": {"url": url}})
    assert allowed.status_code == (201 if allowed_by_setting else 422)
