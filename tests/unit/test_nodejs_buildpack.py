"""The built-in nodejs buildpack, run for real through the buildpack runner.

bin/compile runs with the host's node and npm on copies of tests/fixtures/node-app, so the
installs come from the npm registry; the engines range matcher is checked directly, by
running the node program bin/compile runs on package.json (lib/package_facts.js).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paas.build import buildpack, npm_seed
from paas.build.buildpack import Buildpack, BuildpackError
from router.tls import ensure_platform_certificate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REUSE_LINE = "       Dependencies unchanged; reusing node_modules"
NPM_CI_LINE = "       Installing node modules with npm ci (package-lock.json)"
SEEDED_LINE = "       2 package tarball(s) from the platform's npm cache"
PAGE = "built by &lt;npm run build&gt;; web.1 code=one ttl=2m\n"


@dataclass(frozen=True)
class Manager:
    """How a fixture app's package manager shows in the compile output and the cache."""

    fixture: str
    install_line: str  # the buildpack's line before the installer runs
    installed: str  # the start of a line the installer prints once it installed something
    build_line: str  # the line the manager prints when it runs `node build.js`
    cache: str  # the manager's own cache, in CACHE_DIR
    heading: str | None = None  # the heading of the manager's own installation


NPM = Manager("node-app", NPM_CI_LINE, "       added 2 packages", "       > node build.js", "npm")
YARN = Manager(
    "node-yarn-app", "       Installing node modules with yarn install (yarn.lock)",
    "       [3/5] Fetching packages...", "       $ node build.js", "yarn",
    "-----> Installing yarn@1 with npm",
)
PNPM = Manager(
    "node-pnpm-app", "       Installing node modules with pnpm install (pnpm-lock.yaml)",
    "       + ms 2.1.3", "       > node build.js", "pnpm-store",
    "-----> Installing pnpm@9.15.9 with npm",
)
# ms 2.1.2 as the registry publishes it (a published version's tarball never changes).
MS_2_1_2 = {
    "version": "2.1.2",
    "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.2.tgz",
    "integrity": "sha512-sGkPx+VjMtmA6MX27oA4FBFELFCZZ4S4XqeGOXCv68tT+jb3vk/RyaKWP0PTKyWtmLSM0b+adU"
    "TEvbs1PEaH2w==",
    "license": "MIT",
}

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the nodejs buildpack uses the stack's node and npm, and this host has none",
)


# --- helpers ------------------------------------------------------------------------------


def nodejs_bp() -> Buildpack:
    (bp,) = [bp for bp in buildpack.builtin_buildpacks() if bp.name == "nodejs"]
    return bp


def node_version() -> str:
    return subprocess.run(
        ["node", "-p", "process.versions.node"], capture_output=True, text=True, check=True
    ).stdout.strip()


def platform_env(tmp_path: Path) -> dict[str, str]:
    """What the build job gives buildpacks: the tools dir first on PATH, a private HOME."""
    tools = buildpack.ensure_tools(tmp_path / "tools")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return buildpack.build_env([tools], home=home)


def copy_fixture(dest: Path, fixture: str = "node-app") -> Path:
    ignore = shutil.ignore_patterns("node_modules", "build")
    shutil.copytree(FIXTURES / fixture, dest, ignore=ignore)
    return dest


def write_app(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_compile(
    build_dir: Path,
    cache_dir: Path,
    env: dict[str, str],
    config: dict[str, str] | None = None,
) -> list[str]:
    lines: list[str] = []
    buildpack.compile(nodejs_bp(), build_dir, cache_dir, config or {}, env, lines.append, 600)
    return lines


def failed_compile(
    build_dir: Path, cache_dir: Path, env: dict[str, str], config: dict[str, str] | None = None
) -> list[str]:
    lines: list[str] = []
    with pytest.raises(BuildpackError, match="failed to compile; see the output above"):
        buildpack.compile(nodejs_bp(), build_dir, cache_dir, config or {}, env, lines.append, 600)
    return lines


def dyno_env(app_dir: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(app_dir), "PATH": "/usr/local/bin:/usr/bin:/bin", **extra}


def run_in_dyno(app_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` the way a dyno does: HOME = the app dir, .profile.d sourced first."""
    script = 'for f in "$HOME"/.profile.d/*.sh; do . "$f"; done\n' + command
    return subprocess.run(
        ["bash", "-c", script], cwd=app_dir, capture_output=True, text=True, timeout=60,
        env=dyno_env(app_dir),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def web_dyno() -> Iterator[Callable[[Path, str], int]]:
    """Starts `command` in an app dir as a web dyno would; stops it after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(app_dir: Path, command: str) -> int:
        port = free_port()
        script = 'for f in "$HOME"/.profile.d/*.sh; do . "$f"; done\n' + command
        proc = subprocess.Popen(
            ["bash", "-c", script], cwd=app_dir, text=True, start_new_session=True,
            env=dyno_env(app_dir, PORT=str(port), DYNO="web.1"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return port

    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate(timeout=30)


def get(port: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def files_naming(root: Path, text: str) -> list[Path]:
    needle = text.encode()
    return [
        p for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


def in_order(lines: list[str], expected: list[str]) -> bool:
    """Whether `expected` appear in `lines` in this order (others may come between)."""
    rest = iter(lines)
    return all(any(line == wanted for line in rest) for wanted in expected)


# --- detect and release ---------------------------------------------------------------------


def test_detect_claims_an_app_with_package_json(tmp_path: Path) -> None:
    app = copy_fixture(tmp_path / "app")
    bp, name = buildpack.detect(app, buildpack.builtin_buildpacks(), platform_env(tmp_path))
    assert (bp.name, name) == ("nodejs", "Node.js")


def test_detect_passes_over_an_app_without_package_json(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"server.js": "require('http')\n"})
    with pytest.raises(BuildpackError, match="tried: nodejs"):
        buildpack.detect(app, [nodejs_bp()], platform_env(tmp_path))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"package.json": '{"scripts": {"start": "node index.js"}}', "server.js": ""},
         {"web": "npm start"}),
        ({"package.json": '{"scripts": {"build": "tsc"}}', "server.js": ""},
         {"web": "node server.js"}),
        ({"package.json": '{"name": "x"}'}, {}),
        ({"package.json": "not json", "server.js": ""}, {"web": "node server.js"}),
    ],
)
def test_release_defaults_to_npm_start_then_server_js(
    tmp_path: Path, files: dict[str, str], expected: dict[str, str]
) -> None:
    app = write_app(tmp_path / "app", files)
    assert buildpack.release(nodejs_bp(), app, platform_env(tmp_path)) == expected


def test_release_after_compile_reads_what_compile_read_without_starting_node(
    tmp_path: Path,
) -> None:
    # A "start" outside scripts, which the grep fallback would take for a start script.
    app = copy_fixture(tmp_path / "app")
    edit_json(app / "package.json",
              lambda data: (data["scripts"].pop("start"), data.update(config={"start": "x"})))
    env = platform_env(tmp_path)
    run_compile(app, tmp_path / "cache", env)
    # A node first on PATH that says when it runs.
    spy = tmp_path / "spy"
    spy.mkdir()
    node = shutil.which("node")
    (spy / "node").write_text(f'#!/bin/sh\ntouch {tmp_path}/node-ran\nexec {node} "$@"\n')
    (spy / "node").chmod(0o755)
    spied = {**env, "PATH": f"{spy}:{env['PATH']}"}
    assert buildpack.release(nodejs_bp(), app, spied) == {"web": "node server.js"}
    assert not (tmp_path / "node-ran").exists()
    # Another package.json: read with node again.
    edit_json(app / "package.json", lambda data: data["scripts"].update(start="node x.js"))
    assert buildpack.release(nodejs_bp(), app, spied) == {"web": "npm start"}
    assert (tmp_path / "node-ran").exists()


# --- the engines range matcher ------------------------------------------------------------------


def inspect_program() -> Path:
    """The node program bin/compile runs on package.json."""
    return nodejs_bp().path / "lib" / "package_facts.js"


# Runs the program once per package.json in one node process (a node start costs ~0.1 s),
# each run in a fresh context with its own argv, printing its verdict for engines.node.
HARNESS_JS = """
const vm = require("vm");
const [program, ...files] = process.argv.slice(1);
const source = require("fs").readFileSync(program, "utf8");
for (const file of files) {
  const facts = {};
  const log = (line) => { facts[line.split("=")[0]] = line.slice(line.indexOf("=") + 1); };
  const argv = [process.argv[0], program, file, "/nonexistent/npm-cli.js"];
  const exit = () => { throw new Error("exit"); };
  try {
    vm.runInNewContext(source, { require, console: { log },
      process: { argv, versions: process.versions, exit } });
  } catch (e) {
    if (e.message !== "exit") throw e;
  }
  console.log(facts.node_match);
}
"""


def engines_checks(tmp_path: Path, node_ranges: list[object]) -> list[str]:
    """What the program says of each engines.node range (its node_match line)."""
    files = []
    for n, node_range in enumerate(node_ranges):
        package = tmp_path / f"package-{n}.json"
        package.write_text(json.dumps({"engines": {"node": node_range}}))
        files.append(str(package))
    result = subprocess.run(["node", "-e", HARNESS_JS, str(inspect_program()), *files],
                            capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def range_cases() -> list[tuple[str, str]]:
    major, minor, patch = (int(p) for p in node_version().split("."))
    here = f"{major}.{minor}.{patch}"
    return [
        (here, "yes"), (f"v{here}", "yes"), (f"={here}", "yes"),
        (f"{major}.{minor}.{patch + 1}", "no"),
        (f"{major}", "yes"), (f"{major}.x", "yes"), (f"{major}.{minor}.x", "yes"),
        (f"{major}.*", "yes"), ("*", "yes"), ("x", "yes"), ("", "unset"),
        (f"{major + 1}.x", "no"), (f"{major - 1}", "no"),
        (f">={major}", "yes"), (f">= {major}.{minor}", "yes"), (f">={major + 1}", "no"),
        (f">{major - 1}", "yes"), (f">{major}", "no"), (f">{here}", "no"),
        (f"<{major + 1}", "yes"), (f"<{major}", "no"), (f"<={major}", "yes"),
        (f"<={major}.{minor}.{patch}", "yes"), (f"<={major - 1}.9.9", "no"),
        (f"^{major}.0.0", "yes"), (f"^{major}", "yes"), (f"^{major - 1}.9.9", "no"),
        (f"^{here}", "yes"), (f"^{major}.{minor}.{patch + 1}", "no"),
        ("^0.2.3", "no"), ("^0.0", "no"),
        (f"~{major}.{minor}.0", "yes"), (f"~{major}.{minor + 1}", "no"), (f"~{major}", "yes"),
        (f"~>{major}.{minor}", "yes"),
        (f">={major - 2} <{major + 1}", "yes"), (f">={major - 2} <{major}", "no"),
        (f"{major - 4} || {major + 2}", "no"), (f"{major - 4}.x || >={major}", "yes"),
        (f"{major - 2} - {major}", "yes"), (f"{major - 2} - {major - 1}.5", "no"),
        (f"{major - 2}.0.0 - {here}", "yes"), (f">={major}.0.0-rc.1", "yes"),
        (f"<{major}.0.0-0", "no"),
        ("latest", "invalid"), (">=banana", "invalid"), ("1.2.3.4", "invalid"),
    ]


def test_engines_ranges_are_matched_like_semver(tmp_path: Path) -> None:
    cases = [*range_cases(), (20, "invalid"), (None, "unset")]
    verdicts = engines_checks(tmp_path, [node_range for node_range, _ in cases])
    wrong = [
        (node_range, expected, got)
        for (node_range, expected), got in zip(cases, verdicts, strict=True)
        if got != expected
    ]
    assert not wrong, f"node {node_version()}: (range, expected, got): {wrong}"


# --- compile: install, build, prune, run --------------------------------------------------------


@pytest.mark.parametrize("manager", [NPM, YARN, PNPM], ids=lambda m: m.fixture)
def test_compile_installs_builds_prunes_and_the_app_runs_where_it_is_moved(
    tmp_path: Path, web_dyno: Callable[[Path, str], int], manager: Manager
) -> None:
    app = copy_fixture(tmp_path / "build" / "app", manager.fixture)
    cache = tmp_path / "cache"
    lines = run_compile(app, cache, platform_env(tmp_path))
    assert lines[0] == "-----> Node.js app detected"
    npm = subprocess.run(["npm", "--version"], capture_output=True, text=True).stdout.strip()
    node = shutil.which("node")
    assert lines[1] == f"-----> Using Node.js {node_version()} ({node}) and npm {npm}"
    assert in_order(lines, [
        "       engines.node (package.json): >=18, satisfied",
        *([manager.heading] if manager.heading else []),
        "-----> Installing dependencies",
        manager.install_line,
        "-----> Build",
        "       Running build",
        manager.build_line,
        "-----> Pruning devDependencies",
        "-----> Node.js dependencies ready in node_modules",
    ]), lines
    install, build = lines.index(manager.install_line), lines.index("-----> Build")
    assert any(line.startswith(manager.installed) for line in lines[install:build]), lines
    assert all(line.startswith(("-----> ", "       ", " !     ")) for line in lines), lines
    assert not any(line.startswith(" !     ") for line in lines), lines
    assert (app / "build" / "message.txt").read_text() == "built by &lt;npm run build&gt;\n"
    assert (cache / "node_modules.key").is_file() and (cache / manager.cache).is_dir()
    # The cached copy was taken before pruning: it still has the devDependency.
    assert (cache / "node_modules" / "escape-html").is_dir()

    # Moved like the slug: the original path no longer exists.
    moved = tmp_path / "dyno" / "app"
    moved.parent.mkdir()
    shutil.move(app, moved)
    assert not files_naming(moved, str(app))
    profile = (moved / ".profile.d" / "nodejs.sh").read_text()
    assert 'PATH="$HOME/node_modules/.bin:$PATH"' in profile
    result = run_in_dyno(moved, "\n".join([
        'echo "$NODE_ENV"',
        'echo "update notifier: $(npm config get update-notifier)"',
        "node -p \"require('ms')(60000)\"",
        "node -e \"require('escape-html')\" 2>/dev/null || echo devDependency pruned",
    ]))
    assert result.stdout.splitlines() == [
        "production", "update notifier: false", "1m", "devDependency pruned"], (
        result.stderr
    )
    port = web_dyno(moved, "npm start")
    assert get(port) == PAGE


@pytest.mark.parametrize("manager", [YARN, PNPM], ids=lambda m: m.fixture)
def test_yarn_and_pnpm_apps_reuse_node_modules_and_the_manager(
    tmp_path: Path, manager: Manager, web_dyno: Callable[[Path, str], int]
) -> None:
    cache = tmp_path / "cache"
    env = platform_env(tmp_path)
    assert manager.install_line in run_compile(copy_fixture(tmp_path / "1", manager.fixture),
                                               cache, env)
    second = copy_fixture(tmp_path / "2", manager.fixture)
    lines = run_compile(second, cache, env)
    assert REUSE_LINE in lines and manager.install_line not in lines
    assert manager.heading not in lines
    name = manager.heading.split()[2].split("@")[0]
    assert any(line.startswith(f"-----> Using {name} ")
               and line.endswith("(installed by an earlier build)") for line in lines), lines
    assert manager.build_line in lines
    assert not (second / "node_modules" / "escape-html").exists()
    assert run_in_dyno(second, "node -p \"require('ms')(2000)\"").stdout == "2s\n"
    # The layer the build job makes of node_modules must be the same for the same lockfile.
    assert tree_listing(second / "node_modules") == tree_listing(tmp_path / "1" / "node_modules")
    # The manager is in the slug, so a Procfile's `yarn start` / `pnpm start` runs in a
    # dyno, wherever the slug is moved to.
    moved = tmp_path / "dyno" / "app"
    moved.parent.mkdir()
    shutil.move(second, moved)
    version = run_in_dyno(moved, f"{name} --version")
    assert version.returncode == 0 and version.stdout.startswith(
        "1." if name == "yarn" else "9."), version.stderr
    assert get(web_dyno(moved, f"{name} start")) == PAGE


def tree_listing(root: Path) -> list[tuple[str, bytes]]:
    """Every entry under root with its content (files) or target (symlinks)."""
    listing = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            listing.append((str(path.relative_to(root)), os.readlink(path).encode()))
        elif path.is_file():
            listing.append((str(path.relative_to(root)), path.read_bytes()))
        else:
            listing.append((str(path.relative_to(root)), b"dir"))
    return listing


@pytest.mark.parametrize(
    ("fixture", "manager"),
    [("node-pnpm-app", "pnpm@9.15.9"), ("node-yarn-berry-app", "yarn@4.9.2")],
)
def test_a_packagemanager_digest_that_does_not_match_stops_the_build(
    tmp_path: Path, fixture: str, manager: str
) -> None:
    app = copy_fixture(tmp_path / "app", fixture)
    edit_json(app / "package.json",
              lambda data: data.update(packageManager=f"{manager}+sha512." + "ab" * 64))
    cache = tmp_path / "cache"
    lines = failed_compile(app, cache, platform_env(tmp_path))
    assert (f" !     The {manager} package from the registry does not match the sha512"
            in lines), lines
    assert "-----> Installing dependencies" not in lines
    assert not (cache / "package-managers" / manager).exists()


def test_an_unchanged_lockfile_reuses_node_modules_and_a_changed_one_reinstalls(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    env = platform_env(tmp_path)
    first = copy_fixture(tmp_path / "build-1")
    assert NPM_CI_LINE in run_compile(first, cache, env)

    # A code-only redeploy, in a fresh checkout as the build job makes one.
    second = copy_fixture(tmp_path / "build-2")
    (second / "server.js").write_text(
        (second / "server.js").read_text().replace('"one"', '"two"')
    )
    lines = run_compile(second, cache, env)
    assert REUSE_LINE in lines
    assert NPM_CI_LINE not in lines
    assert not any("added" in line or "npm ci" in line for line in lines), lines
    # The build script and the pruning still run on the reused copy.
    assert "       > node build.js" in lines and "-----> Pruning devDependencies" in lines
    assert PRUNED_LINE in lines, "pruned without starting npm"
    assert (second / "build" / "message.txt").is_file()
    assert not (second / "node_modules" / "escape-html").exists()
    assert (cache / "node_modules" / "escape-html").is_dir(), "the cache must stay unpruned"
    assert run_in_dyno(second, "node -p \"require('ms')(2000)\"").stdout == "2s\n"

    # A new lockfile (ms 2.1.3 -> 2.1.2) installs again, from npm's warm cache.
    third = copy_fixture(tmp_path / "build-3")

    def pin_ms(data: dict) -> None:
        if "packages" in data:
            data["packages"][""]["dependencies"]["ms"] = "2.1.2"
            data["packages"]["node_modules/ms"] = MS_2_1_2
        else:
            data["dependencies"]["ms"] = "2.1.2"

    edit_json(third / "package.json", pin_ms)
    edit_json(third / "package-lock.json", pin_ms)
    lines = run_compile(third, cache, env)
    assert REUSE_LINE not in lines
    assert NPM_CI_LINE in lines
    version = "node -p \"require('ms/package.json').version\""
    assert run_in_dyno(third, version).stdout == "2.1.2\n"

    # And the one after reuses that install.
    fourth = copy_fixture(tmp_path / "build-4")
    edit_json(fourth / "package.json", pin_ms)
    edit_json(fourth / "package-lock.json", pin_ms)
    assert REUSE_LINE in run_compile(fourth, cache, env)
    assert run_in_dyno(fourth, version).stdout == "2.1.2\n"


def test_the_platforms_npm_seed_fills_an_empty_cache_and_npm_checks_what_it_gets(
    tmp_path: Path,
) -> None:
    seed = npm_seed.NpmSeed(tmp_path / "seed")
    first = copy_fixture(tmp_path / "build-1")
    tarballs = npm_seed.lockfile_tarballs((first / "package-lock.json").read_text())
    assert seed.fetch(tarballs) == 2
    env = {**platform_env(tmp_path), "PAAS_NPM_SEED": str(seed.root)}
    cache = tmp_path / "cache-1"
    lines = run_compile(first, cache, env)
    assert in_order(lines, ["-----> Installing dependencies", SEEDED_LINE, NPM_CI_LINE]), lines
    # npm read both from its cache by their integrity: it fetched nothing, so it noted no
    # request in its index.
    assert not (cache / "npm" / "_cacache" / "index-v5").exists()
    assert run_in_dyno(first, "node -p \"require('ms')(2000)\"").stdout == "2s\n"

    # A seed tarball whose bytes are not what its digest says: npm refuses the copy, fetches
    # the package from the registry and installs the real one.
    (ms,) = [t for t in tarballs if "/ms/" in t.url]
    os.chmod(seed.path(ms.digest), 0o644)
    seed.path(ms.digest).write_bytes(b"module.exports = () => 'poisoned';\n")
    second = copy_fixture(tmp_path / "build-2")
    lines = run_compile(second, tmp_path / "cache-2", env)
    assert SEEDED_LINE in lines
    assert run_in_dyno(second, "node -p \"require('ms')(2000)\"").stdout == "2s\n"


def test_an_engines_node_the_stack_cannot_satisfy_fails_before_installing(
    tmp_path: Path,
) -> None:
    app = copy_fixture(tmp_path / "app")
    edit_json(app / "package.json", lambda data: data["engines"].update(node="^4.2.0"))
    lines = failed_compile(app, tmp_path / "cache", platform_env(tmp_path))
    assert (
        f" !     This app needs Node.js ^4.2.0, the stack has {node_version()}; "
        "change engines.node or use a stack with a matching node"
    ) in lines
    assert "-----> Installing dependencies" not in lines
    assert not (app / "node_modules").exists()


def test_an_engines_node_that_is_not_a_range_says_which_forms_work(tmp_path: Path) -> None:
    app = copy_fixture(tmp_path / "app")
    edit_json(app / "package.json", lambda data: data["engines"].update(node="lts/iron"))
    lines = failed_compile(app, tmp_path / "cache", platform_env(tmp_path))
    assert any("engines.node in package.json (lts/iron) is not a version range" in line
               for line in lines), lines


def test_heroku_scripts_run_around_the_install_and_config_vars_reach_them(
    tmp_path: Path,
) -> None:
    # No dependencies and no lockfile: `npm install` runs, offline, every time.
    scripts = {
        "heroku-prebuild": "node -e \"console.log('prebuild ' + process.env.GREETING)\"",
        "build": "echo build-must-not-run",
        "heroku-postbuild": "node -e \"console.log('postbuild in', process.env.NODE_ENV)\"",
        "heroku-cleanup": "echo cleanup",
    }
    app = write_app(tmp_path / "app", {
        "package.json": json.dumps({"name": "scripts-app", "version": "1.0.0",
                                    "scripts": scripts}),
        "server.js": "",
        "node_modules/stale/index.js": "checked in by mistake\n",
    })
    config = {
        "GREETING": "hello",
        "LD_PRELOAD": "/nonexistent/preload.so",
        "NPM_CONFIG_CACHE": str(tmp_path / "elsewhere"),
        "BUILD_DIR": "/nonexistent",
    }
    lines = run_compile(app, tmp_path / "cache", platform_env(tmp_path), config)
    output = "\n".join(lines)
    assert "preload" not in output
    assert "build-must-not-run" not in output
    assert in_order(lines, [
        "-----> Prebuild",
        "       prebuild hello",
        "-----> Installing dependencies",
        "       Installing node modules with npm install (package.json)",
        "-----> Build",
        "       Running heroku-postbuild",
        "       postbuild in production",
        "-----> Cleanup",
        "       cleanup",
    ]), lines
    assert any(line.startswith(" !     node_modules is checked into git") for line in lines)
    assert not (app / "node_modules" / "stale").exists()
    assert not (tmp_path / "elsewhere").exists(), "npm's cache stays in CACHE_DIR"
    assert (tmp_path / "cache" / "npm").is_dir()
    assert not (tmp_path / "cache" / "node_modules.key").exists(), "no lockfile, no reuse"
    assert buildpack.release(nodejs_bp(), app, platform_env(tmp_path)) == {
        "web": "node server.js"
    }


@pytest.fixture
def https_localhost(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for localhost: its port
    and the certificate."""
    cert, key = tmp_path / "tls" / "localhost.crt", tmp_path / "tls" / "localhost.key"
    ensure_platform_certificate(cert, key, "localhost")
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(not Path("/etc/ssl/certs/ca-certificates.crt").is_file(),
                    reason="the stack has no CA store for node to trust")
def test_build_scripts_trust_the_stacks_ca_store_and_keep_the_apps_node_options(
    tmp_path: Path, https_localhost: tuple[int, Path],
) -> None:
    # OpenSSL's store is the stack's; SSL_CERT_FILE points it at the test's certificate in
    # its place, as a registry behind an internal CA would be in /etc/ssl/certs.
    port, cert = https_localhost
    fetch = (
        "console.log('options=' + process.env.NODE_OPTIONS);\n"
        f"require('https').get('https://localhost:{port}/', (res) => {{\n"
        "  console.log('tls ' + res.statusCode); res.resume();\n"
        "}).on('error', (e) => console.log('tls ' + e.code));\n"
    )
    package = json.dumps({"name": "tls-app", "version": "1.0.0",
                          "scripts": {"build": "node fetch.js"}})
    outputs = {}
    for name, options in (("own", "--max-old-space-size=256"), ("bundled", "--use-bundled-ca")):
        app = write_app(tmp_path / name, {"package.json": package, "fetch.js": fetch})
        config = {"SSL_CERT_FILE": str(cert), "NODE_OPTIONS": options}
        outputs[name] = run_compile(app, tmp_path / f"cache-{name}", platform_env(tmp_path),
                                    config)
    assert "       options=--use-openssl-ca --max-old-space-size=256" in outputs["own"]
    assert "       tls 200" in outputs["own"], outputs["own"]
    # An app that asks for node's own CA list gets it (node refuses both flags together).
    assert "       options=--use-bundled-ca" in outputs["bundled"]
    assert "       tls DEPTH_ZERO_SELF_SIGNED_CERT" in outputs["bundled"], outputs["bundled"]


def test_npm_config_production_false_keeps_the_dev_dependencies(tmp_path: Path) -> None:
    app = copy_fixture(tmp_path / "app")
    lines = run_compile(app, tmp_path / "cache", platform_env(tmp_path),
                        {"NPM_CONFIG_PRODUCTION": "false"})
    assert "-----> Keeping devDependencies (NPM_CONFIG_PRODUCTION=false)" in lines
    assert "-----> Pruning devDependencies" not in lines
    assert (app / "node_modules" / "escape-html").is_dir()


# --- pruning without npm ------------------------------------------------------------------------

PRUNED_LINE = "       removed 1 package (the devDependencies in package-lock.json)"
# Pinned packages that give the pruning what real apps have: a devDependency with a bin and
# dependencies of its own (semver), a scoped one (@types/node), a dev package nested under
# another for its own version of a production one (debug -> ms 2.0.0), a devOptional one
# (is-number: a devDependency that the optional to-regex-range needs too), a production bin
# (mkdirp) and a dev package depending on a non-dev one (fill-range -> to-regex-range).
RICH_PACKAGE = {
    "name": "rich-app", "version": "1.0.0", "private": True,
    "dependencies": {"ms": "2.1.3", "mkdirp": "1.0.4"},
    "optionalDependencies": {"to-regex-range": "5.0.1"},
    "devDependencies": {"is-number": "7.0.0", "debug": "2.6.9", "semver": "7.6.0",
                        "@types/node": "20.11.0", "escape-html": "1.0.3", "fill-range": "7.1.1"},
}


def npm(app: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "npm_config_cache": str(app.parent / "npm-cache"),
           "npm_config_audit": "false", "npm_config_fund": "false",
           "npm_config_update_notifier": "false"}
    return subprocess.run(["npm", *args], cwd=app, env=env, capture_output=True, text=True,
                          check=check, timeout=300)


def prune_dev(app: Path) -> subprocess.CompletedProcess[str]:
    """Run lib/prune_dev.js, which bin/compile runs instead of npm prune, in `app`."""
    program = nodejs_bp().path / "lib" / "prune_dev.js"
    return subprocess.run(["node", str(program), "package-lock.json"], cwd=app,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def rich_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app installed with `npm ci`, devDependencies included, as bin/compile does."""
    app = write_app(tmp_path_factory.mktemp("rich") / "app",
                    {"package.json": json.dumps(RICH_PACKAGE, indent=2) + "\n"})
    npm(app, "install", "--package-lock-only")
    npm(app, "ci", "--include=dev")
    return app


def test_pruning_without_npm_leaves_what_npm_prune_leaves(tmp_path: Path, rich_app: Path) -> None:
    by_npm = shutil.copytree(rich_app, tmp_path / "by-npm", symlinks=True)
    ours = shutil.copytree(rich_app, tmp_path / "ours", symlinks=True)
    lock = (ours / "package-lock.json").read_bytes()
    npm(by_npm, "prune", "--omit=dev")
    result = prune_dev(ours)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "removed 9 packages (the devDependencies in package-lock.json)\n"
    assert tree_listing(ours / "node_modules") == tree_listing(by_npm / "node_modules")
    assert {"ms", "mkdirp", "to-regex-range", "is-number"} <= {
        p.name for p in (ours / "node_modules").iterdir()
    }
    assert [p.name for p in (ours / "node_modules" / ".bin").iterdir()] == ["mkdirp"]
    # npm prune also rewrites the lockfile in its own way; the app's own stays as it is.
    assert (ours / "package-lock.json").read_bytes() == lock


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda app: write_app(app, {"node_modules/stray/package.json": "{}"}),
         "node_modules/stray is not in node_modules/.package-lock.json"),
        (lambda app: edit_json(app / "package-lock.json",
                               lambda lock: lock["packages"]["node_modules/ms"].update(dev=True)),
         "package-lock.json marks node_modules/ms dev, which npm may recompute"),
        (lambda app: edit_json(app / "package-lock.json",
                               lambda lock: lock.update(lockfileVersion=1)),
         'package-lock.json is lockfileVersion 1, without a "packages" map'),
        (lambda app: (app / "node_modules" / ".package-lock.json").unlink(),
         "there is no node_modules/.package-lock.json"),
    ],
)
def test_pruning_without_npm_leaves_it_to_npm_when_unsure(
    tmp_path: Path, rich_app: Path, change: Callable[[Path], object], reason: str
) -> None:
    app = shutil.copytree(rich_app, tmp_path / "app", symlinks=True)
    change(app)
    before = tree_listing(app)
    result = prune_dev(app)
    assert (result.returncode, result.stderr) == (3, f"Leaving it to npm prune: {reason}\n")
    assert tree_listing(app) == before


def test_the_pruner_started_ahead_prunes_only_when_asked(tmp_path: Path, rich_app: Path) -> None:
    # bin/compile starts it before the install and asks it after the build script; a build
    # that fails or keeps its devDependencies closes its input without asking.
    program = str(nodejs_bp().path / "lib" / "prune_dev.js")
    app = shutil.copytree(rich_app, tmp_path / "app", symlinks=True)
    before = tree_listing(app)
    for asked, output in [("", ""), ("prune\n", "removed 9 packages (the devDependencies "
                                                 "in package-lock.json)\n")]:
        result = subprocess.run(["node", program, "package-lock.json", "--when-asked"],
                                cwd=app, input=asked, capture_output=True, text=True,
                                timeout=60)
        assert (result.returncode, result.stdout, result.stderr) == (0, output, "")
        if not asked:
            assert tree_listing(app) == before
    assert "escape-html" not in {p.name for p in (app / "node_modules").iterdir()}


def test_the_pruner_is_already_waiting_while_the_build_script_runs(tmp_path: Path) -> None:
    app = copy_fixture(tmp_path / "app")
    # The build script looks for the pruner of its own app among the processes it sees.
    (app / "build.js").write_text(r"""
const fs = require("fs");
const waiting = fs.readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).some((pid) => {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.some((arg) => arg.endsWith("prune_dev.js")) && argv.includes("--when-asked")
      && fs.readlinkSync(`/proc/${pid}/cwd`) === process.cwd();
  } catch (e) {
    return false;
  }
});
console.log(`pruner waiting: ${waiting}`);
""")
    lines = run_compile(app, tmp_path / "cache", platform_env(tmp_path))
    assert "       pruner waiting: true" in lines
    assert PRUNED_LINE in lines


def test_a_pruner_that_died_before_it_was_asked_leaves_the_pruning_to_npm(
    tmp_path: Path,
) -> None:
    bp = Buildpack("nodejs", tmp_path / "nodejs")
    shutil.copytree(nodejs_bp().path, bp.path)
    (bp.path / "lib" / "prune_dev.js").write_text("process.exit(9);\n")
    app = copy_fixture(tmp_path / "app")
    lines: list[str] = []
    buildpack.compile(bp, app, tmp_path / "cache", {}, platform_env(tmp_path), lines.append, 600)
    pruning = lines.index("-----> Pruning devDependencies")
    assert lines[pruning + 1].startswith("       removed 1 package in"), lines
    assert not (app / "node_modules" / "escape-html").exists()
    assert (app / "node_modules" / "ms").is_dir()


def test_a_setting_that_changes_what_npm_prune_omits_is_left_to_npm(tmp_path: Path) -> None:
    app = copy_fixture(tmp_path / "app")
    lines = run_compile(app, tmp_path / "cache", platform_env(tmp_path),
                        {"NPM_CONFIG_INCLUDE": "dev"})
    assert "-----> Pruning devDependencies" in lines and PRUNED_LINE not in lines
    assert (app / "node_modules" / "escape-html").is_dir()


def test_a_failing_build_script_fails_the_build_after_its_output(tmp_path: Path) -> None:
    app = copy_fixture(tmp_path / "app")
    (app / "build.js").write_text("console.log('about to fail'); process.exit(3);\n")
    lines = failed_compile(app, tmp_path / "cache", platform_env(tmp_path))
    verdict = lines.index(
        " !     The build script in package.json failed: its output above says why."
    )
    assert "       about to fail" in lines[:verdict]


def test_a_package_that_does_not_exist_fails_the_install_clearly(tmp_path: Path) -> None:
    missing = "paas-test-no-such-package-7d1c9e"
    app = write_app(tmp_path / "app", {
        "package.json": json.dumps({"name": "x", "dependencies": {missing: "1.0.0"}}),
    })
    cache = tmp_path / "cache"
    lines = failed_compile(app, cache, platform_env(tmp_path))
    verdict = next(i for i, line in enumerate(lines)
                   if line.startswith(" !     Could not install the dependencies"))
    assert any(missing in line for line in lines[:verdict])  # npm's own words first
    assert not (cache / "node_modules.key").exists()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"package.json": "{\"name\": ", "yarn.lock": ""}, "package.json could not be read"),
        ({"package.json": "{}", "package-lock.json": "{}", "yarn.lock": ""},
         "more than one lockfile (package-lock.json yarn.lock)"),
        ({"package.json": "{}", "yarn.lock": "__metadata:\n  version: 3\n"},
         "Which Yarn to use is unclear (yarn.lock's __metadata version is"),
        ({"package.json": '{"packageManager": "yarn@1.22.22"}',
          "yarn.lock": "__metadata:\n  version: 8\n"},
         "packageManager asks for Yarn 1.22.22, but yarn.lock was"),
        ({"package.json": "{}", "yarn.lock": "__metadata:\n  version: 8\n",
          ".yarnrc.yml": "yarnPath: .yarn/releases/yarn-4.9.2.cjs\n"},
         ".yarnrc.yml's yarnPath (.yarn/releases/yarn-4.9.2.cjs) is not a file in the app"),
        ({"package.json": "{}", "pnpm-lock.yaml": "lockfileVersion: 5.3\n"},
         "Which pnpm to use is unclear"),
        ({"package.json": '{"packageManager": "bun@1.1.0"}'},
         "packageManager (bun@1.1.0) is not npm, yarn or pnpm"),
    ],
)
def test_a_broken_or_ambiguous_app_fails_with_what_to_fix(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    app = write_app(tmp_path / "app", files)
    lines = failed_compile(app, tmp_path / "cache", platform_env(tmp_path))
    assert any(message in line for line in lines), lines


# --- Yarn 2 and later (Berry) -------------------------------------------------------------------

BERRY_INSTALL_LINE = (
    "       Installing dependencies with yarn install --immutable (yarn.lock; nodeLinker: {})"
)
BERRY_REUSE_LINE = "       Dependencies unchanged; reusing the Plug'n'Play install (.pnp.cjs)"


def pin_berry_ms(app: Path) -> None:
    """ms 2.1.3 -> 2.1.2 in package.json and yarn.lock, as `yarn add ms@2.1.2` writes them."""
    edit_json(app / "package.json", lambda data: data["dependencies"].update(ms="2.1.2"))
    lock = app / "yarn.lock"
    lock.write_text(lock.read_text().replace(
        '"ms@npm:2.1.3":\n  version: 2.1.3\n  resolution: "ms@npm:2.1.3"\n  checksum: 10c0/'
        "d924b57e7312b3b63ad21fc5b3dc0af5e78d61a1fc7cfb5457edaf26326bf62be5307cc87ffb6862ef1c2b3"
        "3b0233cdb5d4f01c4c958cc0d660948b65a287a48",
        '"ms@npm:2.1.2":\n  version: 2.1.2\n  resolution: "ms@npm:2.1.2"\n  checksum: 10c0/'
        "a437714e2f90dbf881b5191d35a6db792efbca5badf112f87b9e1c712aace4b4b9b742dd6537f3edf90fd6f"
        "684de897cec230abde57e87883766712ddda297cc",
    ).replace('ms: "npm:2.1.3"', 'ms: "npm:2.1.2"'))


def test_a_yarn_berry_app_installs_with_plug_n_play_and_runs_where_it_is_moved(
    tmp_path: Path, web_dyno: Callable[[Path, str], int]
) -> None:
    app = copy_fixture(tmp_path / "build" / "app", "node-yarn-berry-app")
    cache = tmp_path / "cache"
    lines = run_compile(app, cache, platform_env(tmp_path))
    assert in_order(lines, [
        "-----> Installing yarn@4.9.2 (@yarnpkg/cli-dist) with npm",
        "       Checked against the sha512 digest in packageManager",
        "       Installed yarn 4.9.2",
        "-----> Installing dependencies",
        BERRY_INSTALL_LINE.format("pnp"),
        "       ➤ YN0013: │ 2 packages were added to the project (+ 11.66 KiB).",
        "-----> Build",
        "-----> Pruning devDependencies",
        "       ➤ YN0085: │ - escape-html@npm:1.0.3",
        "-----> Node.js dependencies ready (Plug'n'Play: .pnp.cjs)",
    ]), lines
    assert not any(line.startswith(" !     ") for line in lines), lines
    assert (app / "build" / "message.txt").read_text() == "built by &lt;npm run build&gt;\n"
    assert (app / ".pnp.cjs").is_file() and not (app / "node_modules").exists()
    # The zips Plug'n'Play loads are in the app, and kept in CACHE_DIR for the next build.
    zips = sorted(path.name for path in (app / ".yarn" / "cache").glob("*.zip"))
    assert [name.split("-npm-")[0] for name in zips] == ["escape-html", "ms"]
    assert sorted(path.name for path in (cache / "yarn-berry" / "cache").iterdir()) == zips
    assert (cache / "package-managers" / "yarn@4.9.2" / ".installed").is_file()

    # Moved like the slug: the original path no longer exists.
    moved = tmp_path / "dyno" / "app"
    moved.parent.mkdir()
    shutil.move(app, moved)
    assert not files_naming(moved, str(app))
    result = run_in_dyno(moved, "\n".join([
        "yarn --version",
        "node -p \"require('ms')(60000)\"",
        "node -e \"require('escape-html')\" 2>/dev/null || echo devDependency pruned",
    ]))
    assert result.stdout.splitlines() == ["4.9.2", "1m", "devDependency pruned"], result.stderr
    assert not (moved / ".yarn" / "berry").exists(), "yarn in the dyno writes nothing to HOME"
    # The default web process (npm start), a Procfile's `yarn start` or `node server.js`.
    for command in ("npm start", "yarn start", "node server.js"):
        assert get(web_dyno(moved, command)) == PAGE, command


def test_a_yarn_berry_app_reuses_an_unchanged_lockfile_and_a_changed_one_uses_the_warm_cache(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    env = platform_env(tmp_path)
    assert BERRY_INSTALL_LINE.format("pnp") in run_compile(
        copy_fixture(tmp_path / "build-1", "node-yarn-berry-app"), cache, env
    )

    # A code-only redeploy, in a fresh checkout as the build job makes one.
    second = copy_fixture(tmp_path / "build-2", "node-yarn-berry-app")
    lines = run_compile(second, cache, env)
    assert "-----> Using yarn 4.9.2 (installed by an earlier build)" in lines
    assert BERRY_REUSE_LINE in lines and BERRY_INSTALL_LINE.format("pnp") not in lines
    assert "-----> Pruning devDependencies" in lines
    assert run_in_dyno(second, "node -p \"require('ms')(2000)\"").stdout == "2s\n"

    # A new lockfile (ms 2.1.3 -> 2.1.2) installs again: only ms 2.1.2 is fetched, the
    # other package comes from the cache the last build left.
    third = copy_fixture(tmp_path / "build-3", "node-yarn-berry-app")
    pin_berry_ms(third)
    lines = run_compile(third, cache, env)
    assert BERRY_INSTALL_LINE.format("pnp") in lines and BERRY_REUSE_LINE not in lines
    assert ("       ➤ YN0013: │ A package was added to the project, and one was removed "
            "(+ 0.11 KiB).") in lines
    version = "node -p \"require('ms/package.json').version\""
    assert run_in_dyno(third, version).stdout == "2.1.2\n"

    # And the one after reuses that install.
    fourth = copy_fixture(tmp_path / "build-4", "node-yarn-berry-app")
    pin_berry_ms(fourth)
    assert BERRY_REUSE_LINE in run_compile(fourth, cache, env)
    assert run_in_dyno(fourth, version).stdout == "2.1.2\n"


def test_a_yarn_berry_app_with_the_node_modules_linker_or_a_vendored_yarn(
    tmp_path: Path,
) -> None:
    env = platform_env(tmp_path)
    app = copy_fixture(tmp_path / "app", "node-yarn-berry-app")
    (app / ".yarnrc.yml").write_text("nodeLinker: node-modules\n")
    cache = tmp_path / "cache"
    lines = run_compile(app, cache, env)
    assert BERRY_INSTALL_LINE.format("node-modules") in lines
    assert "-----> Node.js dependencies ready in node_modules" in lines
    assert (app / "node_modules" / "ms").is_dir() and not (app / ".pnp.cjs").exists()
    assert not (app / "node_modules" / "escape-html").exists()
    # The zips are only read while installing: they stay in CACHE_DIR, out of the slug.
    assert not (app / ".yarn" / "cache").exists()
    assert len(list((cache / "yarn-berry" / "cache").glob("ms-npm-2.1.3-*.zip"))) == 1
    assert "NODE_OPTIONS" not in (app / ".profile.d" / "nodejs.sh").read_text()
    assert run_in_dyno(app, "node -p \"require('ms')(2000)\"").stdout == "2s\n"
    second = copy_fixture(tmp_path / "app-2", "node-yarn-berry-app")
    (second / ".yarnrc.yml").write_text("nodeLinker: node-modules\n")
    assert REUSE_LINE in run_compile(second, cache, env)

    # The release an app vendors (yarnPath) is used as it is, and nothing is installed.
    release = cache / "package-managers" / "yarn@4.9.2" / "node_modules" / "@yarnpkg" / "cli-dist"
    vendored = copy_fixture(tmp_path / "vendored", "node-yarn-berry-app")
    (vendored / ".yarn" / "releases").mkdir(parents=True)
    shutil.copy(release / "bin" / "yarn.js", vendored / ".yarn" / "releases" / "yarn-4.9.2.cjs")
    (vendored / ".yarnrc.yml").write_text("yarnPath: .yarn/releases/yarn-4.9.2.cjs\n")
    edit_json(vendored / "package.json", lambda data: data.pop("packageManager"))
    fresh_cache = tmp_path / "fresh-cache"
    lines = run_compile(vendored, fresh_cache, env)
    assert "-----> Using yarn 4.9.2 (.yarn/releases/yarn-4.9.2.cjs, the yarnPath in .yarnrc.yml)" \
        in lines
    assert BERRY_INSTALL_LINE.format("pnp") in lines
    assert not (fresh_cache / "package-managers").exists()
    assert run_in_dyno(vendored, "cd / && yarn --version").stdout == "4.9.2\n"


def test_the_export_file_gives_later_buildpacks_the_apps_binaries_and_node(tmp_path: Path) -> None:
    # A copy of the buildpack, as the build job runs one, and a buildpack after it.
    nodejs = Buildpack("nodejs", shutil.copytree(nodejs_bp().path, tmp_path / "bps" / "nodejs"))
    reader = tmp_path / "bps" / "reader" / "bin"
    reader.mkdir(parents=True)
    for script, body in (("detect", "exit 0"), ("release", "echo '--- {}'"), ("compile", "\n".join([
        'echo "NODE_HOME=$NODE_HOME"',
        "command -v yarn",
        "node -p \"require('ms')(1000)\"",
    ]))):
        (reader / script).write_text(f"#!/usr/bin/env bash\nset -euo pipefail\n{body}\n")
        (reader / script).chmod(0o755)
    env = platform_env(tmp_path)
    app = copy_fixture(tmp_path / "app", "node-yarn-berry-app")
    cache = tmp_path / "cache"
    lines: list[str] = []
    buildpack.compile(nodejs, app, cache, {}, env, lines.append, 600)
    export = nodejs.path / "export"
    node_home = Path(shutil.which("node")).resolve().parents[1]
    assert export.read_text().splitlines() == [
        f'export PATH={app}/node_modules/.bin:{app}/.heroku/yarn/bin:"$PATH"',
        f"export NODE_HOME={node_home}",
        f'export NODE_OPTIONS=--require\\ {app}/.pnp.cjs"${{NODE_OPTIONS:+ $NODE_OPTIONS}}"',
    ]
    lines = []
    buildpack.compile(Buildpack("reader", reader.parent), app, cache, {}, env, lines.append, 60,
                      exports=[export])
    assert lines == [f"NODE_HOME={node_home}", f"{app}/.heroku/yarn/bin/yarn", "1s"]

    # npm apps: node_modules/.bin, which the export puts first.
    app = copy_fixture(tmp_path / "npm-app", "node-app")
    buildpack.compile(nodejs, app, cache, {}, env, lines.append, 600)
    assert export.read_text().splitlines() == [
        f'export PATH={app}/node_modules/.bin:"$PATH"', f"export NODE_HOME={node_home}",
    ]
