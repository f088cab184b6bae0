"""static.json and the build step: the app's config checked, its files walked and hashed,
and `--build` (run by bin/compile), which gzips text files beside themselves and writes the
resolved config to .paas/static.json."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

CONFIG_FILE = "static.json"
STATE_DIR = ".paas"
RESOLVED_FORMAT = 1
DEFAULT_ERROR_PAGE = "404.html"

# Gzipped at build time (when that saves bytes) and served gzipped to clients that accept it.
COMPRESSIBLE = frozenset(
    ".html .htm .css .js .mjs .json .map .svg .txt .xml .wasm .webmanifest".split()
)

# static.json keys of Heroku's static buildpack that this one does not implement.
IGNORED_KEYS = {
    "https_only": "HTTPS is the router's business, not the dyno's",
    "routes": "not supported (single-page-app fallbacks): use error_page",
    "proxies": "not supported",
    "canonical_host": "not supported",
    "basic_auth": "not supported",
    "basic_auth_htpasswd_path": "not supported",
    "encoding": "not supported",
}

# Framing and hop-by-hop headers are the server's; static.json may not set them.
SERVER_HEADERS = frozenset(
    "content-length transfer-encoding connection keep-alive content-encoding "
    "content-range date upgrade trailer te".split()
)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


# --- static.json: text to a checked config (no I/O) -------------------------------------


class ConfigError(Exception):
    """static.json cannot be used; the message says what to change."""


@dataclass(frozen=True)
class HeaderRule:
    pattern: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Redirect:
    pattern: str
    url: str
    status: int


@dataclass(frozen=True)
class SiteConfig:
    root: str = "."
    clean_urls: bool = False
    error_page: str | None = None
    headers: tuple[HeaderRule, ...] = ()
    redirects: tuple[Redirect, ...] = ()


def parse_config(text: str) -> tuple[SiteConfig, list[str]]:
    """The config a static.json describes, and warnings about what it asks that is ignored."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"static.json is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError("static.json must hold a JSON object, like {\"root\": \"public\"}")
    warnings = []
    for key in raw:
        if key in IGNORED_KEYS:
            warnings.append(f"static.json: \"{key}\" is ignored ({IGNORED_KEYS[key]})")
        elif key not in ("root", "clean_urls", "error_page", "headers", "redirects"):
            warnings.append(f"static.json: unknown key \"{key}\" is ignored")
    root = _site_path(raw.get("root", "."), "root") or "."
    clean_urls = raw.get("clean_urls", False)
    if not isinstance(clean_urls, bool):
        raise ConfigError("static.json: \"clean_urls\" must be true or false")
    error_page = raw.get("error_page")
    if error_page is not None:
        error_page = _site_path(error_page, "error_page")
    return SiteConfig(
        root=root,
        clean_urls=clean_urls,
        error_page=error_page,
        headers=_header_rules(raw.get("headers", {})),
        redirects=_redirects(raw.get("redirects", {})),
    ), warnings


def _site_path(value: object, key: str) -> str:
    """A relative path that stays inside its base, normalised ("./public/" -> "public")."""
    if not isinstance(value, str):
        raise ConfigError(f"static.json: \"{key}\" must be a string path")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if value.startswith("/") or ".." in parts or "\x00" in value:
        raise ConfigError(
            f"static.json: \"{key}\" is {value!r}; give a path inside the app, like \"public\""
        )
    return "/".join(parts)


def _header_rules(raw: object) -> tuple[HeaderRule, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("static.json: \"headers\" must map paths to {\"Name\": \"value\"}")
    rules = []
    for pattern, fields in raw.items():
        _check_pattern(pattern, "headers")
        if not isinstance(fields, dict):
            raise ConfigError(f"static.json: headers for {pattern!r} must be an object")
        checked = []
        for name, value in fields.items():
            if not _TOKEN.match(name):
                raise ConfigError(f"static.json: {name!r} (headers of {pattern!r}) is not a "
                                  "valid header name")
            if name.lower() in SERVER_HEADERS:
                raise ConfigError(f"static.json: {name} (headers of {pattern!r}) is set by the "
                                  "server and cannot be changed; remove it")
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ConfigError(f"static.json: the value of {name} for {pattern!r} must be "
                                  "a string")
            value = str(value)
            if not value.isprintable() or not value.isascii():
                raise ConfigError(f"static.json: the value of {name} for {pattern!r} must be "
                                  "printable ASCII on one line")
            checked.append((name, value))
        rules.append(HeaderRule(pattern, tuple(checked)))
    return tuple(rules)


def _redirects(raw: object) -> tuple[Redirect, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("static.json: \"redirects\" must map paths to {\"url\": \"/new\"}")
    found = []
    for pattern, target in raw.items():
        _check_pattern(pattern, "redirects")
        if not isinstance(target, dict) or not isinstance(target.get("url"), str) \
                or not target["url"]:
            raise ConfigError(f"static.json: redirect {pattern!r} needs a \"url\" string, "
                              "like {\"url\": \"/new\", \"status\": 301}")
        status = target.get("status", 301)
        if status not in REDIRECT_STATUSES or isinstance(status, bool):
            raise ConfigError(f"static.json: redirect {pattern!r} has status {status!r}; use "
                              f"one of {', '.join(map(str, REDIRECT_STATUSES))}")
        # Percent-encodes what may not appear in a Location header (spaces, non-ASCII, CR/LF).
        url = quote(target["url"], safe="!#$%&'()*+,/:;=?@[]~")
        found.append(Redirect(pattern, url, status))
    return tuple(found)


def _check_pattern(pattern: str, key: str) -> None:
    if not pattern.startswith("/"):
        raise ConfigError(f"static.json: {key} path {pattern!r} must start with /")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A static.json path pattern: `**` matches anything, `*` anything but a slash."""
    parts = re.split(r"(\*\*|\*)", pattern)
    body = "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(body + r"\Z")


# --- the files of a site ------------------------------------------------------------------


def is_hidden(name: str) -> bool:
    """Dotfiles and dot-folders (.git, .paas, .env) are never served; .well-known is."""
    return name.startswith(".") and name != ".well-known"


def private_names(app_dir: Path, root: Path) -> frozenset[str]:
    """Files at the root that are the platform's, not the site's, when the root is the app."""
    if os.path.realpath(root) == os.path.realpath(app_dir):
        return frozenset({CONFIG_FILE, "Procfile"})
    return frozenset()


@dataclass
class SiteTree:
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (rel, path, size)
    dirs: set[str] = field(default_factory=set)
    refused_links: list[str] = field(default_factory=list)


def walk_site(root: Path, private: frozenset[str] = frozenset()) -> SiteTree:
    """Every servable regular file under root. Symlinks count only when they point at a
    visible place inside the root; the others are listed in `refused_links`."""
    real_root = os.path.realpath(root)
    tree = SiteTree()
    tree.dirs.add("")
    seen_dirs = {real_root}
    pending = [("", str(root))]
    while pending:
        rel_dir, fs_dir = pending.pop()
        try:
            entries = sorted(os.scandir(fs_dir), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if is_hidden(entry.name) or rel in private:
                continue
            try:
                if entry.is_symlink() and not _link_stays_inside(entry.path, real_root):
                    tree.refused_links.append(rel)
                    continue
                if entry.is_dir():
                    real = os.path.realpath(entry.path)
                    if real not in seen_dirs:  # a symlinked folder seen twice would loop
                        seen_dirs.add(real)
                        tree.dirs.add(rel)
                        pending.append((rel, entry.path))
                elif entry.is_file():
                    tree.files.append((rel, entry.path, entry.stat().st_size))
            except OSError:
                continue
    tree.files.sort()
    return tree


def _link_stays_inside(path: str, real_root: str) -> bool:
    target = os.path.realpath(path)
    if target == real_root:
        return True
    if not target.startswith(real_root + os.sep):
        return False
    inside = target[len(real_root) + 1:]
    return not any(is_hidden(part) for part in inside.split(os.sep))


def file_hash(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:20]


# --- the build step (bin/compile) -------------------------------------------------------


def load_config(app_dir: Path) -> tuple[SiteConfig, list[str]]:
    """The app's static.json (or the defaults), checked against the app's files."""
    config_path = app_dir / CONFIG_FILE
    if config_path.is_file():
        try:
            text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"static.json cannot be read: {exc}") from None
        config, warnings = parse_config(text)
    else:
        config, warnings = SiteConfig(), []
    root = app_dir / config.root
    if not root.is_dir():
        raise ConfigError(f"static.json: the root folder \"{config.root}\" does not exist in "
                          "the app; create it or fix \"root\"")
    real_app = os.path.realpath(app_dir)
    if os.path.commonpath([real_app, os.path.realpath(root)]) != real_app:
        raise ConfigError(f"static.json: the root \"{config.root}\" leads outside the app")
    error_page = config.error_page
    if error_page is not None and not _is_visible_file(root, error_page):
        raise ConfigError(f"static.json: the error_page \"{error_page}\" is not a file in "
                          f"the root folder \"{config.root}\"")
    if error_page is None and (root / DEFAULT_ERROR_PAGE).is_file():
        error_page = DEFAULT_ERROR_PAGE
    return SiteConfig(config.root, config.clean_urls, error_page, config.headers,
                      config.redirects), warnings


def _is_visible_file(root: Path, rel: str) -> bool:
    return (root / rel).is_file() and not any(is_hidden(p) for p in rel.split("/"))


def gzip_file(path: str) -> int | None:
    """Write `path`.gz (gzip -9, no name or time inside) when it is smaller; its size."""
    target = path + ".gz"
    staging = f"{target}.{os.getpid()}.tmp"
    with open(path, "rb") as src, open(staging, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as gz:
        shutil.copyfileobj(src, gz, 1 << 20)
    size = os.path.getsize(staging)
    if size >= os.path.getsize(path):
        os.unlink(staging)
        return None
    # A replace, not a write through: an app's own foo.js.gz may be a symlink.
    os.replace(staging, target)
    return size


def build(app_dir: Path, out: TextIO) -> int:
    """Check static.json, gzip text files and write .paas/static.json; 1 on a config error."""
    def say(line: str, prefix: str = "       ") -> None:
        # File names that are not UTF-8 are shown escaped rather than failing the build.
        text = line.encode("utf-8", "backslashreplace").decode("utf-8")
        print(prefix + text, file=out, flush=True)

    def warn(line: str) -> None:
        say(line, " !     ")

    try:
        config, warnings = load_config(app_dir)
    except ConfigError as exc:
        warn(str(exc))
        return 1
    try:
        _prepare(app_dir, config, warnings, say, warn)
    except OSError as exc:
        warn(f"cannot prepare the site: {exc}; fix the file's permissions or remove it")
        return 1
    return 0


def _prepare(app_dir: Path, config: SiteConfig, warnings: list[str],
             say: Callable[[str], None], warn: Callable[[str], None]) -> None:
    for warning in warnings:
        warn(warning)
    root = app_dir / config.root
    private = private_names(app_dir, root)
    say(f"Serving {'the app folder' if config.root == '.' else config.root + '/'}"
        + (f"; error page {config.error_page}" if config.error_page else ""))

    gzipped: dict[str, int] = {}
    text_files = 0
    for rel, path, size in walk_site(root, private).files:
        if os.path.splitext(rel)[1].lower() in COMPRESSIBLE and size > 0:
            text_files += 1
            gz_size = gzip_file(path)
            if gz_size is not None:
                gzipped[rel] = gz_size

    tree = walk_site(root, private)  # again: it now holds the .gz files
    for rel in tree.refused_links:
        warn(f"{rel} is a symlink to outside the site (or to a hidden file); not served")
    files = {rel: {"size": size, "etag": file_hash(path), "gzip": rel in gzipped}
             for rel, path, size in tree.files}
    resolved = {
        "format": RESOLVED_FORMAT,
        "root": config.root,
        "clean_urls": config.clean_urls,
        "error_page": config.error_page,
        "headers": [[r.pattern, dict(r.headers)] for r in config.headers],
        "redirects": [[r.pattern, {"url": r.url, "status": r.status}] for r in config.redirects],
        "built_at": int(time.time()),
        "files": files,
    }
    state = app_dir / STATE_DIR
    state.mkdir(exist_ok=True)
    staging = state / f"{CONFIG_FILE}.tmp"
    staging.write_text(json.dumps(resolved, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    staging.replace(state / CONFIG_FILE)

    made = {f"{rel}.gz" for rel in gzipped}
    site_files = [size for rel, _, size in tree.files if rel not in made]
    say(f"{len(site_files)} file{'' if len(site_files) == 1 else 's'}, "
        f"{human(sum(site_files))}")
    gz_total = sum(gzipped.values())
    plain_total = sum(files[rel]["size"] for rel in gzipped)
    if gzipped:
        say(f"Gzipped {len(gzipped)} of {text_files} text files: {human(plain_total)} -> "
            f"{human(gz_total)} (saves {100 - 100 * gz_total // plain_total}%)")
    else:
        say("No text files worth gzipping")


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
