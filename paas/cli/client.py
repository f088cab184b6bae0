"""The HTTP client of the REST API, and where the CLI finds the platform's URL and token.

Credentials, first match wins: env PAAS_URL / PAAS_API_KEY; what `paas login`
stored (config.json's url and the ~/.netrc entry for its host); the local
platform (http://127.0.0.1:$PAAS_HTTP_PORT and $PAAS_HOME/admin.token).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth

from paas import __version__
from paas.cli import netrc_file
from paas.errors import PaasError

USER_AGENT = f"paas-cli/{__version__}"
# (connect, read) seconds; destroying an app stops its dynos, which takes a while.
TIMEOUT = (10, 120)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class BearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer TOKEN`; as an auth object it also stops requests from
    replacing the header with ~/.netrc's basic auth."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, req: requests.PreparedRequest) -> requests.PreparedRequest:
        req.headers["Authorization"] = f"Bearer {self.token}"
        return req


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
class ApiClient:
    """Calls the REST API under `url`/api; every error becomes a PaasError."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        if token:
            self.session.auth = BearerAuth(token)

    @classmethod
    def with_password(cls, url: str, name: str, password: str) -> ApiClient:
        """A client that logs in with a user name and password (only token creation
        accepts them)."""
        client = cls(url, None)
        client.session.auth = requests.auth.HTTPBasicAuth(name, password)
        return client

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(
        self, method: str, path: str, *, stream: bool = False, timeout: Any = TIMEOUT, **kwargs: Any
    ) -> requests.Response:
        if not self.token and self.session.auth is None:
            raise PaasError("not logged in; run `paas login` or set PAAS_API_KEY")
        try:
            resp = self.session.request(
                method, f"{self.url}/api/{path.lstrip('/')}", stream=stream, timeout=timeout,
                **kwargs,
            )
        except requests.ConnectionError as exc:
            raise PaasError(
                f"cannot reach the platform at {self.url}; is `paas up` running?"
            ) from exc
        except requests.Timeout as exc:
            raise PaasError(f"the platform at {self.url} did not answer in time") from exc
        except requests.RequestException as exc:
            raise PaasError(f"request to {self.url} failed: {exc}") from exc
        if resp.status_code >= 400:
            with resp:
                raise error_from_response(resp)
        return resp

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[Any, requests.Response]:
        """Send a request; answer (its decoded JSON or None, the closed response)."""
        with self._send(method, path, **kwargs) as resp:
            if not resp.content:
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

    def patch(self, path: str, body: Any) -> tuple[Any, requests.Response]:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)[0]

    def download(self, path: str, **params: Any) -> requests.Response:
        """A streamed answer for the caller to read (and close)."""
        return self._send("GET", path, params=params, stream=True, timeout=(TIMEOUT[0], None),
                          headers={"Accept": "application/x-tar"})

    def stream_lines(self, path: str, **params: Any) -> Iterator[str]:
        """The lines of a text/plain answer, each yielded as soon as it arrives."""
        with self._send(
            "GET", path, params=params, stream=True, timeout=(TIMEOUT[0], None),
            headers={"Accept": "text/plain"},
        ) as resp:
            # A chunked body can be read chunk by chunk; any other one only byte by
            # byte, or a line would wait for the next 512 bytes to come.
            chunk_size = None if resp.raw.chunked else 1
            try:
                for line in resp.iter_lines(chunk_size=chunk_size):
                    yield line.decode("utf-8", "replace")
            except requests.RequestException as exc:
                raise PaasError(f"the log stream from {self.url} was cut off") from exc


def error_from_response(resp: requests.Response) -> ApiError:
    """The ApiError an error answer stands for, using its `message` when it has one."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return ApiError(body["message"], str(body.get("id", "error")), resp.status_code)
    reason = resp.reason or "error"
    return ApiError(
        f"the platform answered {resp.status_code} {reason} to {resp.request.method} "
        f"{urlsplit(resp.url).path}",
        "error",
        resp.status_code,
    )
