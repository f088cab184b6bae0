"""Images through the whole platform: layers per build, dedup, OCI export, garbage collection."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from paas.image import ImageStore
from tests.e2e.platform import Platform, commit_change, make_app_repo

pytestmark = pytest.mark.slow


def image_layers(platform: Platform, app: str) -> list[list[str]]:
    """The layer digests of each release of `app`, oldest first."""
    store = ImageStore(platform.home / "images")
    releases = platform.api("GET", f"/apps/{app}/releases").json()
    return [store.image(r["image"]).layers for r in reversed(releases) if r["image"]]


def test_a_code_only_change_adds_one_layer_and_reuses_the_dependencies(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "layered")
    repo = make_app_repo(workdir / "src")
    remote = platform.remote_url("layered", platform.token)
    platform.git("push", remote, "main", cwd=repo)
    before = ImageStore(platform.home / "images").layers()
    # A change no other test makes, so its code layer is new to the shared store.
    commit_change(repo, "app.py", '"one"', '"layered-two"', "code only")
    platform.git("push", remote, "main", cwd=repo)
    first, second = image_layers(platform, "layered")
    assert len(first) == len(second) == 2
    assert first[0] == second[0], "the dependency layer is reused byte for byte"
    assert first[1] != second[1]
    added = set(ImageStore(platform.home / "images").layers()) - set(before)
    assert added == {second[1]}, "only the new code layer was stored"
    assert platform.get_app("layered").text.endswith("code=layered-two\n")


def test_export_writes_an_oci_layout_that_skopeo_and_umoci_read(
    platform: Platform, workdir: Path
) -> None:
    for tool in ("skopeo", "umoci"):
        assert shutil.which(tool), f"{tool} is missing; run `make install`"
    platform.cli("images:export", "-a", "layered", str(workdir / "oci"))
    inspect = subprocess.run(["skopeo", "inspect", f"oci:{workdir / 'oci'}:latest"],
                             capture_output=True, text=True, check=True)
    info = json.loads(inspect.stdout)
    assert len(info["Layers"]) == 2
    assert "PORT=5000" in info["Env"]
    unpacked = subprocess.run(
        ["umoci", "unpack", "--image", f"{workdir / 'oci'}:latest", str(workdir / "bundle")],
        capture_output=True, text=True,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    assert 'CODE_VERSION = "layered-two"' in (workdir / "bundle/rootfs/app/app.py").read_text()


def test_gc_frees_a_destroyed_apps_layers_and_keeps_the_rest(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "doomed")
    repo = make_app_repo(workdir / "src")
    commit_change(repo, "app.py", '"one"', '"doomed"', "only this app has this code")
    platform.git("push", platform.remote_url("doomed", platform.token), "main", cwd=repo)
    doomed_code = image_layers(platform, "doomed")[0][1]
    kept = image_layers(platform, "layered")[-1]
    platform.cli("apps:destroy", "doomed", "--confirm", "doomed")
    result = json.loads(platform.cli("images:gc", "--json").stdout)
    assert doomed_code in result["removed_layers"]
    assert result["freed_bytes"] > 0
    store = ImageStore(platform.home / "images")
    assert not store.has_layer(doomed_code)
    assert all(store.has_layer(d) for d in kept)
    assert platform.get_app("layered").status_code == 200
