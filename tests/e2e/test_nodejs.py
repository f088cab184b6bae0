"""git push deploys a Node.js app (tests/fixtures/node-app) with the built-in nodejs buildpack.

On the session's process-runtime platform: the first push installs with npm and runs the
build script, whose output the page shows; a code-only redeploy reuses node_modules and its
image layer; an engines.node the stack cannot satisfy is rejected; the Yarn 1, Yarn 4
(Plug'n'Play) and pnpm fixtures deploy the same way. Then the same app on a runc platform,
where the build runs in a container as the app's uid.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from paas.build.npm_seed import NpmSeed, lockfile_tarballs
from paas.image import ImageStore
from tests.e2e.platform import FIXTURES, Platform, commit_change, make_app_repo

pytestmark = pytest.mark.slow

APP = "node-hello"
PAGE = "built by &lt;npm run build&gt;; web.1 code={code} ttl=2m\n"
REUSE_LINE = "remote:        Dependencies unchanged; reusing node_modules"
# Pruned by the buildpack's lib/prune_dev.js, without starting npm.
PRUNED_LINE = "remote:        removed 1 package (the devDependencies in package-lock.json)"


@pytest.fixture(scope="module")
def repo(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = make_app_repo(tmp_path_factory.mktemp("src") / "node-app", fixture="node-app")
    platform.cli("apps:create", APP)
    platform.cli("git:remote", "-a", APP, cwd=repo)
    return repo


def page(platform: Platform, app: str = APP) -> str:
    response = platform.get_app(app)
    assert response.status_code == 200, response.text
    return response.text


def image_layers(platform: Platform, app: str) -> list[list[str]]:
    """The layer digests of each release of `app`, oldest first."""
    store = ImageStore(platform.home / "images")
    releases = platform.api("GET", f"/apps/{app}/releases").json()
    return [store.image(r["image"]).layers for r in reversed(releases) if r["image"]]


def test_first_push_installs_builds_and_the_app_answers(platform: Platform, repo: Path) -> None:
    push = platform.git("push", "paas", "main", cwd=repo)
    for expected in (
        "remote: -----> Node.js app detected",
        "remote: -----> Installing dependencies",
        "remote:        Installing node modules with npm ci (package-lock.json)",
        "remote:        > node build.js",
        "remote: -----> Pruning devDependencies",
        PRUNED_LINE,
        "remote:        Default types for buildpack -> web",
    ):
        assert expected in push.stderr, push.stderr
    assert REUSE_LINE not in push.stderr
    assert page(platform) == PAGE.format(code="one")


def test_a_code_change_reuses_node_modules_and_its_layer(platform: Platform, repo: Path) -> None:
    commit_change(repo, "server.js", '"one"', '"two"', "code only")
    push = platform.git("push", "paas", "main", cwd=repo)
    assert REUSE_LINE in push.stderr, push.stderr
    assert "npm ci" not in push.stderr
    assert page(platform) == PAGE.format(code="two")
    first, second = image_layers(platform, APP)[-2:]
    assert len(first) == len(second) == 2
    assert first[0] == second[0], "the node_modules layer is reused byte for byte"
    assert first[1] != second[1]


def test_an_engines_node_the_stack_cannot_satisfy_is_rejected(
    platform: Platform, repo: Path
) -> None:
    before = page(platform)
    package = json.loads((repo / "package.json").read_text())
    package["engines"]["node"] = "^4.2.0"
    (repo / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    subprocess.run(["git", "commit", "-q", "-am", "ancient node"], cwd=repo, env=platform.env(),
                   check=True)
    try:
        push = platform.git("push", "paas", "main", cwd=repo, check=False)
        assert push.returncode != 0
        assert "remote:  !     This app needs Node.js ^4.2.0, the stack has " in push.stderr
        assert "change engines.node or use a stack with a matching node" in push.stderr
        assert "[remote rejected] main -> main" in push.stderr
        assert page(platform) == before
    finally:
        subprocess.run(["git", "reset", "-q", "--hard", "HEAD~1"], cwd=repo, check=True)


# --- other package managers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "app", "headings"),
    [
        ("node-yarn-app", "node-yarn",
         ["-----> Installing yarn@1 with npm",
          "       Installing node modules with yarn install (yarn.lock)"]),
        ("node-pnpm-app", "node-pnpm",
         ["-----> Installing pnpm@9.15.9 with npm",
          "       Installing node modules with pnpm install (pnpm-lock.yaml)"]),
        # Plug'n'Play: no node_modules; the default `npm start` runs with .pnp.cjs.
        ("node-yarn-berry-app", "node-yarn-berry",
         ["-----> Installing yarn@4.9.2 (@yarnpkg/cli-dist) with npm",
          "       Installing dependencies with yarn install --immutable (yarn.lock; "
          "nodeLinker: pnp)",
          "-----> Node.js dependencies ready (Plug'n'Play: .pnp.cjs)"]),
    ],
)
def test_an_app_installed_with_another_package_manager_deploys_and_answers(
    platform: Platform, tmp_path: Path, fixture: str, app: str, headings: list[str]
) -> None:
    platform.cli("apps:create", app)
    repo = make_app_repo(tmp_path / fixture, fixture=fixture)
    push = platform.git("push", platform.remote_url(app, platform.token), "main", cwd=repo)
    for heading in headings:
        assert f"remote: {heading}" in push.stderr, push.stderr
    assert page(platform, app) == PAGE.format(code="one")


# --- on runc ---------------------------------------------------------------------------------



def test_on_runc_the_app_builds_in_a_container_and_redeploys_reusing_node_modules(
    runc_platform: Platform, tmp_path: Path
) -> None:
    runc_platform.cli("apps:create", APP)
    repo = make_app_repo(tmp_path / "src", fixture="node-app")
    remote = runc_platform.remote_url(APP, runc_platform.token)
    push = runc_platform.git("push", remote, "main", cwd=repo)
    assert "remote:        Installing node modules with npm ci (package-lock.json)" in push.stderr
    assert page(runc_platform) == PAGE.format(code="one")

    commit_change(repo, "server.js", '"one"', '"two"', "code only")
    push = runc_platform.git("push", remote, "main", cwd=repo)
    assert REUSE_LINE in push.stderr, push.stderr
    assert PRUNED_LINE in push.stderr, push.stderr
    assert page(runc_platform) == PAGE.format(code="two")


# The build script of the second app below: what it may do to the platform's npm seed.
SEED_PROBE = """
for (const [what, act] of [
  ["write", () => fs.writeFileSync(`${process.env.PAAS_NPM_SEED}/sha512/planted`, "x")],
  ["list", () => fs.readdirSync(`${process.env.PAAS_NPM_SEED}/sha512`)],
]) {
  let verdict = "allowed";
  try { act(); } catch (e) { verdict = "refused"; }
  console.log(`seed ${what}: ${verdict}`);
}
"""


def test_on_runc_a_new_apps_install_starts_from_the_platforms_npm_seed(
    runc_platform: Platform, tmp_path: Path
) -> None:
    seed = NpmSeed(runc_platform.home / "seeds" / "npm")
    tarballs = lockfile_tarballs((FIXTURES / "node-app" / "package-lock.json").read_text())
    runc_platform.cli("apps:create", "node-seed-a")
    repo = make_app_repo(tmp_path / "a", fixture="node-app")
    runc_platform.git("push", runc_platform.remote_url("node-seed-a", runc_platform.token),
                      "main", cwd=repo)
    assert all(seed.path(t.digest).is_file() for t in tarballs)

    # One seed tarball changed behind the platform's back: the next build finds it no longer
    # matches its digest and fetches it again before copying anything.
    (ms,) = [t for t in tarballs if "/ms/" in t.url]
    os.chmod(seed.path(ms.digest), 0o644)
    seed.path(ms.digest).write_bytes(b"module.exports = () => 'poisoned';\n")
    runc_platform.cli("apps:create", "node-seed-b")
    repo = make_app_repo(tmp_path / "b", fixture="node-app")
    with open(repo / "build.js", "a") as f:
        f.write(SEED_PROBE)
    subprocess.run(["git", "commit", "-qam", "probe the seed"], cwd=repo, check=True,
                   env=runc_platform.env())
    push = runc_platform.git("push", runc_platform.remote_url("node-seed-b", runc_platform.token),
                             "main", cwd=repo)
    assert "remote:        2 package tarball(s) from the platform's npm cache" in push.stderr, (
        push.stderr)
    assert hashlib.sha512(seed.path(ms.digest).read_bytes()).hexdigest() == ms.digest
    assert page(runc_platform, "node-seed-b") == PAGE.format(code="one")
    # The build sees the seed read-only, and cannot list which packages other apps use.
    assert "remote:        seed write: refused" in push.stderr, push.stderr
    assert "remote:        seed list: refused" in push.stderr, push.stderr
    assert not (seed.root / "sha512" / "planted").exists()


def test_on_runc_a_yarn_berry_app_builds_in_a_container_and_answers(
    runc_platform: Platform, tmp_path: Path
) -> None:
    # The build runs as the app's uid with a throwaway HOME; the dyno loads the packages
    # through .pnp.cjs from its own copy of the app.
    app = "node-berry-runc"
    runc_platform.cli("apps:create", app)
    repo = make_app_repo(tmp_path / "src", fixture="node-yarn-berry-app")
    push = runc_platform.git("push", runc_platform.remote_url(app, runc_platform.token), "main",
                             cwd=repo)
    assert ("remote:        Installing dependencies with yarn install --immutable (yarn.lock; "
            "nodeLinker: pnp)") in push.stderr, push.stderr
    assert page(runc_platform, app) == PAGE.format(code="one")
