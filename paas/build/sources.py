"""Which buildpacks build an app, and fetching those given by URL.

The list comes from the app's settings (`paas buildpacks:add/set`), else from a
`.buildpacks` file in the pushed code (one per line), else from detection over the
built-in buildpacks. An entry is a built-in name (`python`, also `heroku/python`), a
git URL (`https://host/repo.git#ref`, `file:///path/repo#ref`) or a tarball URL
(`https://host/bp.tgz`). URLs are fetched at build time into the build's scratch
folder; an unreachable one fails the build with a message saying so.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import urllib3

from paas.build import url_guard
from paas.build.buildpack import Buildpack, BuildpackError, builtin_buildpacks
from paas.errors import InvalidInput

FETCH_TIMEOUT = 120
_TARBALL_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tar.xz")


def builtin_names() -> list[str]:
    return [bp.name for bp in builtin_buildpacks()]


def normalise(entry: str) -> str:
    """What a user typed, as stored: built-in names lose a `heroku/` prefix; URLs are checked."""
    entry = entry.strip()
    name = entry.removeprefix("heroku/").removeprefix("heroku-buildpack-")
    if name in builtin_names():
        return name
    scheme = urlsplit(entry).scheme
    if scheme in ("http", "https", "file", "git", "ssh"):
        return entry
    raise InvalidInput(
        f"{entry!r} is not a buildpack: give a built-in name ({', '.join(builtin_names())}), "
        "a git URL (https://host/repo.git#ref, file:///path#ref) or a tarball URL"
    )


def parse_buildpacks_file(text: str) -> list[str]:
    """A `.buildpacks` file: one buildpack per line; blank lines and `#` lines skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(normalise(line))
        except InvalidInput as exc:
            raise BuildpackError(f".buildpacks line {number}: {exc.message}") from None
    return entries


def resolve(entry: str, scratch: Path, private: Path, allow_private: bool = False) -> Buildpack:
    """The buildpack an entry names, fetched into `scratch` when it is a URL. A `file://`
    URL may point anywhere on the host but into `private` (the platform's own state); a
    network URL may not reach the platform's own network unless `allow_private` (the
    rule and the setting of source URLs: paas.build.url_guard)."""
    for bp in builtin_buildpacks():
        if bp.name == entry:
            return bp
    url, _, ref = entry.partition("#")
    name = Path(urlsplit(url).path).name.removesuffix(".git") or "buildpack"
    for suffix in _TARBALL_SUFFIXES:
        name = name.removesuffix(suffix)
    dest = scratch / f"{len(list(scratch.glob('*')))}-{name}"
    scratch.mkdir(parents=True, exist_ok=True)
    if urlsplit(url).scheme == "file":
        path = Path(urlsplit(url).path).resolve()
        if path == private.resolve() or private.resolve() in path.parents:
            raise BuildpackError(f"{url} is inside the platform's own state; "
                                 "a buildpack must live elsewhere")
    if url.endswith(_TARBALL_SUFFIXES):
        _fetch_tarball(url, dest, allow_private)
    else:
        _fetch_git(url, ref, dest, allow_private)
    if not (dest / "bin" / "compile").is_file():
        raise BuildpackError(f"{entry} is not a buildpack: it has no bin/compile")
    return Buildpack(name, dest)


def _git_pins(url: str, allow_private: bool) -> list[str]:
    """git options that keep a clone of `url` off the platform's own network: for http(s),
    the host's checked address pinned for libcurl (a DNS answer that changes after the
    check changes nothing) and no redirects; for git:// and ssh://, the check alone."""
    parts = urlsplit(url)
    if parts.scheme == "file" or not parts.hostname:
        return []
    default = {"https": 443, "http": 80, "git": 9418, "ssh": 22}.get(parts.scheme, 0)
    try:
        port = parts.port or default
    except ValueError:
        raise BuildpackError(f"{url_guard.display_url(url)} is not a valid URL") from None
    hop = url_guard.Target(url, parts.scheme, parts.hostname, port, "/", None)
    try:
        addresses = url_guard.checked_addresses(hop, allow_private, url_guard.resolve)
    except url_guard.UrlRefused as exc:
        raise BuildpackError(exc.message) from None
    if parts.scheme not in ("http", "https"):
        return []
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    address = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
    return ["-c", f"http.curloptResolve={host}:{port}:{address}",
            "-c", "http.followRedirects=false"]


def _fetch_git(url: str, ref: str, dest: Path, allow_private: bool) -> None:
    clone = subprocess.run(
        ["git", *_git_pins(url, allow_private), "clone", "--quiet", "--no-hardlinks", url,
         str(dest)],
        capture_output=True, text=True, timeout=FETCH_TIMEOUT,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
    )
    if clone.returncode != 0:
        raise BuildpackError(f"could not fetch the buildpack {url}: "
                             f"{_last_line(clone.stderr)}; check that the URL is reachable")
    if ref:
        checkout = subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", ref],
                                  capture_output=True, text=True, timeout=FETCH_TIMEOUT)
        if checkout.returncode != 0:
            raise BuildpackError(f"the buildpack {url} has no ref {ref!r}: "
                                 f"{_last_line(checkout.stderr)}")
    shutil.rmtree(dest / ".git", ignore_errors=True)


def _fetch_tarball(url: str, dest: Path, allow_private: bool) -> None:
    """Each hop checked on the address it connects to, as for source tarballs."""
    shown = url_guard.display_url(url)
    try:
        with url_guard.open_url(url, allow_private=allow_private,
                                timeout=(10, FETCH_TIMEOUT)) as response:
            if response.status != 200:
                raise BuildpackError(f"could not fetch the buildpack {shown}: it answered "
                                     f"{response.status}; check the URL")
            with tarfile.open(fileobj=response, mode="r|*") as archive:
                archive.extractall(dest, filter="data")
    except url_guard.UrlRefused as exc:
        raise BuildpackError(exc.message) from None
    except (urllib3.exceptions.HTTPError, tarfile.TarError, OSError) as exc:
        raise BuildpackError(f"could not fetch the buildpack {shown}: {exc}; "
                             "check that the URL is reachable and is a tarball") from None
    # Tarballs often hold one top-level folder; the buildpack is inside it.
    children = list(dest.iterdir())
    if not (dest / "bin").is_dir() and len(children) == 1 and children[0].is_dir():
        inner = children[0]
        for item in inner.iterdir():
            item.rename(dest / item.name)
        inner.rmdir()


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"
