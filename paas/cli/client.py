"""The HTTP client of the REST API, and where the CLI finds the platform's URL and token.

Credentials, first match wins: env PAAS_URL / PAAS_API_KEY; what `paas login`
stored (config.json's url and the ~/.netrc entry for its host); the local
platform (http://127.0.0.1:$PAAS_HTTP_PORT and $PAAS_HOME/admin.token).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from paas import __version__
from paas.cli import netrc_file
from paas.errors import PaasError

USER_AGENT = f"paas-cli/{__version__}"
# (connect, read) seconds; destroying an app stops its dynos, which takes a while.
TIMEOUT = (10, 120)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class ApiError(PaasError):
    """An error answer of the API, carrying its `id` and status code."""

    def __init__(self, message: str, id: str = "error", status: int = 400) -> None:
        super().__init__(message)
        self.id = id
        self.status = status


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str | None


# --- where things are ------------------------------------------------------
def config_path() -> Path:
    """~/.config/paas/config.json, honouring XDG_CONFIG_HOME."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "paas" / "config.json"


def load_cli_config() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise PaasError(f"cannot read {path}: {exc}; fix it or run `paas login` again") from exc
    return data if isinstance(data, dict) else {}


def save_cli_config(data: dict[str, Any]) -> Path:
    path = config_path()
    netrc_file.write_private_file(path, json.dumps(data, indent=2) + "\n")
    return path


def local_url() -> str:
    port = os.environ.get("PAAS_HTTP_PORT") or "8080"
    return f"http://127.0.0.1:{port}"


def local_admin_token() -> str | None:
    """The admin token of a platform running on this machine, if readable."""
    from paas.config import settings  # imported late: only this fallback needs it

    try:
        token = settings().admin_token_path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def url_host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PaasError(f"{url!r} is not a platform URL; give one like http://paas.example.com")
    return url


def default_url() -> str:
    """The platform URL without a token: env, then `paas login`, then the local one."""
    return normalise_url(
        os.environ.get("PAAS_URL") or load_cli_config().get("url") or local_url()
    )


def resolve_credentials() -> Credentials:
    url = default_url()
    token = os.environ.get("PAAS_API_KEY") or netrc_file.read_password(url_host(url))
    # The admin token file belongs to this machine; never send it anywhere else.
    if not token and url_host(url) in _LOOPBACK:
        token = local_admin_token()
    return Credentials(url=url, token=token)


# --- the client --------------------------------------------------------------
# The standard library's HTTP client, not requests: the CLI starts for every command, and
# importing requests took it 0.15-0.3 s of its start. urllib honours the *_proxy variables
# as requests did.
class Response:
    """An answer of the API: status, headers, and the body read whole (`content`) or as
    it comes (`raw`, `iter_lines`)."""

    def __init__(self, raw: http.client.HTTPResponse | urllib.error.HTTPError, method: str,
                 url: str) -> None:
        self.raw = raw
        self.status_code: int = raw.status if raw.status is not None else raw.code
        self.reason: str = raw.reason or ""
        self.headers: Message = raw.headers
        self.method, self.url = method, url
        self._content: bytes | None = None

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self.raw.read()
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode(self.headers.get_content_charset() or "utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def iter_lines(self) -> Iterator[bytes]:
        """Each line as soon as it has arrived, without its line break."""
        while line := self.raw.readline():
            yield line.rstrip(b"\r\n")

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connection(base: type[http.client.HTTPConnection],
                read_timeout: float | None) -> type[http.client.HTTPConnection]:
    """`base` connecting within the request's timeout, then waiting `read_timeout` (None:
    for ever) for each read, as requests' (connect, read) timeouts do."""

    class Connection(base):  # type: ignore[valid-type, misc]
        def connect(self) -> None:
            super().connect()
            self.sock.settimeout(read_timeout)

    return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float | None) -> None:
        super().__init__()
        self.connection = _connection(http.client.HTTPConnection, read_timeout)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float | None) -> None:
        import ssl  # only for https platforms

        # A CA bundle named for requests (or curl) is still the one trusted.
        cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        super().__init__(context=ssl.create_default_context(cafile=cafile or None))
        self.connection = _connection(http.client.HTTPSConnection, read_timeout)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.connection, req, context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Credentials follow a redirect only to the same host, and never from https to http
    (as requests does)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Message, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        old_url, new_url = urlsplit(req.full_url), urlsplit(newurl)
        authorization = req.unredirected_hdrs.get("Authorization")
        if (new is not None and authorization and old_url.hostname == new_url.hostname
                and not (old_url.scheme == "https" and new_url.scheme != "https")):
            new.add_unredirected_header("Authorization", authorization)
        return new


class ApiClient:
    """Calls the REST API under `url`/api; every error becomes a PaasError."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.authorization = f"Bearer {token}" if token else None
        self._openers: dict[float | None, urllib.request.OpenerDirector] = {}

    @classmethod
    def with_password(cls, url: str, name: str, password: str) -> ApiClient:
        """A client that logs in with a user name and password (only token creation
        accepts them)."""
        client = cls(url, None)
        pair = base64.b64encode(f"{name}:{password}".encode()).decode()
        client.authorization = f"Basic {pair}"
        return client

    def close(self) -> None:
        """Nothing is pooled: each answer closes its own connection."""

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _opener(self, read_timeout: float | None) -> urllib.request.OpenerDirector:
        if read_timeout not in self._openers:
            handler = (_HTTPSHandler(read_timeout) if self.url.startswith("https:")
                       else _HTTPHandler(read_timeout))
            self._openers[read_timeout] = urllib.request.build_opener(handler,
                                                                      _RedirectHandler())
        return self._openers[read_timeout]

    def _send(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        json: Any = None, headers: dict[str, str] | None = None,
        timeout: tuple[float, float | None] = TIMEOUT,
    ) -> Response:
        if self.authorization is None:
            raise PaasError("not logged in; run `paas login` or set PAAS_API_KEY")
        url = f"{self.url}/api/{path.lstrip('/')}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urlencode(query, doseq=True)
        body = None if json is None else _json_bytes(json)
        req = urllib.request.Request(url, data=body, method=method, headers={
            "Accept": "application/json", "User-Agent": USER_AGENT,
            **({"Content-Type": "application/json"} if body is not None else {}),
            **(headers or {}),
        })
        # Passed on to where a redirect points only by _RedirectHandler.
        req.add_unredirected_header("Authorization", self.authorization)
        try:
            raw = self._opener(timeout[1]).open(req, timeout=timeout[0])
        except urllib.error.HTTPError as exc:
            raw = exc
        except TimeoutError as exc:
            raise PaasError(f"the platform at {self.url} did not answer in time") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise PaasError(f"the platform at {self.url} did not answer in time") from exc
            raise PaasError(
                f"cannot reach the platform at {self.url}; is `paas up` running?"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise PaasError(f"request to {self.url} failed: {exc}") from exc
        resp = Response(raw, method, url)
        if resp.status_code >= 400:
            with resp:
                raise error_from_response(resp)
        return resp

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[Any, Response]:
        """Send a request; answer (its decoded JSON or None, the closed response)."""
        with self._send(method, path, **kwargs) as resp:
            try:
                content = resp.content
            except (OSError, http.client.HTTPException) as exc:
                raise PaasError(f"the answer from {self.url} was cut off") from exc
            if not content:
                return None, resp
            try:
                return resp.json(), resp
            except ValueError as exc:
                raise PaasError(
                    f"the platform at {self.url} sent something that is not JSON "
                    f"for {method} /api/{path}"
                ) from exc

    def get(self, path: str, **params: Any) -> Any:
        """The answer's JSON; a list cut into pages (206 with Next-Range) comes whole."""
        body, resp = self.request("GET", path, params=params or None)
        while resp.status_code == 206 and isinstance(body, list) and resp.headers.get(
                "Next-Range"):
            more, resp = self.request("GET", path, params=params or None,
                                      headers={"Range": resp.headers["Next-Range"]})
            body.extend(more or [])
        return body

    def page(self, path: str, range_header: str, **params: Any) -> Any:
        """One page of a list, as `range_header` (`version ..; max=15, order=desc`) asks."""
        return self.request("GET", path, params=params or None,
                            headers={"Range": range_header})[0]

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})[0]

    def patch(self, path: str, body: Any) -> tuple[Any, Response]:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)[0]

    def download(self, path: str, **params: Any) -> Response:
        """A streamed answer for the caller to read (and close)."""
        return self._send("GET", path, params=params, timeout=(TIMEOUT[0], None),
                          headers={"Accept": "application/x-tar"})

    def stream_lines(self, path: str, **params: Any) -> Iterator[str]:
        """The lines of a text/plain answer, each yielded as soon as it arrives."""
        with self._send("GET", path, params=params, timeout=(TIMEOUT[0], None),
                        headers={"Accept": "text/plain"}) as resp:
            try:
                for line in resp.iter_lines():
                    yield line.decode("utf-8", "replace")
            except (OSError, http.client.HTTPException) as exc:
                raise PaasError(f"the log stream from {self.url} was cut off") from exc


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body).encode()


def error_from_response(resp: Response) -> ApiError:
    """The ApiError an error answer stands for, using its `message` when it has one."""
    try:
        body = resp.json()
    except (ValueError, OSError, http.client.HTTPException):
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return ApiError(body["message"], str(body.get("id", "error")), resp.status_code)
    reason = resp.reason or "error"
    return ApiError(
        f"the platform answered {resp.status_code} {reason} to {resp.method} "
        f"{urlsplit(resp.url).path}",
        "error",
        resp.status_code,
    )
