"""Reads a Python app's dependency declarations for bin/compile (stdlib only, Python 3.11+).

The functions turn parsed TOML/JSON/INI into requirement lines and never touch the filesystem;
`main` is the thin shell bin/compile runs with the stack's python3:

    dependency_sources.py project PYPROJECT UV_LOCK|"" POETRY_LOCK|""  -> key=value lines
    dependency_sources.py poetry PYPROJECT [POETRY_LOCK] BASE_DIR OUT_REQS OUT_CONSTRAINTS
    dependency_sources.py pipfile-lock PIPFILE_LOCK BASE_DIR OUT_REQS
    dependency_sources.py pipfile PIPFILE BASE_DIR OUT_REQS
    dependency_sources.py setup-cfg SETUP_CFG OUT_REQS

Warnings go to stderr; a declaration that cannot be turned into requirements exits 1 with
a message saying what to change.
"""

from __future__ import annotations

import configparser
import json
import re
import sys
import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Any

PYPI_URLS = ("https://pypi.org/simple", "https://pypi.python.org/simple")

_OPERATOR = r"(===|==|!=|<=|>=|~=|<|>|=|\^|~)"
_RELEASE = re.compile(r"^(\d+(?:\.\d+)*)(.*)$")


class UnsupportedDeclaration(ValueError):
    """A declaration a requirement line cannot express; the message says what to change."""


# --- poetry version constraints --------------------------------------------------------------


def _release_parts(version: str) -> tuple[list[int], str]:
    match = _RELEASE.match(version)
    if not match:
        raise UnsupportedDeclaration(f"{version!r} is not a version poetry would accept")
    return [int(part) for part in match.group(1).split(".")], match.group(2)


def _bumped(parts: list[int], index: int) -> str:
    upper = parts[:index] + [parts[index] + 1] + [0] * (len(parts) - index - 1)
    return ".".join(str(part) for part in upper)


def caret_range(version: str) -> str:
    """Poetry's `^version`: up to the next change of the first non-zero part.

    ^1.2.3 -> >=1.2.3,<2.0.0   ^0.2.3 -> >=0.2.3,<0.3.0   ^0.0.3 -> >=0.0.3,<0.0.4
    ^1.2 -> >=1.2,<2.0         ^0 -> >=0,<1
    """
    parts, _ = _release_parts(version)
    nonzero = [i for i, part in enumerate(parts) if part != 0]
    index = nonzero[0] if nonzero else len(parts) - 1
    return f">={version},<{_bumped(parts, index)}"


def tilde_range(version: str) -> str:
    """Poetry's `~version`: ~1.2.3 -> >=1.2.3,<1.3.0, ~1.2 -> >=1.2,<1.3, ~1 -> >=1,<2."""
    parts, _ = _release_parts(version)
    index = 1 if len(parts) >= 2 else 0
    return f">={version},<{_bumped(parts, index)}"


def _all_of(text: str) -> list[str]:
    """One poetry constraint without `||` as PEP 440 specifiers (all must hold)."""
    # ">= 1.2" -> ">=1.2", so clauses can be split on spaces as well as commas.
    text = re.sub(_OPERATOR + r"\s+", r"\1", text.strip())
    specifiers = []
    for clause in re.split(r"[,\s]+", text):
        if clause in ("", "*"):
            continue
        match = re.match(_OPERATOR + r"?(.+)$", clause)
        assert match is not None  # clause is non-empty
        operator, version = match.group(1) or "", match.group(2)
        if operator == "^":
            specifiers.extend(caret_range(version).split(","))
        elif operator == "~":
            specifiers.extend(tilde_range(version).split(","))
        elif operator in ("", "="):
            specifiers.append(f"=={version}")
        else:
            specifiers.append(f"{operator}{version}")
    return specifiers


def _alternatives(text: str) -> list[str]:
    """A constraint split at `||` (poetry also accepts a single `|`)."""
    return re.split(r"\s*\|\|?\s*", text.strip())


def poetry_constraint(text: str) -> str:
    """A poetry version constraint as a PEP 440 specifier set ("" for any version).

    `*` -> "", `1.2.3` -> ==1.2.3, `^1.2` -> >=1.2,<2.0, `~1.2` -> >=1.2,<1.3; PEP 440
    clauses pass through; clauses may be separated by commas or spaces (both mean "and").
    Alternatives joined by `||` become the one range they cover together, less the gaps
    between them: `^1.0 || ^2.0` -> >=1.0,<3.0, `<1.3 || >=1.5` -> !=1.3.*,!=1.4.*.
    """
    alternatives = [_all_of(part) for part in _alternatives(text)]
    if len(alternatives) == 1:
        return ",".join(alternatives[0])
    return ",".join(_union_specifiers(text, alternatives))


def python_marker(constraint: str) -> str:
    """A poetry `python = "..."` constraint as an environment marker ("" for any Python)."""
    alternatives = []
    for part in _alternatives(constraint):
        clauses = []
        for specifier in _all_of(part):
            match = re.match(r"(===|==|!=|<=|>=|~=|<|>)(.+)$", specifier)
            assert match is not None
            operator, version = match.groups()
            # python_version is major.minor only; python_full_version compares whole versions.
            short = operator in ("==", "!=") and version.count(".") == 1
            variable = "python_version" if short else "python_full_version"
            clauses.append(f'{variable} {operator} "{version}"')
        if not clauses:
            return ""  # one alternative allows any Python
        alternatives.append(" and ".join(clauses))
    if len(alternatives) == 1:
        return alternatives[0]
    return " or ".join(f"({marker})" if " and " in marker else marker for marker in alternatives)


# --- either/or constraints as one specifier set ------------------------------------------------
# A requirement's specifiers must all hold, so `A || B` is written as the range from A's
# lowest to B's highest version with the versions between them excluded by `!=`. That
# works when the gap is one version or whole release series (`!=1.3.*`); any other gap
# cannot be written, and the constraint is refused rather than widened.

_PEP440 = re.compile(
    r"^v?(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre>a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?P<pre_n>\d*))?"
    r"(?:-(?P<post_implicit>\d+)|[-_.]?(?:post|rev|r)[-_.]?(?P<post_n>\d*))?"
    r"(?:[-_.]?(?P<dev>dev)[-_.]?(?P<dev_n>\d*))?$",
    re.IGNORECASE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def _sort_key(version: str) -> tuple:
    """PEP 440 ordering of a public version (as packaging.version orders them)."""
    match = _PEP440.match(version)
    if not match:
        raise UnsupportedDeclaration(f"{version!r} is not a version poetry would accept")
    release = [int(part) for part in match["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    post_text = match["post_implicit"] or match["post_n"]
    has_post = match["post_implicit"] is not None or match["post_n"] is not None
    post = int(post_text or 0) if has_post else -1
    dev = (0, int(match["dev_n"] or 0)) if match["dev"] else (1, 0)
    if match["pre"]:
        pre: tuple[int, int, int] = (1, _PRE_RANK[match["pre"].lower()], int(match["pre_n"] or 0))
    elif not has_post and match["dev"]:
        pre = (0, 0, 0)  # 1.0.dev1 comes before 1.0a1
    else:
        pre = (2, 0, 0)
    return (tuple(release), pre, post, dev)


def _plain_release(version: str) -> tuple[int, ...] | None:
    """The release numbers of a version without pre/post/dev parts, else None."""
    if not re.fullmatch(r"\d+(?:\.\d+)*", version):
        return None
    return tuple(int(part) for part in version.split("."))


class _Bound:
    """One end of a range: a version (None: unbounded) and whether it is included."""

    def __init__(self, version: str | None, inclusive: bool) -> None:
        self.version = version
        self.inclusive = inclusive
        self.key = _sort_key(version) if version is not None else None


def _as_range(specifiers: list[str]) -> tuple[_Bound, _Bound]:
    """The range of versions all these specifiers allow (without `!=`)."""
    lower, upper = _Bound(None, False), _Bound(None, False)

    def raise_lower(bound: _Bound) -> None:
        nonlocal lower
        if lower.key is None or bound.key > lower.key or (
            bound.key == lower.key and not bound.inclusive
        ):
            lower = bound

    def cut_upper(bound: _Bound) -> None:
        nonlocal upper
        if upper.key is None or bound.key < upper.key or (
            bound.key == upper.key and not bound.inclusive
        ):
            upper = bound

    for specifier in specifiers:
        match = re.match(r"(===|==|!=|<=|>=|~=|<|>)(.+)$", specifier)
        assert match is not None
        operator, version = match.groups()
        if operator in ("!=", "==="):
            raise UnsupportedDeclaration(
                f"{operator}{version} cannot be combined with `||` alternatives; "
                "narrow the constraint to one range"
            )
        if operator == "==" and version.endswith(".*"):
            prefix = _plain_release(version[:-2])
            if prefix is None:
                raise UnsupportedDeclaration(f"{version!r} is not a version poetry would accept")
            raise_lower(_Bound(version[:-2], True))
            cut_upper(_Bound(_bumped(list(prefix), len(prefix) - 1), False))
        elif operator == "==":
            raise_lower(_Bound(version, True))
            cut_upper(_Bound(version, True))
        elif operator == "~=":
            parts, _ = _release_parts(version)
            if len(parts) < 2:
                raise UnsupportedDeclaration(f"~={version} needs at least two version parts")
            raise_lower(_Bound(version, True))
            cut_upper(_Bound(_bumped(parts[:-1], len(parts) - 2), False))
        elif operator in (">=", ">"):
            raise_lower(_Bound(version, operator == ">="))
        else:
            cut_upper(_Bound(version, operator == "<="))
    return lower, upper


def _gap_exclusions(upper: _Bound, lower: _Bound) -> list[str] | None:
    """`!=` specifiers for the versions between two ranges, None if they cannot say it."""
    if upper.version is None or lower.version is None:
        return None
    if not upper.inclusive and not lower.inclusive and upper.key == lower.key:
        return [f"!={upper.version}"]  # <1.5 || >1.5
    start, end = _plain_release(upper.version), _plain_release(lower.version)
    if upper.inclusive or not lower.inclusive or start is None or end is None:
        return None
    # [start, end) is whole release series when both differ only in one part, and
    # every part after it is zero: [2.0, 3.0) is 2.*; [1.3, 1.6) is 1.3.*, 1.4.*, 1.5.*.
    width = max(len(start), len(end))
    start = start + (0,) * (width - len(start))
    end = end + (0,) * (width - len(end))
    for index in range(width):
        if start[:index] != end[:index]:
            return None
        if any(start[index + 1:]) or any(end[index + 1:]):
            continue
        if not 0 < end[index] - start[index] <= 20:
            return None
        series = [start[:index] + (number,) for number in range(start[index], end[index])]
        return ["!=" + ".".join(str(part) for part in s) + ".*" for s in series]
    return None


def _union_specifiers(text: str, alternatives: list[list[str]]) -> list[str]:
    if any(not specifiers for specifiers in alternatives):
        return []  # one alternative allows any version
    ranges = sorted(
        (_as_range(specifiers) for specifiers in alternatives),
        key=lambda r: (r[0].key is not None, r[0].key or (), not r[0].inclusive),
    )
    merged = [list(ranges[0])]
    for lower, upper in ranges[1:]:
        last = merged[-1]
        touches = last[1].key is None or lower.key is None or lower.key < last[1].key or (
            lower.key == last[1].key and (lower.inclusive or last[1].inclusive)
        )
        if touches:
            if last[1].key is not None and (
                upper.key is None or upper.key > last[1].key
                or (upper.key == last[1].key and upper.inclusive)
            ):
                last[1] = upper
        else:
            merged.append([lower, upper])
    specifiers = []
    first, last = merged[0][0], merged[-1][1]
    if first.version is not None and first.version == last.version:
        return [f"=={first.version}"]
    if first.version is not None:
        specifiers.append((">=" if first.inclusive else ">") + first.version)
    if last.version is not None:
        specifiers.append(("<=" if last.inclusive else "<") + last.version)
    for (_, upper), (lower, _) in pairwise(merged):
        exclusions = _gap_exclusions(upper, lower)
        if exclusions is None:
            raise UnsupportedDeclaration(
                f"the constraint {text!r} allows versions on both sides of a gap that a "
                "requirement cannot leave out; narrow it to one range, or to ranges that "
                "leave out one version or whole release series (such as `^1.0 || ^3.0`)"
            )
        specifiers.extend(exclusions)
    return specifiers


def _join_markers(*markers: str) -> str:
    present = [m.strip() for m in markers if m and m.strip()]
    if len(present) <= 1:
        return present[0] if present else ""
    return " and ".join(f"({m})" for m in present)


def _extras(names: list[str] | None) -> str:
    return f"[{','.join(names)}]" if names else ""


def _local_url(base: Path, path: str) -> str:
    return (base / path).resolve().as_uri()


def _git_url(url: str, ref: str | None, subdirectory: str | None) -> str:
    if not url.startswith("git+"):
        url = "git+" + url
    if ref:
        url += "@" + ref
    if subdirectory:
        url += "#subdirectory=" + subdirectory
    return url


def poetry_dependency_lines(
    name: str, spec: Any, base: Path, git_pins: dict[str, str], warnings: list[str]
) -> list[str]:
    """Requirement lines for one entry of [tool.poetry.dependencies]."""
    if isinstance(spec, list):  # several constraints, each for its own Python/platform
        return [
            line for item in spec
            for line in poetry_dependency_lines(name, item, base, git_pins, warnings)
        ]
    if isinstance(spec, str):
        spec = {"version": spec}
    if not isinstance(spec, dict):
        raise UnsupportedDeclaration(
            f"the poetry dependency {name!r} is neither a version string nor a table"
        )
    if spec.get("optional"):
        # Optional dependencies belong to the project's own extras, which nothing asks for.
        return []
    head = name + _extras(spec.get("extras"))
    if "git" in spec:
        ref = git_pins.get(name.lower()) or spec.get("rev") or spec.get("tag") or spec.get("branch")
        requirement = f"{head} @ {_git_url(spec['git'], ref, spec.get('subdirectory'))}"
    elif "path" in spec:
        if spec.get("develop"):
            warnings.append(f"{name}: installed as a regular package (develop = true would link "
                            "to the build directory, which dynos do not have)")
        requirement = f"{head} @ {_local_url(base, spec['path'])}"
    elif "url" in spec:
        requirement = f"{head} @ {spec['url']}"
    else:
        requirement = head + poetry_constraint(str(spec.get("version", "*")))
    platform = spec.get("platform")
    marker = _join_markers(
        python_marker(str(spec["python"])) if "python" in spec else "",
        f'sys_platform == "{platform}"' if platform else "",
        spec.get("markers", ""),
    )
    return [f"{requirement} ; {marker}" if marker else requirement]


def _index_lines(sources: list[tuple[str, bool]]) -> list[str]:
    """--index-url/--extra-index-url lines for (url, is_primary) pairs, PyPI left implicit.

    PyPI is left out so an index set by config var (UV_INDEX_URL) still applies to it.
    """
    lines = []
    primary_taken = False
    for url, primary in sources:
        if url.rstrip("/") in PYPI_URLS:
            primary_taken = primary_taken or primary
            continue
        if primary and not primary_taken:
            lines.append(f"--index-url {url}")
            primary_taken = True
        else:
            lines.append(f"--extra-index-url {url}")
    return lines


def poetry_requirements(
    pyproject: dict[str, Any], lock: dict[str, Any] | None, base: Path
) -> tuple[list[str], list[str], list[str]]:
    """(requirement lines, constraint lines, warnings) for a poetry project's main group.

    With a poetry.lock, every package it pins becomes a constraint (`name==version`):
    uv resolves the main group alone, within the lock's versions, so dev-only packages in
    the lock are not installed. [project].dependencies (Poetry 2) come first when present.
    """
    poetry = pyproject.get("tool", {}).get("poetry", {})
    warnings: list[str] = []
    constraints: list[str] = []
    git_pins: dict[str, str] = {}
    if lock is not None:
        seen: dict[str, int] = {}
        for package in lock.get("package", []):
            seen[package["name"].lower()] = seen.get(package["name"].lower(), 0) + 1
        for package in lock.get("package", []):
            name, source = package["name"], package.get("source", {})
            kind = source.get("type")
            if kind == "git" and source.get("resolved_reference"):
                git_pins[name.lower()] = source["resolved_reference"]
            # A name locked twice has one version per Python/platform: let uv choose.
            if kind in (None, "legacy") and seen[name.lower()] == 1:
                constraints.append(f"{name}=={package['version']}")

    sources = [
        (source["url"], source.get("priority", "primary") in ("primary", "default"))
        for source in poetry.get("source", [])
        if source.get("url")
    ]
    lines = _index_lines(sources)
    project_deps = pyproject.get("project", {}).get("dependencies")
    if project_deps:
        lines.extend(project_deps)
    else:
        for name, spec in poetry.get("dependencies", {}).items():
            if name.lower() == "python":
                continue
            lines.extend(poetry_dependency_lines(name, spec, base, git_pins, warnings))
    return lines, sorted(constraints, key=str.lower), warnings


# --- Pipfile.lock and Pipfile --------------------------------------------------------------------

# Pipfile entries may name environment markers as keys: sys_platform = "== 'linux'".
_MARKER_KEYS = (
    "os_name", "sys_platform", "platform_machine", "platform_python_implementation",
    "platform_release", "platform_system", "platform_version", "python_version",
    "python_full_version", "implementation_name", "implementation_version",
)


def _pipfile_line(name: str, entry: Any, base: Path, warnings: list[str]) -> str:
    """The requirement line for one entry of a Pipfile's [packages] or a lock's "default"."""
    if isinstance(entry, str):
        entry = {"version": entry}
    head = name + _extras(entry.get("extras"))
    if entry.get("editable"):
        warnings.append(f"{name}: installed as a regular package (an editable install would "
                        "link to the build directory, which dynos do not have)")
    if "git" in entry:
        url = _git_url(entry["git"], entry.get("ref"), entry.get("subdirectory"))
        requirement = f"{head} @ {url}"
    elif "file" in entry:
        target = entry["file"]
        if "://" not in target:
            target = _local_url(base, target)
        requirement = f"{head} @ {target}"
    elif "path" in entry:
        requirement = f"{head} @ {_local_url(base, entry['path'])}"
    else:
        version = str(entry.get("version", "*")).strip()
        requirement = head + ("" if version == "*" else version)
    markers = [str(entry["markers"])] if entry.get("markers") else []
    markers += [f"{key} {str(entry[key]).strip()}" for key in _MARKER_KEYS if key in entry]
    marker = _join_markers(*markers)
    return f"{requirement} ; {marker}" if marker else requirement


def pipfile_lock_requirements(lock: dict[str, Any], base: Path) -> tuple[list[str], list[str]]:
    """(requirement lines, warnings) pinning the "default" section of a Pipfile.lock."""
    warnings: list[str] = []
    sources = lock.get("_meta", {}).get("sources", [])
    lines = _index_lines([(s["url"], i == 0) for i, s in enumerate(sources) if s.get("url")])
    for name, entry in sorted(lock.get("default", {}).items(), key=lambda item: item[0].lower()):
        lines.append(_pipfile_line(name, entry, base, warnings))
    return lines, warnings


def pipfile_requirements(pipfile: dict[str, Any], base: Path) -> tuple[list[str], list[str]]:
    """(requirement lines, warnings) for a Pipfile's [packages], as written (not pinned).

    [dev-packages] are left out, as `pipenv install --deploy` would; the first [[source]] is
    the index, the others extra indexes (PyPI left implicit).
    """
    warnings: list[str] = []
    sources = pipfile.get("source", [])
    lines = _index_lines([(s["url"], i == 0) for i, s in enumerate(sources) if s.get("url")])
    for name, entry in pipfile.get("packages", {}).items():
        lines.append(_pipfile_line(name, entry, base, warnings))
    return lines, warnings


# --- setup.py and setup.cfg ----------------------------------------------------------------------


def setup_cfg_requirements(text: str) -> list[str]:
    """[options] install_requires of a setup.cfg, read as setuptools reads it.

    Several lines are one requirement each; a single line is split at `;`.
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise UnsupportedDeclaration(f"setup.cfg could not be read: {exc}") from None
    value = parser.get("options", "install_requires", fallback="").strip()
    if value.startswith("file:"):
        raise UnsupportedDeclaration(
            "setup.cfg reads install_requires from a file (file:); commit that list as "
            "requirements.txt instead"
        )
    chunks = [c.strip() for c in (value.splitlines() if "\n" in value else value.split(";"))]
    return [chunk for chunk in chunks if chunk and not chunk.startswith("#")]


# --- pyproject.toml / uv.lock ------------------------------------------------------------------


def project_info(
    pyproject: dict[str, Any], uv_lock: dict[str, Any] | None, poetry_lock: bool
) -> dict[str, str]:
    """What bin/compile needs to know about a pyproject.toml (and its uv.lock).

    kind: how to install its dependencies: `poetry` for [tool.poetry.dependencies] without
      PEP 621 dependencies, or any poetry project with a poetry.lock (to use its pins);
      `pep621` for a [project] table; `none` when neither declares anything.
    deps: 1 when [project] declares dependencies (or makes them dynamic).
    local: 1 when the dependencies include local paths (code that changes with the app),
      so the installed venv cannot be reused on the next build.
    package: 1 when uv treats the project as a package it would install ([build-system],
      unless tool.uv.package = false).
    name: [project].name, "" without one.
    """
    project = pyproject.get("project")
    tool = pyproject.get("tool", {})
    backend = str(pyproject.get("build-system", {}).get("build-backend", ""))
    is_poetry = "dependencies" in tool.get("poetry", {}) or backend.startswith("poetry")
    static_deps = isinstance(project, dict) and bool(project.get("dependencies"))
    dynamic = isinstance(project, dict) and "dependencies" in project.get("dynamic", [])
    if is_poetry and (poetry_lock or not static_deps):
        kind = "poetry"
    elif isinstance(project, dict):
        kind = "pep621"
    else:
        kind = "none"
    local = dynamic or any(
        "file:" in dep for dep in (project or {}).get("dependencies", []) if isinstance(dep, str)
    )
    for source in tool.get("uv", {}).get("sources", {}).values():
        for item in source if isinstance(source, list) else [source]:
            if isinstance(item, dict) and ("path" in item or item.get("workspace")):
                local = True
    for package in (uv_lock or {}).get("package", []):
        source = package.get("source", {})
        for key in ("path", "directory", "editable"):
            if key in source and source[key] != ".":
                local = True
    uv_package = tool.get("uv", {}).get("package")
    package = uv_package if isinstance(uv_package, bool) else "build-system" in pyproject
    info = {
        "kind": kind,
        "deps": int(static_deps or dynamic),
        "local": int(local),
        "package": int(package),
        "name": (project or {}).get("name", "") if isinstance(project, dict) else "",
    }
    return {key: str(value) for key, value in info.items()}


# --- the shell bin/compile runs ----------------------------------------------------------------


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UnsupportedDeclaration(f"{Path(path).name} is not valid TOML: {exc}") from None


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as exc:
        raise UnsupportedDeclaration(f"{Path(path).name} is not valid JSON: {exc}") from None


def _write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    warnings: list[str] = []
    try:
        if command == "project" and len(args) == 3:
            pyproject, uv_lock, poetry_lock = args
            lock = _read_toml(uv_lock) if uv_lock else None
            info = project_info(_read_toml(pyproject), lock, bool(poetry_lock))
            for key, value in info.items():
                print(f"{key}={value}")
        elif command == "poetry" and len(args) == 5:
            pyproject, lock_path, base, out_reqs, out_constraints = args
            lock = _read_toml(lock_path) if lock_path else None
            lines, constraints, warnings = poetry_requirements(
                _read_toml(pyproject), lock, Path(base)
            )
            _write_lines(out_reqs, lines)
            _write_lines(out_constraints, constraints)
        elif command == "pipfile-lock" and len(args) == 3:
            lock_path, base, out_reqs = args
            lines, warnings = pipfile_lock_requirements(_read_json(lock_path), Path(base))
            _write_lines(out_reqs, lines)
        elif command == "pipfile" and len(args) == 3:
            pipfile_path, base, out_reqs = args
            lines, warnings = pipfile_requirements(_read_toml(pipfile_path), Path(base))
            _write_lines(out_reqs, lines)
        elif command == "setup-cfg" and len(args) == 2:
            setup_cfg, out_reqs = args
            _write_lines(out_reqs, setup_cfg_requirements(_read_text(setup_cfg)))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except UnsupportedDeclaration as exc:
        print(exc, file=sys.stderr)
        return 1
    except (KeyError, TypeError, AttributeError) as exc:
        print(f"unexpected layout ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
