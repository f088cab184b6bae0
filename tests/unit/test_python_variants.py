"""The python buildpack on the other ways apps declare dependencies, run for real.

Fixture apps (tests/fixtures/py-*-app) are compiled with the real bin/compile and uv
from PyPI: pyproject.toml (PEP 621), uv.lock, Pipfile.lock (and a Pipfile alone), poetry,
setup.py (and setup.cfg alone), Django and an ASGI app; runtime.txt/.python-version
choose the interpreter; bin/release guesses a web process from what was installed. The
helper that converts Pipfile, poetry and setup.cfg declarations is also tested as plain
functions. Every build in this module shares one uv download cache, so each package is
fetched once.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from paas.build import buildpack
from tests.unit.test_buildpack import fake_buildpack, python_bp, run_in_dyno, write_app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LIB = buildpack.BUILDPACKS_DIR / "python" / "lib" / "dependency_sources.py"
STACK_PYTHON = "/usr/bin/python3"


def load_lib() -> ModuleType:
    """The buildpack's helper script as a module (it is not a package anyone imports)."""
    spec = importlib.util.spec_from_file_location("dependency_sources", LIB)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deps = load_lib()


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A tools dir (uv), a HOME and one uv cache for every build of this module."""
    base = tmp_path_factory.mktemp("python-variants")
    tools = buildpack.ensure_tools(base / "tools")
    (base / "home").mkdir()
    (base / "uv").mkdir()
    yield {"tools": tools, "home": base / "home", "uv": base / "uv", "base": base}


def env_of(shared: dict[str, Path], **extra: str) -> dict[str, str]:
    return buildpack.build_env([shared["tools"]], home=shared["home"]) | extra


def new_cache(path: Path, shared: dict[str, Path]) -> Path:
    """A build cache whose uv download cache is the module's shared one."""
    path.mkdir(parents=True)
    (path / "uv").symlink_to(shared["uv"])
    return path


def copy_fixture(name: str, dest: Path, *, procfile: bool = True) -> Path:
    shutil.copytree(FIXTURES / name, dest)
    if not procfile:
        (dest / "Procfile").unlink()
    return dest


def compile_app(
    app: Path,
    cache: Path,
    shared: dict[str, Path],
    config: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    lines: list[str] = []
    buildpack.compile(python_bp(), app, cache, config or {}, env or env_of(shared),
                      lines.append, timeout=600)
    return lines


def failing_compile(
    app: Path, cache: Path, shared: dict[str, Path], env: dict[str, str] | None = None
) -> list[str]:
    lines: list[str] = []
    with pytest.raises(buildpack.BuildpackError, match="failed to compile"):
        buildpack.compile(python_bp(), app, cache, {}, env or env_of(shared), lines.append,
                          timeout=600)
    return lines


def versions(app: Path, *names: str) -> list[str]:
    """The installed version of each distribution in the app's venv, as the dyno sees it."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for n in sys.argv[1:]:\n"
        "    try: print(m.version(n))\n"
        "    except m.PackageNotFoundError: print('-')\n"
    )
    result = run_in_dyno(app, f"python -c {shlex.quote(code)} {' '.join(names)}")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def release_of(app: Path, shared: dict[str, Path]) -> dict[str, str]:
    return buildpack.release(python_bp(), app, env_of(shared))


def has_installer_output(lines: list[str]) -> bool:
    return any(word in line for line in lines for word in ("Resolved", "Installed", "Prepared"))


# --- pyproject.toml (PEP 621) ---------------------------------------------------------------


def test_pyproject_app_installs_its_dependencies_and_gets_a_gunicorn_web_process(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    app = copy_fixture("py-pyproject-app", tmp_path / "app", procfile=False)
    lines = compile_app(app, new_cache(tmp_path / "cache", shared), shared)
    assert "-----> Installing dependencies from pyproject.toml with uv" in lines
    assert versions(app, "gunicorn")[0] != "-"
    assert release_of(app, shared) == {"web": "gunicorn app:app"}
    # The default command has no --bind: the installed gunicorn binds 0.0.0.0:$PORT itself.
    bind = run_in_dyno(
        app, "PORT=4321 python -c 'from gunicorn.config import Config; print(Config().bind)'"
    )
    assert bind.stdout.strip() == "['0.0.0.0:4321']", bind.stderr


# --- uv.lock ------------------------------------------------------------------------------------


def test_uv_lock_is_reused_while_unchanged_and_reinstalled_when_it_changes(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    cache = new_cache(tmp_path / "cache", shared)
    first = copy_fixture("py-uvlock-app", tmp_path / "build-1")
    lines = compile_app(first, cache, shared)
    assert "-----> Installing dependencies from uv.lock with uv" in lines
    # The lock's version, and not the dev group.
    assert versions(first, "gunicorn", "pyflakes") == ["27.0.1", "-"]

    # A code-only redeploy, in a fresh checkout as the build job makes one.
    second = copy_fixture("py-uvlock-app", tmp_path / "build-2")
    (second / "app.py").write_text((second / "app.py").read_text().replace("hello", "hi"))
    lines = compile_app(second, cache, shared)
    assert "       uv.lock unchanged; reusing the installed dependencies" in lines
    assert not any(line.startswith("-----> Installing") for line in lines)
    assert not has_installer_output(lines)
    assert versions(second, "gunicorn") == ["27.0.1"]

    # One more dependency, locked with uv as the developer would.
    third = copy_fixture("py-uvlock-app", tmp_path / "build-3")
    pyproject = third / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["gunicorn"]', '["gunicorn", "six"]'))
    subprocess.run(
        [shared["tools"] / "uv", "lock", "--python", STACK_PYTHON, "--quiet"],
        cwd=third, check=True, timeout=120,
        env=env_of(shared, UV_CACHE_DIR=str(shared["uv"]), UV_PYTHON_DOWNLOADS="never",
                   UV_SYSTEM_CERTS="1"),
    )
    lines = compile_app(third, cache, shared)
    assert "-----> Installing dependencies from uv.lock with uv" in lines
    assert not any("reusing" in line for line in lines)
    assert versions(third, "gunicorn", "six")[0] == "27.0.1"
    assert versions(third, "six")[0] != "-"


def test_a_uv_lock_that_no_longer_matches_pyproject_fails_the_build(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    app = copy_fixture("py-uvlock-app", tmp_path / "app")
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["gunicorn"]', '["gunicorn", "six"]'))
    lines = failing_compile(app, new_cache(tmp_path / "cache", shared), shared)
    assert any("uv lock" in line and not line.startswith(" !") for line in lines)  # uv's hint
    assert " !     above names the failing package or line. Fix pyproject.toml, run `uv lock`, " \
           "commit both files and push again." in lines


# A PEP 517 backend kept in the app (backend-path), so a packaged app builds offline.
IN_TREE_BACKEND = """
import base64, hashlib, pathlib, zipfile

def _wheel(directory, name, version):
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": pathlib.Path(name, "__init__.py").read_text(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
             f"{info}/entry_points.txt": f"[console_scripts]\\n{name}-hello = {name}:main\\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\\n".join(record + [f"{info}/RECORD,,"]) + "\\n"
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(directory, wheel), "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, "pkgapp", "0.1.0")
"""


def test_a_uv_project_that_is_a_package_is_installed_afresh_at_every_build(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    files = {
        "pyproject.toml": (
            '[project]\nname = "pkgapp"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            'dependencies = []\n\n[build-system]\nrequires = []\n'
            'build-backend = "backend"\nbackend-path = ["_build"]\n'
        ),
        "_build/backend.py": IN_TREE_BACKEND,
        "pkgapp/__init__.py": "def main():\n    print('one')\n",
    }
    cache = new_cache(tmp_path / "cache", shared)
    # Both builds in one path, as runc builds are (/build).
    first = write_app(tmp_path / "build", files)
    subprocess.run(
        [shared["tools"] / "uv", "lock", "--offline", "--python", STACK_PYTHON, "--quiet"],
        cwd=first, check=True, timeout=120,
        env=env_of(shared, UV_CACHE_DIR=str(shared["uv"]), UV_PYTHON_DOWNLOADS="never"),
    )
    files["uv.lock"] = (first / "uv.lock").read_text()
    lines = compile_app(first, cache, shared)
    assert "-----> Installing the app's own package (pyproject.toml has a [build-system])" in lines
    assert run_in_dyno(first, "cd / && pkgapp-hello").stdout == "one\n"

    # Same lock, new code: the dependencies are reused, the package is built again.
    files["pkgapp/__init__.py"] = "def main():\n    print('two')\n"
    shutil.move(first, tmp_path / "build-1")
    second = write_app(tmp_path / "build", files)
    lines = compile_app(second, cache, shared)
    assert "       uv.lock unchanged; reusing the installed dependencies" in lines
    assert run_in_dyno(second, "cd / && pkgapp-hello").stdout == "two\n"


# --- Pipfile.lock -------------------------------------------------------------------------------


def test_pipfile_lock_installs_its_default_section_at_the_locked_versions(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    app = copy_fixture("py-pipfile-app", tmp_path / "app")
    lines = compile_app(app, new_cache(tmp_path / "cache", shared), shared)
    assert "-----> Installing dependencies from Pipfile.lock with uv" in lines
    assert lines[1].startswith("-----> Using Python 3.11.")  # runtime.txt: python-3.11
    assert versions(app, "gunicorn", "packaging", "pyflakes") == ["23.0.0", "24.1", "-"]


def test_a_pipfile_without_its_lock_installs_its_packages_and_says_to_lock_it(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    app = write_app(tmp_path / "app", {
        "Pipfile": (
            '[[source]]\nurl = "https://pypi.org/simple"\nname = "pypi"\n\n'
            '[packages]\npackaging = "==24.1"\nsix = "*"\n\n[dev-packages]\npyflakes = "*"\n'
        ),
    })
    lines = compile_app(app, new_cache(tmp_path / "cache", shared), shared)
    assert (" !     This app has a Pipfile but no Pipfile.lock: its [packages] are resolved "
            "afresh, to") in lines
    assert "-----> Installing dependencies from Pipfile with uv" in lines
    installed = versions(app, "packaging", "six", "pyflakes")
    assert installed[0] == "24.1" and installed[1] != "-" and installed[2] == "-"


# --- poetry -----------------------------------------------------------------------------------


def test_poetry_app_installs_the_main_group_at_the_locked_versions(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    app = copy_fixture("py-poetry-app", tmp_path / "app")
    lines = compile_app(app, new_cache(tmp_path / "cache", shared), shared)
    assert "-----> Installing dependencies from pyproject.toml and poetry.lock with uv" in lines
    # packaging is not in pyproject.toml at all; poetry.lock pins it below the newest.
    assert versions(app, "gunicorn", "packaging", "pyflakes") == ["23.0.0", "24.1", "-"]


# --- setup.py and setup.cfg ----------------------------------------------------------------------


INSTALLED_HELLO = "cd / && env -u PYTHONPATH py-setuppy-hello"


def test_a_setup_py_app_is_installed_itself_with_new_code_at_every_build(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    cache = new_cache(tmp_path / "cache", shared)
    # Both builds in one path, as runc builds are (/build).
    first = copy_fixture("py-setuppy-app", tmp_path / "build")
    lines = compile_app(first, cache, shared)
    assert "-----> Installing the app and its dependencies from setup.py with uv" in lines
    # setuptools' build/ and egg-info are not left in the slug.
    assert sorted(path.name for path in first.iterdir()) == [
        ".heroku", ".profile.d", "Procfile", "app.py", "setup.py"
    ]
    assert versions(first, "py-setuppy-app") == ["0.1.0"]
    assert versions(first, "gunicorn")[0] != "-"
    # The console script, away from the app dir: the installed copy of the app answers.
    assert run_in_dyno(first, INSTALLED_HELLO).stdout == "hello from the installed setup.py app\n"

    # The same setup.py with new code: the app is built again.
    shutil.move(first, tmp_path / "build-1")
    second = copy_fixture("py-setuppy-app", tmp_path / "build")
    (second / "app.py").write_text(
        (second / "app.py").read_text().replace("the installed", "the rebuilt")
    )
    lines = compile_app(second, cache, shared)
    assert "       setup.py installs the app itself, so the dependencies are installed at " \
        "every build" in lines
    assert run_in_dyno(second, INSTALLED_HELLO).stdout == "hello from the rebuilt setup.py app\n"


def test_a_setup_cfg_alone_installs_its_install_requires(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    app = write_app(tmp_path / "app", {
        "setup.cfg": (
            "[metadata]\nname = cfgapp\n\n[options]\npy_modules = app\n"
            "install_requires =\n    packaging==24.1\n    six\n"
        ),
        "app.py": "",
    })
    lines = compile_app(app, new_cache(tmp_path / "cache", shared), shared)
    assert "-----> Installing dependencies from setup.cfg with uv" in lines
    assert versions(app, "packaging", "cfgapp")[0] == "24.1"
    assert versions(app, "six", "cfgapp")[1] == "-"  # the app is on PYTHONPATH, not installed


def test_detect_claims_setup_py_and_a_project_setup_cfg_only(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    env = env_of(shared)
    for files in ({"setup.py": ""}, {"setup.cfg": "[metadata]\nname = x\n"}):
        app = write_app(tmp_path / str(len(files)) / next(iter(files)), files)
        assert buildpack.detect(app, [python_bp()], env)[1] == "Python"
    tool_settings = write_app(tmp_path / "tools", {"setup.cfg": "[flake8]\nignore = E501\n"})
    with pytest.raises(buildpack.BuildpackError):
        buildpack.detect(tool_settings, [python_bp()], env)


# --- the export file ----------------------------------------------------------------------------


def test_the_export_file_puts_the_venv_first_for_the_next_buildpack(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    # A copy of the buildpack, as the build job runs one, with a stale export in it.
    python = buildpack.Buildpack(
        "python", shutil.copytree(python_bp().path, tmp_path / "buildpacks" / "python")
    )
    export = python.path / "export"
    export.write_text("export FROM_AN_EARLIER_BUILD=1\n")
    reader = fake_buildpack(tmp_path / "buildpacks", "reader", compile="\n".join([
        'echo "python=$(command -v python)"',
        'echo "VIRTUAL_ENV=$VIRTUAL_ENV FROM_AN_EARLIER_BUILD=${FROM_AN_EARLIER_BUILD:-unset}"',
        "python -c 'import packaging; print(packaging.__version__)'",
    ]))
    app = write_app(tmp_path / "app", {"requirements.txt": "packaging==24.1\n"})
    cache = new_cache(tmp_path / "cache", shared)
    compile_app_with(python, app, cache, shared)
    venv = app / ".heroku" / "venv"
    assert export.read_text() == f'export PATH={venv}/bin:"$PATH"\nexport VIRTUAL_ENV={venv}\n'

    lines = compile_app_with(reader, app, cache, shared, exports=[export])
    assert lines == [f"python={venv}/bin/python",
                     f"VIRTUAL_ENV={venv} FROM_AN_EARLIER_BUILD=unset", "24.1"]

    # A build that fails leaves no export behind for the next buildpack to trust.
    (app / "runtime.txt").write_text("python-3.99\n")
    with pytest.raises(buildpack.BuildpackError):
        compile_app_with(python, app, cache, shared)
    assert not export.exists()


def compile_app_with(
    bp: buildpack.Buildpack, app: Path, cache: Path, shared: dict[str, Path],
    exports: list[Path] | None = None,
) -> list[str]:
    lines: list[str] = []
    buildpack.compile(bp, app, cache, {}, env_of(shared), lines.append, timeout=600,
                      exports=exports or ())
    return lines


# --- Django -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_cache(shared: dict[str, Path]) -> Path:
    """One build cache for the Django tests: Django is installed once, then reused."""
    return new_cache(shared["base"] / "django-cache", shared)


def test_django_collectstatic_fills_static_root_and_gunicorn_serves_the_project(
    tmp_path: Path, shared: dict[str, Path], django_cache: Path
) -> None:
    app = copy_fixture("py-django-app", tmp_path / "app", procfile=False)
    lines = compile_app(app, django_cache, shared)
    assert "-----> Running python manage.py collectstatic --noinput" in lines
    assert any("1 static file copied" in line for line in lines)
    assert (app / "staticfiles" / "site.css").is_file()
    assert not list(app.glob("mysite/__pycache__"))  # no stale .pyc in the slug
    assert release_of(app, shared) == {"web": "gunicorn mysite.wsgi"}


def test_disable_collectstatic_skips_it(
    tmp_path: Path, shared: dict[str, Path], django_cache: Path
) -> None:
    app = copy_fixture("py-django-app", tmp_path / "app")
    lines = compile_app(app, django_cache, shared, config={"DISABLE_COLLECTSTATIC": "1"})
    assert "       DISABLE_COLLECTSTATIC is set; skipping python manage.py collectstatic" in lines
    assert not any("collectstatic --noinput" in line for line in lines)
    assert not (app / "staticfiles").exists()


def test_a_failing_collectstatic_fails_the_build_with_its_output_and_the_fix(
    tmp_path: Path, shared: dict[str, Path], django_cache: Path
) -> None:
    app = copy_fixture("py-django-app", tmp_path / "app")
    settings = app / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace("STATIC_ROOT =", "# STATIC_ROOT ="))
    lines = failing_compile(app, django_cache, shared)
    verdict = lines.index(
        " !     collectstatic failed; its output is above. Fix the error (often STATIC_ROOT is"
    )
    assert any("STATIC_ROOT setting" in line for line in lines[:verdict])
    assert any("DISABLE_COLLECTSTATIC=1" in line for line in lines[verdict:])


# --- ASGI -------------------------------------------------------------------------------------


def test_asgi_app_with_uvicorn_gets_a_uvicorn_web_process(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    app = copy_fixture("py-asgi-app", tmp_path / "app", procfile=False)
    compile_app(app, new_cache(tmp_path / "cache", shared), shared)
    assert versions(app, "uvicorn")[0] != "-"
    assert release_of(app, shared) == {"web": "uvicorn main:app --host 0.0.0.0 --port $PORT"}


def fake_venv(app: Path, *packages: str) -> None:
    for name in packages:
        init = app / ".heroku/venv/lib/python3.11/site-packages" / name / "__init__.py"
        init.parent.mkdir(parents=True)
        init.touch()


@pytest.mark.parametrize(
    ("files", "packages", "expected"),
    [
        ({"app.py": "from fastapi import FastAPI\napp = FastAPI()\n"}, ("gunicorn", "uvicorn"),
         "uvicorn app:app --host 0.0.0.0 --port $PORT"),
        ({"app.py": "from flask import Flask\napp = Flask(__name__)\n"}, ("gunicorn", "uvicorn"),
         "gunicorn app:app"),
        ({"asgi.py": "async def app(scope, receive, send):\n    pass\n"}, ("uvicorn",),
         "uvicorn asgi:app --host 0.0.0.0 --port $PORT"),
        ({"wsgi.py": "application = make()\n"}, ("gunicorn",), "gunicorn wsgi:application"),
        ({"manage.py": "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings.prod')\n",
          "proj/wsgi.py": "application = 1\n"}, ("gunicorn",), "gunicorn proj.wsgi"),
        # requirements.txt names gunicorn, but the venv (what was installed) does not have it.
        ({"requirements.txt": "gunicorn\n", "app.py": "app = 1\n"}, ("flask",), None),
        ({"main.py": "app = 1\n"}, ("gunicorn",), None),
    ],
)
def test_release_guesses_the_web_process_from_the_installed_venv(
    tmp_path: Path,
    shared: dict[str, Path],
    files: dict[str, str],
    packages: tuple[str, ...],
    expected: str | None,
) -> None:
    app = write_app(tmp_path / "app", files)
    fake_venv(app, *packages)
    assert release_of(app, shared) == ({"web": expected} if expected else {})


# --- the interpreter ------------------------------------------------------------------------


def stack_python_version() -> str:
    return subprocess.run(
        [STACK_PYTHON, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def test_a_python_the_stack_lacks_fails_listing_the_versions_it_has(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    minor = ".".join(stack_python_version().split(".")[:2])
    app = write_app(tmp_path / "app", {"requirements.txt": "", "runtime.txt": "python-3.99\n"})
    lines = failing_compile(app, tmp_path / "cache", shared)
    assert (
        f" !     This app asks for Python 3.99 (runtime.txt); this stack has: {minor}. "
        "Change runtime.txt or use another stack."
    ) in lines

    # Every python3.X of the stack's directories is listed (here: a fake 3.98 beside it).
    pythons = tmp_path / "pythons"
    pythons.mkdir()
    (pythons / f"python{minor}").symlink_to(STACK_PYTHON)
    (pythons / "python3.98").write_text("#!/bin/sh\necho 3.98.0\n")
    (pythons / "python3.98").chmod(0o755)
    (pythons / "python3.98-config").write_text("")
    app = write_app(tmp_path / "app2", {"requirements.txt": "", ".python-version": "3.99\n"})
    lines = failing_compile(app, tmp_path / "cache", shared,
                            env=env_of(shared, PAAS_STACK_PYTHON_DIRS=str(pythons)))
    assert (
        f" !     This app asks for Python 3.99 (.python-version); this stack has: {minor}, 3.98. "
        "Change .python-version or use another stack."
    ) in lines


def test_the_same_minor_with_another_patch_is_used_with_a_note(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    version = stack_python_version()
    major, minor, patch = version.split(".")[:3]
    other = f"{major}.{minor}.{int(patch) + 1}"
    app = write_app(tmp_path / "app", {"requirements.txt": "", "runtime.txt": f"python-{other}\n"})
    lines = compile_app(app, tmp_path / "cache", shared)
    assert lines[1] == f"-----> Using Python {version} ({STACK_PYTHON})"
    assert lines[2] == (
        f"       runtime.txt asks for Python {other}; this stack has {version}, the same minor"
    )
    assert run_in_dyno(app, "python -c 'import sys; print(sys.version_info[1])'").stdout == (
        f"{minor}\n"
    )


@pytest.mark.parametrize("text", ["python-three", "3", "pypy-3.10"])
def test_a_version_file_that_is_not_a_version_says_how_to_write_one(
    tmp_path: Path, shared: dict[str, Path], text: str
) -> None:
    app = write_app(tmp_path / "app", {"requirements.txt": "", "runtime.txt": text})
    lines = failing_compile(app, tmp_path / "cache", shared)
    assert (
        f" !     runtime.txt says '{text}', which is not a Python version this buildpack reads."
    ) in lines


# --- the helper script: poetry --------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("^1.2", ">=1.2,<2.0"),
        ("^1.2.3", ">=1.2.3,<2.0.0"),
        ("^0.2.3", ">=0.2.3,<0.3.0"),
        ("^0.0.3", ">=0.0.3,<0.0.4"),
        ("^0", ">=0,<1"),
        ("~1.2", ">=1.2,<1.3"),
        ("~1.2.3", ">=1.2.3,<1.3.0"),
        ("~1", ">=1,<2"),
        ("*", ""),
        ("", ""),
        ("1.2.3", "==1.2.3"),
        ("=1.2", "==1.2"),
        ("1.2.*", "==1.2.*"),
        (">= 1.2, < 2.0", ">=1.2,<2.0"),
        (">=1.2 <2.0", ">=1.2,<2.0"),
        ("~=1.4", "~=1.4"),
        ("^2.0.0b1", ">=2.0.0b1,<3.0.0"),
    ],
)
def test_poetry_constraints_become_pep440_specifiers(constraint: str, expected: str) -> None:
    assert deps.poetry_constraint(constraint) == expected


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("^1.0 || ^2.0", ">=1.0,<3.0"),
        ("^1.0 | ^2.0", ">=1.0,<3.0"),
        ("^2.0 || ^1.0", ">=1.0,<3.0"),
        ("~1.2 || ~1.3", ">=1.2,<1.4"),
        (">=1,<1.4 || >=1.2,<2", ">=1,<2"),
        ("1.2.* || 1.3.*", ">=1.2,<1.4"),
        ("^1.0 || ^3.0", ">=1.0,<4.0,!=2.*"),
        ("^1.2 || ^3", ">=1.2,<4,!=2.*"),
        ("<1.3 || >=1.5", "!=1.3.*,!=1.4.*"),
        ("<1.5 || >1.5", "!=1.5"),
        ("^0.2 || ^0.4", ">=0.2,<0.5,!=0.3.*"),
        ("* || ^1.0", ""),
        ("1.2.3 || 1.2.3", "==1.2.3"),
    ],
)
def test_either_or_poetry_constraints_become_one_range_less_its_gaps(
    constraint: str, expected: str
) -> None:
    assert deps.poetry_constraint(constraint) == expected


@pytest.mark.parametrize("constraint", ["~1.2 || ^2.0", "1.2 || 1.4", "^1.0 || !=2.5"])
def test_an_either_or_poetry_constraint_a_requirement_cannot_express_is_refused(
    constraint: str,
) -> None:
    with pytest.raises(deps.UnsupportedDeclaration, match="narrow"):
        deps.poetry_constraint(constraint)


def test_an_either_or_python_constraint_becomes_an_or_marker() -> None:
    assert deps.python_marker("~3.10 || >=3.12") == (
        '(python_full_version >= "3.10" and python_full_version < "3.11") '
        'or python_full_version >= "3.12"'
    )
    assert deps.python_marker("3.11 || *") == ""
    assert deps.poetry_dependency_lines(
        "six", {"version": "^1.0 || ^2.0", "python": "3.11 || 3.12"}, Path("/b"), {}, []
    ) == ['six>=1.0,<3.0 ; python_version == "3.11" or python_version == "3.12"']


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("^2.31", ["requests>=2.31,<3.0"]),
        ({"version": "^2.31", "extras": ["socks"]}, ["requests[socks]>=2.31,<3.0"]),
        ({"version": "*", "python": "^3.8"},
         ['requests ; python_full_version >= "3.8" and python_full_version < "4.0"']),
        ({"version": "2.31.0", "markers": "sys_platform == 'linux'", "python": "3.11"},
         ["requests==2.31.0 ; (python_version == \"3.11\") and (sys_platform == 'linux')"]),
        ({"version": "^2", "optional": True}, []),
        ({"git": "https://github.com/psf/requests.git", "tag": "v2.31.0"},
         ["requests @ git+https://github.com/psf/requests.git@v2.31.0"]),
        ({"url": "https://example.com/requests-2.31.0.tar.gz"},
         ["requests @ https://example.com/requests-2.31.0.tar.gz"]),
        ([{"version": "^2", "python": "<3.8"}, {"version": "^3", "python": ">=3.8"}],
         ['requests>=2,<3 ; python_full_version < "3.8"',
          'requests>=3,<4 ; python_full_version >= "3.8"']),
    ],
)
def test_poetry_dependency_tables_become_requirement_lines(
    spec: object, expected: list[str]
) -> None:
    warnings: list[str] = []
    assert deps.poetry_dependency_lines("requests", spec, Path("/app"), {}, warnings) == expected
    assert warnings == []


def test_a_poetry_path_dependency_is_a_file_url_and_develop_is_dropped_with_a_warning() -> None:
    warnings: list[str] = []
    lines = deps.poetry_dependency_lines(
        "mylib", {"path": "libs/mylib", "develop": True}, Path("/build"), {}, warnings
    )
    assert lines == ["mylib @ file:///build/libs/mylib"]
    assert "develop = true" in warnings[0]


def test_poetry_requirements_pin_through_the_lock_and_keep_the_sources() -> None:
    pyproject = {
        "tool": {
            "poetry": {
                "dependencies": {
                    "python": "^3.11",
                    "Flask": "^3.0",
                    "mylib": {"git": "https://example.com/mylib.git", "branch": "main"},
                },
                "source": [
                    {"name": "corp", "url": "https://pypi.corp.example/simple",
                     "priority": "supplemental"},
                ],
            }
        }
    }
    lock = {
        "package": [
            {"name": "flask", "version": "3.0.3"},
            {"name": "werkzeug", "version": "3.0.4"},
            {"name": "pyflakes", "version": "3.2.0"},  # dev group: a constraint installs nothing
            {"name": "mylib", "version": "1.0",
             "source": {"type": "git", "url": "https://example.com/mylib.git",
                        "reference": "main", "resolved_reference": "abc123"}},
            {"name": "numpy", "version": "1.24.4"},
            {"name": "numpy", "version": "2.1.0"},
            {"name": "private", "version": "0.1",
             "source": {"type": "legacy", "url": "https://pypi.corp.example/simple",
                        "reference": "corp"}},
        ]
    }
    lines, constraints, warnings = deps.poetry_requirements(pyproject, lock, Path("/build"))
    assert lines == [
        "--extra-index-url https://pypi.corp.example/simple",
        "Flask>=3.0,<4.0",
        "mylib @ git+https://example.com/mylib.git@abc123",
    ]
    # numpy is locked twice (one per Python range): uv chooses; git pins go in the line.
    assert constraints == ["flask==3.0.3", "private==0.1", "pyflakes==3.2.0", "werkzeug==3.0.4"]
    assert warnings == []


def test_poetry_2_projects_use_their_pep621_dependencies_with_the_lock() -> None:
    pyproject = {"project": {"name": "x", "dependencies": ["flask>=3"]},
                 "tool": {"poetry": {"package-mode": False}},
                 "build-system": {"build-backend": "poetry.core.masonry.api"}}
    lines, constraints, _ = deps.poetry_requirements(
        pyproject, {"package": [{"name": "flask", "version": "3.0.3"}]}, Path("/b")
    )
    assert (lines, constraints) == (["flask>=3"], ["flask==3.0.3"])
    assert deps.project_info(pyproject, None, poetry_lock=True)["kind"] == "poetry"
    assert deps.project_info(pyproject, None, poetry_lock=False)["kind"] == "pep621"


# --- the helper script: Pipfile.lock and pyproject.toml ---------------------------------------


def test_pipfile_lock_default_section_becomes_pinned_requirements() -> None:
    lock = {
        "_meta": {"sources": [
            {"name": "pypi", "url": "https://pypi.org/simple", "verify_ssl": True},
            {"name": "corp", "url": "https://${CORP_TOKEN}@pypi.corp.example/simple"},
        ]},
        "default": {
            "requests": {"version": "==2.31.0", "extras": ["socks"],
                         "markers": "python_version >= '3.7'", "hashes": ["sha256:aa"]},
            "six": {"version": "==1.16.0", "index": "corp"},
            "mylib": {"git": "https://example.com/mylib.git", "ref": "abc123"},
            "local": {"path": "./libs/local", "editable": True},
            "anything": {"version": "*"},
        },
        "develop": {"pytest": {"version": "==8.0.0"}},
    }
    lines, warnings = deps.pipfile_lock_requirements(lock, Path("/build"))
    assert lines == [
        "--extra-index-url https://${CORP_TOKEN}@pypi.corp.example/simple",
        "anything",
        "local @ file:///build/libs/local",
        "mylib @ git+https://example.com/mylib.git@abc123",
        "requests[socks]==2.31.0 ; python_version >= '3.7'",
        "six==1.16.0",
    ]
    assert len(warnings) == 1 and warnings[0].startswith("local: installed as a regular package")


def test_a_pipfile_without_its_lock_becomes_its_packages_as_written() -> None:
    pipfile = {
        "source": [{"name": "corp", "url": "https://pypi.corp.example/simple"},
                   {"name": "pypi", "url": "https://pypi.org/simple"}],
        "packages": {
            "Flask": "*",
            "requests": {"version": ">=2.31", "extras": ["socks"]},
            "pywin32": {"version": "*", "sys_platform": "== 'win32'"},
            "uvloop": {"version": "==0.19.0", "markers": "python_version >= '3.8'",
                       "platform_system": "!= 'Windows'"},
            "mylib": {"git": "https://example.com/mylib.git", "ref": "v1"},
            "local": {"path": "libs/local", "editable": True},
        },
        "dev-packages": {"pytest": "*"},
    }
    lines, warnings = deps.pipfile_requirements(pipfile, Path("/build"))
    assert lines == [
        "--index-url https://pypi.corp.example/simple",
        "Flask",
        "requests[socks]>=2.31",
        "pywin32 ; sys_platform == 'win32'",
        "uvloop==0.19.0 ; (python_version >= '3.8') and (platform_system != 'Windows')",
        "mylib @ git+https://example.com/mylib.git@v1",
        "local @ file:///build/libs/local",
    ]
    assert len(warnings) == 1 and warnings[0].startswith("local: installed as a regular package")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[options]\ninstall_requires =\n    flask>=3\n    # a comment\n"
         "    six ; python_version<'4'\n", ["flask>=3", "six ; python_version<'4'"]),
        ("[options]\ninstall_requires = flask>=3; six\n", ["flask>=3", "six"]),
        ("[metadata]\nname = x\n", []),
    ],
)
def test_setup_cfg_install_requires_become_requirement_lines(
    text: str, expected: list[str]
) -> None:
    assert deps.setup_cfg_requirements(text) == expected


def test_setup_cfg_install_requires_from_a_file_is_refused_with_what_to_do() -> None:
    with pytest.raises(deps.UnsupportedDeclaration, match="as requirements.txt"):
        deps.setup_cfg_requirements("[options]\ninstall_requires = file: reqs.in\n")


def test_pipfile_lock_from_a_private_index_only_sets_the_index_url(tmp_path: Path) -> None:
    # Through the script itself, with the stack's python, as bin/compile runs it.
    lock = tmp_path / "Pipfile.lock"
    lock.write_text('{"_meta": {"sources": [{"url": "https://mirror.example/simple"}]},'
                    ' "default": {"six": {"version": "==1.16.0"}}}')
    out = tmp_path / "requirements.txt"
    subprocess.run([STACK_PYTHON, LIB, "pipfile-lock", lock, tmp_path, out], check=True)
    assert out.read_text() == "--index-url https://mirror.example/simple\nsix==1.16.0\n"


def test_the_script_names_a_broken_file_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n")
    done = subprocess.run([STACK_PYTHON, LIB, "project", tmp_path / "pyproject.toml", "", ""],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("pyproject.toml is not valid TOML")


@pytest.mark.parametrize(
    ("pyproject", "uv_lock", "expected"),
    [
        ({"project": {"name": "a", "dependencies": ["flask"]}}, None,
         {"kind": "pep621", "deps": "1", "local": "0", "package": "0", "name": "a"}),
        ({"project": {"name": "a"}}, None,
         {"kind": "pep621", "deps": "0", "local": "0", "package": "0", "name": "a"}),
        ({"project": {"name": "a", "dynamic": ["dependencies"]}, "build-system": {}}, None,
         {"kind": "pep621", "deps": "1", "local": "1", "package": "1", "name": "a"}),
        ({"project": {"name": "a", "dependencies": ["lib @ file:///x"]}}, None,
         {"kind": "pep621", "deps": "1", "local": "1", "package": "0", "name": "a"}),
        ({"tool": {"poetry": {"dependencies": {"python": "^3.11"}}}}, None,
         {"kind": "poetry", "deps": "0", "local": "0", "package": "0", "name": ""}),
        ({"tool": {"black": {}}}, None,
         {"kind": "none", "deps": "0", "local": "0", "package": "0", "name": ""}),
        ({"project": {"name": "a", "dependencies": ["lib"]}, "build-system": {},
          "tool": {"uv": {"package": False, "sources": {"lib": {"path": "libs/lib"}}}}},
         {"package": [{"name": "a", "source": {"editable": "."}},
                      {"name": "lib", "source": {"directory": "libs/lib"}}]},
         {"kind": "pep621", "deps": "1", "local": "1", "package": "0", "name": "a"}),
        ({"project": {"name": "a", "dependencies": ["six"]}},
         {"package": [{"name": "a", "source": {"virtual": "."}},
                      {"name": "six", "source": {"registry": "https://pypi.org/simple"}}]},
         {"kind": "pep621", "deps": "1", "local": "0", "package": "0", "name": "a"}),
    ],
)
def test_project_info_says_how_to_install_a_pyproject(
    pyproject: dict, uv_lock: dict | None, expected: dict[str, str]
) -> None:
    assert deps.project_info(pyproject, uv_lock, poetry_lock=False) == expected
