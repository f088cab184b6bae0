"""The buildpack API end to end: buildpacks by URL, several in a row, .buildpacks, the
generic Procfile buildpack, the build cache, and what a push that nothing detects says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform import (
    FIXTURES,
    Platform,
    commit_change,
    make_app_repo,
    running_platform,
)

pytestmark = pytest.mark.slow


def buildpack_repo(workdir: Path, fixture: str) -> str:
    """A git repository holding a test buildpack; its file:// URL."""
    return "file://" + str(make_app_repo(workdir / fixture, fixture=fixture))


def push(platform: Platform, app: str, repo: Path, check: bool = True) -> str:
    return platform.git("push", platform.remote_url(app, platform.token), "main", cwd=repo,
                        check=check).stderr


def test_buildpacks_by_url_chain_their_exports_and_profile_scripts(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "chained")
    first = buildpack_repo(workdir, "custom-buildpack")
    second = buildpack_repo(workdir, "export-reader-buildpack")
    platform.cli("buildpacks:add", "-a", "chained", first)
    listed = platform.cli("buildpacks:add", "-a", "chained", second).stdout
    assert f"1. {first}" in listed and f"2. {second}" in listed
    out = push(platform, "chained", make_app_repo(workdir / "app", fixture="shipped-app"))
    assert "Buildpack 1 of 2" in out and "custom buildpack compiling" in out
    assert "export reader sees FROM_FIRST_BUILDPACK=yes" in out
    # .profile.d from the first buildpack ran before the command of the Procfile.
    assert platform.get_app("chained").text == "hello from profile.d\n"


def test_a_buildpacks_file_in_the_code_chooses_them_too(platform: Platform, workdir: Path) -> None:
    platform.cli("apps:create", "listed")
    repo = make_app_repo(workdir / "app", fixture="shipped-app")
    first = buildpack_repo(workdir, "custom-buildpack")
    second = buildpack_repo(workdir, "export-reader-buildpack")
    (repo / ".buildpacks").write_text(f"# ours\n{first}\n{second}#main\n")
    (repo / "Procfile").unlink()
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "buildpacks"], cwd=repo, check=True,
                   env=platform.env())
    out = push(platform, "listed", repo)
    assert "export reader sees FROM_FIRST_BUILDPACK=yes" in out
    releases = platform.api("GET", "/apps/listed/releases").json()
    assert releases[0]["process_types"] == {"web": "python3 server.py"}, "the last one wins"
    assert platform.get_app("listed").text == "hello from profile.d\n"


def test_an_unreachable_buildpack_url_fails_the_push_clearly(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "lost-bp")
    platform.cli("buildpacks:set", "-a", "lost-bp", f"file://{workdir}/no-such-buildpack")
    out = push(platform, "lost-bp", make_app_repo(workdir / "app", fixture="shipped-app"),
               check=False)
    assert "could not fetch the buildpack" in out and "[remote rejected]" in out
    cleared = platform.cli("buildpacks:clear", "-a", "lost-bp").stdout
    assert "detects" in cleared
    assert platform.cli("buildpacks", "-a", "lost-bp", "--json").stdout.strip() == "[]"


def test_an_app_that_ships_its_program_uses_the_procfile_buildpack(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "shipped")
    repo = make_app_repo(workdir / "app", fixture="shipped-app")
    subprocess.run(["git", "update-index", "--chmod=-x", "serve.sh"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "lose the x bit"], cwd=repo, check=True,
                   env=platform.env())
    out = push(platform, "shipped", repo)
    assert "Procfile app detected" in out and "Made serve.sh executable" in out
    assert platform.get_app("shipped").text == "no greeting\n"


def test_nothing_detected_lists_what_was_tried_and_the_old_release_serves(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "undetected")
    repo = make_app_repo(workdir / "app", fixture="shipped-app")
    push(platform, "undetected", repo)
    for name in ("Procfile", "server.py", "serve.sh"):
        (repo / name).unlink()
    (repo / "README").write_text("nothing to run\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "empty"], cwd=repo, check=True, env=platform.env())
    out = push(platform, "undetected", repo, check=False)
    assert "no buildpack recognised this app (tried: python, nodejs, static, procfile)" in out
    assert "[remote rejected]" in out
    assert platform.get_app("undetected").status_code == 200


def test_the_build_cache_can_be_purged_or_skipped(platform: Platform, workdir: Path) -> None:
    platform.cli("apps:create", "cached")
    repo = make_app_repo(workdir / "app")
    remote = platform.remote_url("cached", platform.token)
    platform.git("push", remote, "main", cwd=repo)
    assert (platform.home / "cache" / "cached").exists()
    platform.cli("builds:cache:purge", "-a", "cached")
    assert not (platform.home / "cache" / "cached").exists()
    commit_change(repo, "app.py", '"one"', '"two"', "after purge")
    out = platform.git("push", remote, "main", cwd=repo).stderr
    assert "reusing" not in out.lower(), "a purged cache has nothing to reuse"
    platform.cli("config:set", "-a", "cached", "PAAS_NO_CACHE=1")
    commit_change(repo, "app.py", '"two"', '"three"', "without cache")
    out = platform.git("push", remote, "main", cwd=repo).stderr
    assert "building without the build cache" in out and "reusing" not in out.lower()
    assert platform.get_app("cached").text.endswith("code=three\n")


def test_the_buildpack_fixtures_are_executable() -> None:
    # The buildpack fixtures are executable, as git must record them.
    for name in ("custom-buildpack", "export-reader-buildpack"):
        for script in ("detect", "compile", "release"):
            assert (FIXTURES / name / "bin" / script).stat().st_mode & 0o111


def test_nodejs_then_python_the_python_app_serves_what_node_built(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "py-node")
    out = push(platform, "py-node", make_app_repo(workdir / "app", fixture="py-node-app"))
    assert "Buildpack 1 of 2: nodejs" in out and "Buildpack 2 of 2: python" in out
    assert platform.get_app("py-node").text.startswith('<link rel="stylesheet"')
    css = platform.get_app("py-node", "/static/app.css")
    assert css.status_code == 200 and css.text.startswith("/* built by node v")


def test_a_runtime_the_stack_lacks_is_refused_and_the_old_release_serves(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "old-python")
    repo = make_app_repo(workdir / "app")
    push(platform, "old-python", repo)
    (repo / "runtime.txt").write_text("python-3.99.0\n")
    subprocess.run(["git", "add", "runtime.txt"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "ask for a python the stack lacks"], cwd=repo,
                   check=True, env=platform.env())
    out = push(platform, "old-python", repo, check=False)
    assert "asks for Python 3.99" in out and "this stack has: 3.11" in out
    assert "[remote rejected]" in out
    assert platform.get_app("old-python").text.startswith("hello from web.1")


def test_a_buildpack_from_a_tarball_url(platform: Platform, workdir: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    import http.server
    import tarfile
    import threading

    served = workdir / "served"
    served.mkdir()
    with tarfile.open(served / "custom.tgz", "w:gz") as archive:
        archive.add(FIXTURES / "custom-buildpack", arcname="custom-buildpack-main")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/custom.tgz"
    app_repo = make_app_repo(workdir / "app", fixture="shipped-app")
    try:
        # A URL into the platform's own network fails the build, saying what allows it...
        platform.cli("apps:create", "tarball")
        platform.cli("buildpacks:set", "-a", "tarball", url)
        refused = push(platform, "tarball", app_repo, check=False)
        assert "127.0.0.1 is a loopback address" in refused, refused
        assert "PAAS_SOURCE_URL_ALLOW_PRIVATE=1" in refused and "[remote rejected]" in refused
        # ...and on a platform whose operator allows private addresses, it builds.
        with running_platform(tmp_path_factory.mktemp("private-urls"), "process",
                              {"PAAS_SOURCE_URL_ALLOW_PRIVATE": "1"}) as allowing:
            allowing.cli("apps:create", "tarball")
            allowing.cli("buildpacks:set", "-a", "tarball", url)
            out = push(allowing, "tarball", app_repo)
            assert "custom buildpack compiling" in out
            assert allowing.get_app("tarball").text == "hello from profile.d\n"
    finally:
        server.shutdown()
        server.server_close()