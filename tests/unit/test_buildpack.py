"""The buildpack runner and the built-in python buildpack, run for real on tiny apps.

Runner behaviour (streaming, timeouts, the environment) uses fake buildpacks written
into tmp_path; the python buildpack tests run bin/compile with uv. Three tests install
from PyPI; the rest install a wheel made here, offline.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import stat
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from paas.build import buildpack
from paas.build.buildpack import Buildpack, BuildpackError

REUSE_LINE = "       Requirements unchanged; reusing the installed dependencies"
INSTALL_HEADING = "-----> Installing requirements with uv"


# --- helpers ------------------------------------------------------------------------------


def python_bp() -> Buildpack:
    bp = buildpack.builtin_buildpacks()[0]
    assert bp.name == "python"
    return bp


def write_app(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def fake_buildpack(
    root: Path,
    name: str,
    *,
    detect: str = "exit 1",
    compile: str = "exit 0",
    release: str = "echo '--- {}'",
) -> Buildpack:
    """A buildpack whose scripts are the given bash bodies."""
    for script, body in (("detect", detect), ("compile", compile), ("release", release)):
        path = root / name / "bin" / script
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/usr/bin/env bash\nset -euo pipefail\n{body}\n")
        path.chmod(0o755)
    return Buildpack(name, root / name)


def platform_env(tmp_path: Path) -> dict[str, str]:
    """What the build job gives buildpacks: the tools dir (uv) first on PATH."""
    tools = buildpack.ensure_tools(tmp_path / "tools")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return buildpack.build_env([tools], home=home)


def run_compile(
    bp: Buildpack,
    build_dir: Path,
    cache_dir: Path,
    env: dict[str, str],
    config: dict[str, str] | None = None,
    timeout: float = 600,
) -> list[str]:
    lines: list[str] = []
    buildpack.compile(bp, build_dir, cache_dir, config or {}, env, lines.append, timeout)
    return lines


def run_in_dyno(app_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` the way a dyno does: HOME = the app dir, .profile.d sourced first."""
    script = 'for f in "$HOME"/.profile.d/*.sh; do . "$f"; done\n' + command
    return subprocess.run(
        ["bash", "-c", script],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(app_dir), "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )


def make_wheel(dist_dir: Path, name: str = "tinypkg", version: str = "1.0") -> Path:
    """A pure-Python wheel with a module and a console script, built by hand (offline)."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = 'from {name}'\n\ndef main():\n    print(VALUE)\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\n{name}-hello = {name}:main\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    dist_dir.mkdir(parents=True, exist_ok=True)
    wheel = dist_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def files_naming(root: Path, text: str) -> list[Path]:
    """Files under root (but .pyc, whose paths importlib fixes on load) containing text."""
    needle = text.encode()
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and p.suffix != ".pyc" and needle in p.read_bytes()
    ]


def is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # killed, waiting for an init that may never reap it


def wait_gone(pid: int) -> bool:
    # SIGKILL is delivered asynchronously; give it a moment, without timing anything.
    for _ in range(200):
        if is_gone(pid):
            return True
        time.sleep(0.05)
    return False


# --- discovery and detect -------------------------------------------------------------------


def test_builtin_buildpacks_put_python_first_with_all_three_scripts() -> None:
    bps = buildpack.builtin_buildpacks()
    assert bps[0].name == "python"
    for bp in bps:
        for script in ("detect", "compile", "release"):
            mode = (bp.path / "bin" / script).stat().st_mode
            assert mode & stat.S_IXUSR, f"{bp.name}/bin/{script} is not executable"


@pytest.mark.parametrize(
    "marker",
    ["requirements.txt", "pyproject.toml", "setup.py", "Pipfile", "runtime.txt", ".python-version"],
)
def test_detect_picks_python_for_any_python_marker(tmp_path: Path, marker: str) -> None:
    app = write_app(tmp_path / "app", {marker: "\n", "app.py": "print(1)\n"})
    bp, name = buildpack.detect(app, buildpack.builtin_buildpacks(), platform_env(tmp_path))
    assert (bp.name, name) == ("python", "Python")


def test_detect_takes_the_first_that_accepts(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"index.html": "hi\n"})
    no = fake_buildpack(tmp_path / "bps", "static-no", detect="exit 1")
    yes = fake_buildpack(tmp_path / "bps", "static", detect="echo Static HTML")
    also = fake_buildpack(tmp_path / "bps", "other", detect="echo Other")
    assert buildpack.detect(app, [no, yes, also], platform_env(tmp_path)) == (yes, "Static HTML")


def test_detect_on_an_empty_app_lists_what_was_tried(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {})
    other = fake_buildpack(tmp_path / "bps", "ruby")
    with pytest.raises(BuildpackError) as info:
        buildpack.detect(app, [*buildpack.builtin_buildpacks(), other], platform_env(tmp_path))
    builtin = ", ".join(bp.name for bp in buildpack.builtin_buildpacks())
    assert f"tried: {builtin}, ruby" in info.value.message
    assert builtin.startswith("python, nodejs")
    assert "requirements.txt" in info.value.message and "paas buildpacks:set" in info.value.message


# --- the runner, with fake buildpacks ---------------------------------------------------------


def test_emit_gets_each_line_as_it_is_printed_in_order(tmp_path: Path) -> None:
    # The compile waits for emit to acknowledge each line before printing the next, so a
    # runner that buffered output would stall here until its timeout.
    bp = fake_buildpack(
        tmp_path / "bps",
        "chatty",
        compile="""
        echo '-----> one'
        while [ ! -e "$1/ack-1" ]; do sleep 0.01; done
        echo '       two' >&2
        while [ ! -e "$1/ack-2" ]; do sleep 0.01; done
        printf 'three, without a newline'
    """,
    )
    app = write_app(tmp_path / "app", {})
    seen: list[str] = []

    def emit(line: str) -> None:
        seen.append(line)
        (app / f"ack-{len(seen)}").touch()

    buildpack.compile(bp, app, tmp_path / "cache", {}, platform_env(tmp_path), emit, timeout=120)
    assert seen == ["-----> one", "       two", "three, without a newline"]


def test_a_failing_compile_raises_after_its_output(tmp_path: Path) -> None:
    bp = fake_buildpack(tmp_path / "bps", "python", compile="echo ' !     broken'; exit 3")
    app = write_app(tmp_path / "app", {})
    lines: list[str] = []
    with pytest.raises(BuildpackError) as info:
        buildpack.compile(bp, app, tmp_path / "cache", {}, platform_env(tmp_path), lines.append)
    assert lines == [" !     broken"]
    assert info.value.message == "the python buildpack failed to compile; see the output above"


def test_a_compile_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    bp = fake_buildpack(
        tmp_path / "bps",
        "slow",
        compile="""
        sleep 300 &
        echo $! > "$1/child.pid"
        echo started
        wait
    """,
    )
    app = write_app(tmp_path / "app", {})
    lines: list[str] = []
    with pytest.raises(BuildpackError) as info:
        buildpack.compile(
            bp, app, tmp_path / "cache", {}, platform_env(tmp_path), lines.append, timeout=2
        )
    assert "within 2 s" in info.value.message
    assert lines == ["started"]
    assert wait_gone(int((app / "child.pid").read_text()))


def test_a_child_left_running_neither_hangs_the_build_nor_survives_it(tmp_path: Path) -> None:
    # The background sleep keeps the output pipe open after compile exits.
    bp = fake_buildpack(
        tmp_path / "bps",
        "leaky",
        compile="""
        sleep 300 &
        echo $! > "$1/child.pid"
        echo done
    """,
    )
    app = write_app(tmp_path / "app", {})
    lines = run_compile(bp, app, tmp_path / "cache", platform_env(tmp_path), timeout=300)
    assert lines == ["done"]
    assert wait_gone(int((app / "child.pid").read_text()))


def test_compile_sees_config_in_env_dir_but_not_the_platform_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAAS_SECRET_TOKEN", "platform-secret")
    monkeypatch.setenv("REDIS_URL", "unix:///platform.sock")
    bp = fake_buildpack(
        tmp_path / "bps",
        "probe",
        compile="""
        env > "$1/seen-env"
        echo "$3" > "$1/seen-env-dir"
        for f in "$3"/*; do
          printf '%s=%s|%s\\n' "${f##*/}" "$(cat "$f")" "$(stat -c %a "$f")"
        done > "$1/seen-config"
    """,
    )
    app = write_app(tmp_path / "app", {})
    env = platform_env(tmp_path) | {"SOURCE_VERSION": "abc123"}
    config = {"DATABASE_URL": "postgres://db/1", "MULTI": "a b\nc", "../escape": "no"}
    run_compile(bp, app, tmp_path / "cache", env, config)

    seen_env = (app / "seen-env").read_text()
    assert "platform-secret" not in seen_env and "REDIS_URL" not in seen_env
    assert "postgres://db/1" not in seen_env  # config goes through ENV_DIR only
    for expected in (
        "STACK=host",
        "SOURCE_VERSION=abc123",
        f"BUILD_DIR={app}",
        f"HOME={tmp_path / 'home'}",
        "LANG=C.UTF-8",
    ):
        assert expected in seen_env.splitlines()
    assert (app / "seen-config").read_text() == (
        "DATABASE_URL=postgres://db/1|600\nMULTI=a b\nc|600\n"
    )
    assert not (tmp_path / "escape").exists()
    assert not Path((app / "seen-env-dir").read_text().strip()).exists()  # removed after


def test_build_env_holds_only_path_home_and_lang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAAS_HOME", "/srv/paas")
    env = buildpack.build_env([tmp_path / "tools"])
    assert set(env) == {"PATH", "HOME", "LANG"}
    assert env["PATH"] == f"{tmp_path / 'tools'}:/usr/local/bin:/usr/bin:/bin"
    home = Path(env["HOME"])
    assert home.is_dir() and stat.S_IMODE(home.stat().st_mode) == 0o700
    assert home != Path.home()


def test_ensure_tools_links_uv_and_is_idempotent(tmp_path: Path) -> None:
    bin_dir = buildpack.ensure_tools(tmp_path / "tools")
    assert buildpack.ensure_tools(tmp_path / "tools") == bin_dir == tmp_path / "tools" / "bin"
    version = subprocess.run(
        [bin_dir / "uv", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("uv ")


# --- release --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"requirements.txt": "Flask\ngunicorn==22.0\n", "app.py": "app = Flask(__name__)\n"},
            {"web": "gunicorn app:app"},
        ),
        (
            {"requirements.txt": "gunicorn[gevent]\n", "wsgi.py": "from myapp import app\n"},
            {"web": "gunicorn wsgi:app"},
        ),
        ({"requirements.txt": "gunicorn\n", "app.py": "app = 1\n", "Procfile": "web: x\n"}, {}),
        ({"requirements.txt": "flask\n", "app.py": "app = Flask(__name__)\n"}, {}),
        (
            {"requirements.txt": "gunicorn\n", "app.py": "application = make()\n"},
            {"web": "gunicorn app:application"},
        ),
        ({"requirements.txt": "gunicorn\n", "app.py": "make_app = make()\n"}, {}),
        ({"requirements.txt": "gunicorn-extras\n", "app.py": "app = 1\n"}, {}),
    ],
)
def test_release_guesses_a_web_process_only_for_a_plain_wsgi_app(
    tmp_path: Path, files: dict[str, str], expected: dict[str, str]
) -> None:
    app = write_app(tmp_path / "app", files)
    assert buildpack.release(python_bp(), app, platform_env(tmp_path)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\ndefault_process_types:\n  web: gunicorn app:app\n", {"web": "gunicorn app:app"}),
        ("---\ndefault_process_types: {}\n", {}),
        ("---\ndefault_process_types:\n", {}),
        ("", {}),
        ("---\naddons: []\n", {}),
    ],
)
def test_parse_release_reads_default_process_types(text: str, expected: dict[str, str]) -> None:
    assert buildpack.parse_release("python", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "default_process_types: [unclosed\n",
        "- just\n- a list\n",
        "default_process_types:\n  web: [not, a, command]\n",
        "default_process_types: gunicorn\n",
    ],
)
def test_parse_release_rejects_what_is_not_names_to_commands(text: str) -> None:
    with pytest.raises(BuildpackError, match="bin/release"):
        buildpack.parse_release("python", text)


def test_release_of_a_broken_buildpack_is_a_buildpack_error(tmp_path: Path) -> None:
    bp = fake_buildpack(tmp_path / "bps", "odd", release="echo 'default_process_types: {web'")
    with pytest.raises(BuildpackError, match="invalid YAML"):
        buildpack.release(bp, write_app(tmp_path / "app", {}), platform_env(tmp_path))


# --- the python buildpack, offline (a wheel made here) ----------------------------------------


def test_config_vars_reach_the_installer_except_the_deny_list(tmp_path: Path) -> None:
    # uv reads UV_NO_INDEX/UV_FIND_LINKS from the config vars: the install succeeds offline
    # only if they were exported. An exported LD_PRELOAD would make every process complain.
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    app = write_app(tmp_path / "app", {"requirements.txt": "tinypkg==1.0\n"})
    config = {
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheels),
        "LD_PRELOAD": "/nonexistent/preload.so",
        "BUILD_DIR": "/nonexistent",
        "UV_LINK_MODE": "hardlink",
        "not-a-name": "x",
    }
    lines = run_compile(python_bp(), app, tmp_path / "cache", platform_env(tmp_path), config)
    output = "\n".join(lines)
    assert "+ tinypkg==1.0" in output
    assert "preload" not in output
    venv_files = [
        p for p in (app / ".heroku" / "venv").rglob("*") if p.is_file() and not p.is_symlink()
    ]
    # UV_LINK_MODE stays copy whatever the app sets: the slug shares no inode with the cache.
    assert venv_files and all(p.stat().st_nlink == 1 for p in venv_files)
    result = run_in_dyno(app, "python -c 'import tinypkg; print(tinypkg.VALUE)'")
    assert result.stdout == "from tinypkg\n", result.stderr


def test_pip_fallback_without_uv_makes_a_venv_that_survives_a_move(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    env = buildpack.build_env([], home=tmp_path)  # no tools dir, so no uv
    if shutil.which("uv", path=env["PATH"]):
        pytest.skip("uv is installed system-wide here, so the fallback cannot be reached")
    app = write_app(tmp_path / "build" / "app", {"requirements.txt": "tinypkg\n"})
    config = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    lines = run_compile(python_bp(), app, tmp_path / "cache", env, config)
    assert "-----> Installing requirements with pip" in lines

    moved = tmp_path / "dyno" / "app"
    moved.parent.mkdir()
    shutil.move(app, moved)
    assert not files_naming(moved / ".heroku" / "venv" / "bin", str(app) + "/")
    result = run_in_dyno(moved, "tinypkg-hello")
    assert result.stdout == "from tinypkg\n", result.stderr


def test_a_change_in_an_included_requirements_file_reinstalls(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, version="1.0")
    make_wheel(wheels, version="2.0")
    config = {"UV_NO_INDEX": "1", "UV_FIND_LINKS": str(wheels)}
    env = platform_env(tmp_path)
    cache = tmp_path / "cache"
    version = "python -c 'import importlib.metadata as m; print(m.version(\"tinypkg\"))'"
    for n, pin, reused in ((1, "1.0", False), (2, "1.0", True), (3, "2.0", False)):
        app = write_app(
            tmp_path / f"build-{n}",
            {
                "requirements.txt": "-r requirements/base.txt\n",
                "requirements/base.txt": f"tinypkg=={pin}\n",
            },
        )
        lines = run_compile(python_bp(), app, cache, env, config)
        assert (REUSE_LINE in lines) is reused, lines
        assert run_in_dyno(app, version).stdout == f"{pin}\n"


def test_pyproject_without_dependencies_says_what_is_supported(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"pyproject.toml": "[tool.ruff]\nline-length = 100\n"})
    lines: list[str] = []
    with pytest.raises(BuildpackError):
        buildpack.compile(
            python_bp(), app, tmp_path / "cache", {}, platform_env(tmp_path), lines.append
        )
    assert any(line.startswith(" !     This app has pyproject.toml but no dependencies")
               for line in lines)
    assert any("uv.lock, Pipfile.lock or pyproject.toml" in line for line in lines)


# --- the python buildpack, from PyPI -----------------------------------------------------------


def test_compile_makes_a_relocatable_venv_for_the_dyno(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "build" / "app",
        {
            "requirements.txt": "six\npyflakes\n",
            "check.py": "import os\n",
        },
    )
    cache = tmp_path / "cache"
    lines = run_compile(python_bp(), app, cache, platform_env(tmp_path))
    assert lines[0] == "-----> Python app detected"
    assert lines[1].startswith("-----> Using Python 3.")
    assert INSTALL_HEADING in lines
    assert (cache / "venv.key").is_file() and (cache / "uv").is_dir()

    # Moved like the slug: the original path no longer exists.
    moved = tmp_path / "dyno-1" / "app"
    moved.parent.mkdir()
    shutil.move(app, moved)
    assert not app.exists()
    assert not files_naming(moved / ".heroku", str(app) + "/")
    result = run_in_dyno(
        moved,
        "\n".join(
            [
                "python -c 'import six, sys; print(sys.prefix)'",
                'echo "$PYTHONUNBUFFERED $VIRTUAL_ENV"',
                "pyflakes check.py || echo exit=$?",
            ]
        ),
    )
    venv = moved / ".heroku" / "venv"
    assert result.stdout.splitlines() == [
        str(venv),
        f"1 {venv}",
        "check.py:1:1: 'os' imported but unused",
        "exit=1",
    ], result.stderr


def test_unchanged_requirements_reuse_the_venv_and_changed_ones_reinstall(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    env = platform_env(tmp_path)
    first = write_app(tmp_path / "build-1", {"requirements.txt": "six\n", "app.py": "v = 1\n"})
    assert INSTALL_HEADING in run_compile(python_bp(), first, cache, env)

    # A code-only redeploy, in a fresh checkout as the build job makes one.
    second = write_app(tmp_path / "build-2", {"requirements.txt": "six\n", "app.py": "v = 2\n"})
    lines = run_compile(python_bp(), second, cache, env)
    assert REUSE_LINE in lines
    assert INSTALL_HEADING not in lines
    assert not any("Resolved" in line or "Installed" in line for line in lines)
    assert run_in_dyno(second, "python -c 'import six'").returncode == 0

    third = write_app(tmp_path / "build-3", {"requirements.txt": "six\npyflakes\n"})
    lines = run_compile(python_bp(), third, cache, env)
    assert REUSE_LINE not in lines
    assert INSTALL_HEADING in lines
    assert run_in_dyno(third, "python -c 'import six, pyflakes'").returncode == 0


def test_a_package_that_does_not_exist_fails_the_build_clearly(tmp_path: Path) -> None:
    missing = "paas-test-no-such-package-7d1c9e"
    app = write_app(tmp_path / "app", {"requirements.txt": f"{missing}\n"})
    cache = tmp_path / "cache"
    lines: list[str] = []
    with pytest.raises(BuildpackError, match="failed to compile; see the output above"):
        buildpack.compile(python_bp(), app, cache, {}, platform_env(tmp_path), lines.append)
    verdict = next(
        i
        for i, line in enumerate(lines)
        if line.startswith(" !     Could not install the requirements: ")
    )
    assert any(missing in line for line in lines[:verdict])  # the installer's own words first
    assert not (cache / "venv.key").exists()
