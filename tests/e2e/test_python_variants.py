"""git push of Python apps that declare dependencies other than in requirements.txt.

Each fixture (pyproject.toml, uv.lock, Pipfile.lock, poetry, setup.py, Django) is pushed to
the session's platform, built by the python buildpack and answers through the router. The
fixtures' Procfiles bind 127.0.0.1; the buildpack's own default web process (which binds 0.0.0.0)
is checked in the release without ever running it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform import Platform, make_app_repo, wait_until

pytestmark = pytest.mark.slow


def push(platform: Platform, app: str, repo: Path) -> str:
    return platform.git("push", platform.remote_url(app, platform.token), "main",
                        cwd=repo).stderr


def commit_all(platform: Platform, repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=repo, check=True, env=platform.env())


@pytest.mark.parametrize(
    ("fixture", "app", "heading", "page"),
    [
        ("py-pyproject-app", "py-pyproject", "Installing dependencies from pyproject.toml with uv",
         "hello from pyproject on Python 3."),
        ("py-uvlock-app", "py-uvlock", "Installing dependencies from uv.lock with uv",
         "hello from uvlock on Python 3.11 "),
        ("py-pipfile-app", "py-pipfile", "Installing dependencies from Pipfile.lock with uv",
         "hello from pipfile on Python 3.11 "),
        ("py-poetry-app", "py-poetry",
         "Installing dependencies from pyproject.toml and poetry.lock with uv",
         "hello from poetry on Python 3."),
        ("py-setuppy-app", "py-setuppy",
         "Installing the app and its dependencies from setup.py with uv",
         "hello from setup.py on Python 3."),
        ("py-django-app", "py-django", "Running python manage.py collectstatic --noinput",
         "hello from django static=True\n"),
    ],
)
def test_a_python_app_deploys_from_its_dependency_source_and_answers(
    platform: Platform, workdir: Path, fixture: str, app: str, heading: str, page: str
) -> None:
    platform.cli("apps:create", app)
    out = push(platform, app, make_app_repo(workdir / fixture, fixture=fixture))
    assert f"remote: -----> {heading}" in out, out
    response = platform.get_app(app)
    assert response.status_code == 200, response.text
    assert response.text.startswith(page), response.text


def test_without_a_procfile_the_release_gets_the_default_web_process(
    platform: Platform, workdir: Path
) -> None:
    # Served from its Procfile first; then, scaled to zero so nothing binds 0.0.0.0, the
    # Procfile goes and the release takes bin/release's default.
    app = "py-defaultweb"
    platform.cli("apps:create", app)
    repo = make_app_repo(workdir / "app", fixture="py-pyproject-app")
    push(platform, app, repo)
    assert platform.get_app(app).status_code == 200
    platform.cli("ps:scale", "web=0", "-a", app)

    (repo / "Procfile").unlink()
    commit_all(platform, repo, "no Procfile")
    out = push(platform, app, repo)
    assert "pyproject.toml unchanged; reusing the installed dependencies" in out
    assert "Default types for buildpack -> web" in out
    latest = platform.api("GET", f"/apps/{app}/releases").json()[0]
    assert latest["process_types"] == {"web": "gunicorn app:app"}
    # web.1 drains and stops after the scale to zero, while the push builds
    wait_until(lambda: platform.api("GET", f"/apps/{app}/dynos").json() == [], timeout=60,
               what="the scaled-down web.1 to stop")
