"""The WSGI app behind `/git/<app>.git`: token auth, membership check, then dulwich.

The password of HTTP basic auth is an API token (the user name is ignored, as
on Heroku). Missing or wrong credentials answer 401 so git asks for them; an
app that does not exist, or that the user may not reach, answers 404 with a
text/plain line that git shows as `remote: …`; a push by a user whose role on
the app only allows fetching answers 403 (paas.permissions decides both).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable

import redis
from dulwich.web import make_wsgi_chain

from paas.config import Settings
from paas.errors import Forbidden, NotFound
from paas.git.access import app_for_git
from paas.git.receive import AppBackend, DeployingReceivePackHandler, PushContext
from paas.store import Store, User

_PATH = re.compile(r"^/(?P<app>[A-Za-z0-9-]+?)(?:\.git)?(?P<rest>/.*)$")


def _plain(start_response: Callable, status: str, text: str,
           headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + (headers or []))
    return [body]


def _is_push(rest: str, query: str) -> bool:
    """Whether a smart-HTTP request is (the discovery for) a push rather than a fetch."""
    return rest.endswith("/git-receive-pack") or "service=git-receive-pack" in query


def _token_from(environ: dict) -> str | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


class GitApp:
    def __init__(self, settings: Settings, store: Store, r: redis.Redis) -> None:
        self.settings = settings
        self.store = store
        self.r = r

    def _user(self, environ: dict) -> User | None:
        token = _token_from(environ)
        return self.store.user_for_token(token) if token else None

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        match = _PATH.match(environ.get("PATH_INFO", ""))
        if not match:
            return _plain(start_response, "404 Not Found",
                          "Git repositories live at /git/APP.git")
        user = self._user(environ)
        if user is None:
            return _plain(
                start_response, "401 Unauthorized",
                "Authentication required: use an API token as the password "
                "(`paas git:remote -a APP` sets it up)",
                [("WWW-Authenticate", 'Basic realm="paas"')],
            )
        name = match.group("app")
        pushing = _is_push(match.group("rest"), environ.get("QUERY_STRING", ""))
        try:
            app = app_for_git(self.store, user, name, pushing)
        except NotFound as exc:
            return _plain(start_response, "404 Not Found", exc.message)
        except Forbidden as exc:
            return _plain(start_response, "403 Forbidden", exc.message)
        if pushing and environ.get("REQUEST_METHOD") == "POST":
            self.store.record_audit(app.name, user, "git_push", {"request": "git push"})
        ctx = PushContext(app=app, user=user, store=self.store, r=self.r)
        backend = AppBackend(str(self.settings.repo_path(app.name)), ctx)
        environ = dict(environ, PATH_INFO=match.group("rest"), SCRIPT_NAME="")
        # The WSGI server has already decoded a chunked body; dulwich must not decode it again.
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        git = make_wsgi_chain(
            backend, handlers={b"git-receive-pack": DeployingReceivePackHandler}
        )
        return git(environ, start_response)
