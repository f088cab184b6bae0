"""Read and update ~/.netrc, where git's libcurl (and this CLI) find the API token.

The edit is textual: entries for other hosts, comments and macros are kept as
they were; only the entry for one host is replaced. The file is written
atomically with mode 0600.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from paas.errors import PaasError

_KEYWORDS = frozenset({"machine", "default", "macdef"})
_MACRO_END = re.compile(r"\n[ \t]*\n")


@dataclass
class _Entry:
    """One top-level netrc entry and where its text sits in the file."""

    keyword: str
    start: int
    end: int = 0
    tokens: list[str] = field(default_factory=list)

    @property
    def machine(self) -> str | None:
        return self.tokens[0] if self.keyword == "machine" and self.tokens else None

    def value(self, key: str) -> str | None:
        """The value after `key` ("login", "password", ...) in a machine entry."""
        rest = self.tokens[1:] if self.keyword == "machine" else self.tokens
        for name, val in zip(rest[0::2], rest[1::2], strict=False):
            if name == key:
                return val
        return None


def _unquote(token: str) -> str:
    if len(token) >= 2 and token.startswith('"') and token.endswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _entries(text: str) -> list[_Entry]:
    """The top-level entries of a netrc text, in order."""
    entries: list[_Entry] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "#":
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        start = i
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i = min(i + 1, n)
        else:
            while i < n and not text[i].isspace():
                i += 1
        token = _unquote(text[start:i])
        if token in _KEYWORDS:
            entries.append(_Entry(token, start, i))
            if token == "macdef":
                # A macro's body runs from the next line to the first blank line.
                newline = text.find("\n", i)
                body_end = _MACRO_END.search(text, newline) if newline >= 0 else None
                i = body_end.end() if body_end else n
                entries[-1].end = i
            continue
        if entries:
            entries[-1].tokens.append(token)
            entries[-1].end = i
    return entries


def find_password(text: str, host: str) -> str | None:
    """The password of the `machine HOST` entry, if there is one."""
    for entry in _entries(text):
        if entry.machine == host:
            return entry.value("password")
    return None


def _check_token(word: str, what: str) -> None:
    if not word or any(c.isspace() or c == '"' for c in word) or word.startswith("#"):
        raise PaasError(f"the {what} cannot be written to ~/.netrc; it contains spaces or quotes")


def with_entry(text: str, host: str, login: str, password: str) -> str:
    """`text` with the entry for `host` replaced by (or extended with) the given one."""
    for word, what in ((host, "host name"), (login, "login"), (password, "token")):
        _check_token(word, what)
    line = f"machine {host} login {login} password {password}\n"
    entries = _entries(text)
    matching = [e for e in entries if e.machine == host]
    if matching:
        out, pos = [], 0
        for index, entry in enumerate(matching):
            end = entry.end
            # Take the rest of the entry's last line with it, so no blank stub remains.
            while end < len(text) and text[end] in " \t":
                end += 1
            if end < len(text) and text[end] == "\n":
                end += 1
            out.append(text[pos : entry.start])
            if index == 0:
                out.append(line)
            pos = end
        out.append(text[pos:])
        return "".join(out)
    default = next((e for e in entries if e.keyword == "default"), None)
    if default is not None:
        # `default` must stay last: curl stops looking at it.
        return text[: default.start] + line + text[default.start :]
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line


def netrc_path() -> Path:
    return Path.home() / ".netrc"


def read_password(host: str, path: Path | None = None) -> str | None:
    """The token stored for `host` in ~/.netrc, if any."""
    path = path or netrc_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PaasError(f"cannot read {path}: {exc}; fix or remove the file") from exc
    return find_password(text, host)


def store_password(host: str, password: str, login: str = "paas", path: Path | None = None) -> Path:
    """Write `machine HOST login LOGIN password PASSWORD` into ~/.netrc (mode 0600)."""
    path = path or netrc_path()
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise PaasError(f"cannot read {path}: {exc}; fix or remove the file") from exc
    write_private_file(path, with_entry(text, host, login, password))
    return path


def write_private_file(path: Path, text: str) -> None:
    """Replace `path` atomically by a file readable only by its owner."""
    target = path.resolve()  # keep a symlinked dotfile a symlink
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise PaasError(f"cannot write {path}: {exc.strerror or exc}") from exc
