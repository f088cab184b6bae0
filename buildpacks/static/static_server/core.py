"""The pure part of the server: a site in memory (from .paas/static.json, or the app's own
static.json), and the answer to each request: parsing its head, routing, headers,
conditional and range requests, redirects and error pages. No I/O but loading the site."""

from __future__ import annotations

import email.utils
import json
import mimetypes
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from .config import (
    CONFIG_FILE,
    STATE_DIR,
    HeaderRule,
    Redirect,
    SiteConfig,
    file_hash,
    glob_regex,
    load_config,
    private_names,
    walk_site,
)

# --- a site in memory, and the answer to each request (no I/O) -------------------------

_MIME = mimetypes.MimeTypes()  # the built-in table only, not the host's /etc/mime.types
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".cjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".map": "application/json",
    ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml",
    ".wasm": "application/wasm", ".webp": "image/webp", ".avif": "image/avif",
    ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
    ".ico": "image/x-icon", ".md": "text/markdown; charset=utf-8",
    ".gz": "application/gzip", ".tgz": "application/gzip", ".br": "application/octet-stream",
    ".zip": "application/zip", ".xml": "application/xml", ".mp4": "video/mp4",
    ".webm": "video/webm", ".txt": "text/plain; charset=utf-8",
}


def content_type(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    known = _CONTENT_TYPES.get(ext)
    if known is None:
        # By the last suffix only: mimetypes would call x.tar.gz "application/x-tar".
        known = _MIME.types_map[True].get(ext) or "application/octet-stream"
        if known.startswith("text/"):
            known += "; charset=utf-8"
    return known


def cache_control(ctype: str) -> str:
    """HTML is revalidated every time (its URL never changes); assets may be kept an hour."""
    return "no-cache" if ctype.startswith("text/html") else "public, max-age=3600"


@dataclass(eq=False)
class StaticFile:
    rel: str
    path: str
    size: int
    etag: bytes  # quoted, as sent
    ctype: str
    gzip_path: str | None = None
    gzip_size: int = 0

    @property
    def gzip_etag(self) -> bytes:
        return self.etag[:-1] + b'-gz"'


class Route:
    """What a URL path leads to: a file with its response headers, or a redirect."""

    __slots__ = ("file", "status", "location", "plain", "gzipped", "not_modified",
                 "not_modified_gz")

    def __init__(self, file: StaticFile | None = None, status: int = 200,
                 location: str = "", fields: dict[str, tuple[str, str]] | None = None) -> None:
        self.file = file
        self.status = status
        self.location = location
        if file is None or fields is None:
            return
        # Header blocks rendered once per route, so a hit costs a few concatenations.
        vary = {"vary": ("Vary", "Accept-Encoding")} if file.gzip_path else {}
        base = render(fields | vary)
        self.plain = b"Content-Length: %d\r\nETag: %s\r\n%s" % (file.size, file.etag, base)
        self.gzipped = b"Content-Length: %d\r\nContent-Encoding: gzip\r\nETag: %s\r\n%s" % (
            file.gzip_size, file.gzip_etag, base)
        revalidated = {k: v for k, v in (fields | vary).items()
                       if k not in ("content-type", "accept-ranges", "x-content-type-options")}
        self.not_modified = b"ETag: %s\r\n%s" % (file.etag, render(revalidated))
        self.not_modified_gz = b"ETag: %s\r\n%s" % (file.gzip_etag, render(revalidated))


def render(fields: dict[str, tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in fields.values())


@dataclass
class Reply:
    """A response for the I/O layer: head (without Date, Connection and the blank line), and
    a body that is bytes or a byte range of a file (variant `gzipped`)."""

    status: int
    head: bytes
    body: bytes = b""
    file: StaticFile | None = None
    gzipped: bool = False
    offset: int = 0
    count: int = 0
    close: bool = False


REASONS = {200: "OK", 206: "Partial Content", 301: "Moved Permanently", 302: "Found",
           303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
           308: "Permanent Redirect", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
           416: "Range Not Satisfiable", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}
STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason.encode())
                for code, reason in REASONS.items()}
NOT_FOUND_PAGE = (b"<!doctype html>\n<title>404 Not Found</title>\n"
                  b"<h1>Not Found</h1>\n<p>There is no page at this address.</p>\n")
UNSATISFIABLE = (-1, -1)
_GZIP_TOKEN = re.compile(r"\s*(x-gzip|gzip|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*\Z", re.I)


def simple_reply(status: int, body: bytes = b"", extra: bytes = b"",
                 ctype: bytes = b"text/plain; charset=utf-8", close: bool = False) -> Reply:
    head = STATUS_LINES[status] + b"Content-Length: %d\r\n" % len(body) + extra
    if body:
        head += b"Content-Type: %s\r\n" % ctype
    return Reply(status, head, body, close=close)


def decode_path(raw: bytes) -> str:
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8", "surrogateescape")


def site_relative(path: str) -> tuple[str, bool] | None:
    """The path under the root that a decoded URL path names, and whether it ends in "/";
    None when it has a `..`, `.` or hidden segment, or a NUL: such paths are never served."""
    if "\x00" in path:
        return None
    parts = []
    for segment in path.split("/"):
        if not segment:
            continue
        if segment[0] == "." and segment != ".well-known":
            return None
        parts.append(segment)
    return "/".join(parts), path.endswith("/")


def accepts_gzip(value: bytes) -> bool:
    """True when an Accept-Encoding value allows gzip (by name or `*`) with q > 0."""
    star = None
    for part in value.decode("latin-1").split(","):
        match = _GZIP_TOKEN.match(part)
        if match is None:
            continue
        try:
            q = float(match[2]) if match[2] else 1.0
        except ValueError:
            q = 0.0
        if match[1] == "*":
            star = q
        else:
            return q > 0
    return star is not None and star > 0


def parse_range(value: bytes, size: int) -> tuple[int, int] | None:
    """One `bytes=` range as (first, last) byte, UNSATISFIABLE, or None to ignore the header
    (malformed, or several ranges, which are answered with the whole file)."""
    unit, _, spec = value.decode("latin-1").strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) \
            or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:  # the last N bytes
        n = int(last)
        return (max(size - n, 0), size - 1) if n and size else UNSATISFIABLE
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    return (start, end) if start < size else UNSATISFIABLE


class Site:
    """The files of a site, its rules, and how a request is answered."""

    MAX_ROUTES = 8192

    def __init__(self, config: SiteConfig, files: dict[str, StaticFile], dirs: set[str],
                 last_modified: float) -> None:
        self.config = config
        self.files = files
        self.dirs = dirs
        self.last_modified = email.utils.formatdate(last_modified, usegmt=True).encode()
        self.header_rules = [(glob_regex(r.pattern), r.headers) for r in config.headers]
        self.redirects = [(glob_regex(r.pattern), r.url, r.status) for r in config.redirects]
        self.error_file = files.get(config.error_page) if config.error_page else None
        self.routes: dict[bytes, Route] = {}
        self._gzip_ok: dict[bytes, bool] = {}
        self.not_found = self._not_found_replies()

    # --- which route ---------------------------------------------------------------
    def route(self, raw_path: bytes) -> Route | None:
        route = self.routes.get(raw_path)
        if route is None:
            route = self._find(raw_path)
            if route is not None:
                if len(self.routes) >= self.MAX_ROUTES:
                    self.routes.clear()
                self.routes[raw_path] = route
        return route

    def _find(self, raw_path: bytes) -> Route | None:
        found = site_relative(decode_path(raw_path))
        if found is None:
            return None
        rel, trailing = found
        url = "/" + rel + ("/" if trailing and rel else "")
        for regex, location, status in self.redirects:
            if regex.match(url):
                return Route(status=status, location=location)
        file = None
        if trailing or not rel:
            file = self.files.get(f"{rel}/index.html" if rel else "index.html")
        else:
            file = self.files.get(rel)
            if file is None and self.config.clean_urls:
                file = self.files.get(rel + ".html")
            if file is None and rel in self.dirs and f"{rel}/index.html" in self.files:
                # The slash makes the index page's relative links work.
                return Route(status=301, location=quote(f"/{rel}/".encode("utf-8",
                                                                         "surrogateescape")))
        if file is None:
            return None
        return Route(file, fields=self._fields(file, url))

    def _fields(self, file: StaticFile, url: str) -> dict[str, tuple[str, str]]:
        fields = {
            "content-type": ("Content-Type", file.ctype),
            "last-modified": ("Last-Modified", self.last_modified.decode()),
            "cache-control": ("Cache-Control", cache_control(file.ctype)),
            "accept-ranges": ("Accept-Ranges", "bytes"),
            "x-content-type-options": ("X-Content-Type-Options", "nosniff"),
        }
        file_url = "/" + file.rel
        for regex, headers in self.header_rules:  # later rules win
            if regex.match(url) or regex.match(file_url):
                fields.update((name.lower(), (name, value)) for name, value in headers)
        return fields

    # --- the answer ----------------------------------------------------------------
    def respond(self, method: bytes, target: bytes, headers: dict[bytes, bytes]) -> Reply:
        if method not in (b"GET", b"HEAD"):
            return simple_reply(405, b"Only GET and HEAD are supported.\n",
                                b"Allow: GET, HEAD\r\n")
        path, _, query = target.partition(b"?")
        route = self.route(path)
        if route is None:
            return self._not_found(headers)
        if route.file is None:
            location = route.location
            if query and "?" not in location:
                location += "?" + query.decode("latin-1")
            return simple_reply(route.status,
                                extra=f"Location: {location}\r\n".encode("latin-1"))
        file = route.file
        inm = headers.get(b"if-none-match")
        gz = file.gzip_path is not None and self.accepts_gzip(headers.get(b"accept-encoding"))
        if inm is not None:
            if self._etag_matches(inm, file):
                return Reply(304, STATUS_LINES[304] + (route.not_modified_gz if gz
                                                       else route.not_modified))
        elif headers.get(b"if-modified-since", b"").strip() == self.last_modified:
            # Exact match only: a rollback brings back an earlier build time.
            return Reply(304, STATUS_LINES[304] + (route.not_modified_gz if gz
                                                   else route.not_modified))
        byte_range = headers.get(b"range")
        if byte_range is not None and method == b"GET":
            reply = self._partial(route, byte_range, headers.get(b"if-range"))
            if reply is not None:
                return reply
        if gz:
            return Reply(200, STATUS_LINES[200] + route.gzipped, file=file, gzipped=True,
                         count=0 if method == b"HEAD" else file.gzip_size)
        return Reply(200, STATUS_LINES[200] + route.plain, file=file,
                     count=0 if method == b"HEAD" else file.size)

    def _partial(self, route: Route, value: bytes, if_range: bytes | None) -> Reply | None:
        file = route.file
        assert file is not None
        if if_range is not None and if_range.strip() not in (file.etag, self.last_modified):
            return None
        found = parse_range(value, file.size)
        if found is None:
            return None
        if found == UNSATISFIABLE:
            return simple_reply(416, extra=b"Content-Range: bytes */%d\r\n" % file.size)
        first, last = found
        head = route.plain.replace(b"Content-Length: %d\r\n" % file.size,
                                   b"Content-Length: %d\r\nContent-Range: bytes %d-%d/%d\r\n"
                                   % (last - first + 1, first, last, file.size), 1)
        return Reply(206, STATUS_LINES[206] + head, file=file, offset=first,
                     count=last - first + 1)

    def _etag_matches(self, value: bytes, file: StaticFile) -> bool:
        if value.strip() == b"*":
            return True
        tags = (tag.strip().removeprefix(b"W/") for tag in value.split(b","))
        return any(tag in (file.etag, file.gzip_etag) for tag in tags)

    def accepts_gzip(self, value: bytes | None) -> bool:
        if not value:
            return False
        known = self._gzip_ok.get(value)
        if known is None:
            if len(self._gzip_ok) > 256:
                self._gzip_ok.clear()
            known = self._gzip_ok[value] = accepts_gzip(value)
        return known

    def _not_found_replies(self) -> tuple[Reply, Reply]:
        """The 404 answer for a client without gzip and for one with it."""
        page = self.error_file
        if page is None:
            reply = simple_reply(404, NOT_FOUND_PAGE, b"Cache-Control: no-cache\r\n",
                                 b"text/html; charset=utf-8")
            return reply, reply
        replies = []
        for gz in (False, True):
            if gz and page.gzip_path is None:
                replies.append(replies[0])
                continue
            size = page.gzip_size if gz else page.size
            head = (STATUS_LINES[404] + b"Content-Length: %d\r\n" % size
                    + (b"Content-Encoding: gzip\r\n" if gz else b"")
                    + f"Content-Type: {page.ctype}\r\nCache-Control: no-cache\r\n".encode()
                    + (b"Vary: Accept-Encoding\r\n" if page.gzip_path else b""))
            replies.append(Reply(404, head, file=page, gzipped=gz, count=size))
        return replies[0], replies[1]

    def _not_found(self, headers: dict[bytes, bytes]) -> Reply:
        return self.not_found[self.accepts_gzip(headers.get(b"accept-encoding"))]


def load_site(app_dir: Path) -> Site:
    """The site of the app: .paas/static.json written at build time, or (run outside a
    build, e.g. locally) the app's static.json read now and every file hashed now."""
    resolved_path = app_dir / STATE_DIR / CONFIG_FILE
    if resolved_path.is_file():
        resolved = json.loads(resolved_path.read_text(encoding="utf-8"))
        config = SiteConfig(
            root=resolved["root"],
            clean_urls=resolved["clean_urls"],
            error_page=resolved["error_page"],
            headers=tuple(HeaderRule(p, tuple(h.items())) for p, h in resolved["headers"]),
            redirects=tuple(Redirect(p, r["url"], r["status"]) for p, r in resolved["redirects"]),
        )
        manifest, built_at = resolved["files"], resolved["built_at"]
    else:
        config, _ = load_config(app_dir)
        manifest, built_at = {}, time.time()
    root = app_dir / config.root
    tree = walk_site(root, private_names(app_dir, root))
    sizes = {rel: size for rel, _, size in tree.files}
    files = {}
    for rel, path, size in tree.files:
        known = manifest.get(rel)
        # The slug does not change after the build, but a size mismatch means it did.
        etag = known["etag"] if known and known["size"] == size else file_hash(path)
        file = StaticFile(rel, path, size, b'"%s"' % etag.encode(), content_type(rel))
        gz_rel = rel + ".gz"
        if known and known.get("gzip") and gz_rel in sizes:
            file.gzip_path, file.gzip_size = path + ".gz", sizes[gz_rel]
        files[rel] = file
    return Site(config, files, tree.dirs, built_at)


# --- a request's head -----------------------------------------------------------------

_CONTROL = re.compile(rb"[\x00-\x20\x7f]")


class BadRequest(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def parse_head(head: bytes) -> tuple[bytes, bytes, bool, dict[bytes, bytes]]:
    """(method, target, is HTTP/1.1, headers with lower-case names) of a request head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise BadRequest(400)
    method, target, version = parts
    if version == b"HTTP/1.1":
        http11 = True
    elif version == b"HTTP/1.0":
        http11 = False
    else:
        raise BadRequest(505 if version.startswith(b"HTTP/") else 400)
    if _CONTROL.search(target):
        raise BadRequest(400)
    if not target.startswith(b"/"):
        scheme, sep, rest = target.partition(b"://")  # absolute-form, from a proxy
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise BadRequest(400)
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400)
        name = name.lower()
        value = value.strip(b" \t")
        if name in headers:
            if name in (b"content-length", b"host"):
                raise BadRequest(400)
            headers[name] += b", " + value
        else:
            headers[name] = value
    if http11 and b"host" not in headers:
        raise BadRequest(400)
    return method, target, http11, headers
