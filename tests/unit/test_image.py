"""The image store, for real on disk: deterministic layers, dedup, gc and OCI export.

The export is checked with the tools users will point at it: `skopeo inspect` and
`umoci unpack` (installed by `make install`; missing tools fail the test, they do not
skip it).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from paas.errors import InvalidInput
from paas.image import ImageConfig, ImageNotFound, ImageStore, LayerNotFound, image_store
from paas.image import store as store_module
from paas.image.layers import SOURCE_DATE_EPOCH, scan, tar_stats, write_tar
from paas.image.oci import export_oci, host_architecture

KIB = 1024
IS_ROOT = os.geteuid() == 0


# --- helpers ------------------------------------------------------------------------------


def deps(name: str) -> bool:
    return name == ".heroku"


def code(name: str) -> bool:
    return name != ".heroku"


def write(path: Path, data: str | bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def make_app(root: Path, *, deps_kib: int = 64) -> Path:
    """A built app as a buildpack leaves it: dependencies under .heroku, code beside them."""
    python = root / ".heroku" / "python"
    write(python / "bin" / "python", "#!/bin/sh\necho python\n", 0o755)
    (python / "bin" / "python3").symlink_to("python")
    for i in range(deps_kib // 16):
        # Incompressible-ish and distinct, so sizes on disk are real sizes.
        block = hashlib.sha256(f"dep{i}".encode()).digest() * (16 * KIB // 32)
        write(python / "lib" / "site-packages" / f"pkg{i}" / "__init__.py", block)
    write(root / "Procfile", "web: python app.py\n")
    write(root / "app.py", "print('hello from v1')\n" + "# padding\n" * 400)
    write(root / "templates" / "index.html", "<h1>hello</h1>\n")
    write(root / "bin" / "start", "#!/bin/sh\nexec python app.py\n", 0o755)
    return root


def tree_bytes(root: Path, include=None) -> int:
    """Bytes of the regular files of the top-level entries `include` accepts."""
    total = 0
    for entry in root.iterdir():
        if include is not None and not include(entry.name):
            continue
        paths = [entry] if not entry.is_dir() else list(entry.rglob("*"))
        total += sum(p.lstat().st_size for p in paths if p.is_file() and not p.is_symlink())
    return total


def restamp(root: Path, mtime: int, uid: int, file_mode: int, dir_mode: int) -> None:
    """Give every entry under `root` other times, owners and (non-normalised) modes."""
    for path in sorted(root.rglob("*"), reverse=True):
        if IS_ROOT:
            os.lchown(path, uid, uid)
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, dir_mode)
        else:
            executable = path.stat().st_mode & 0o111
            os.chmod(path, (file_mode | 0o100) if executable else file_mode)
        os.utime(path, (mtime, mtime))


def tar_bytes(src: Path, include=None, prefix: str = "") -> bytes:
    out = io.BytesIO()
    write_tar(scan(src, include), out, prefix=prefix)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every entry under root: inode, mode, mtime and content (or link target)."""
    def content(p: Path) -> bytes:
        return os.readlink(p).encode() if p.is_symlink() else p.read_bytes() if p.is_file() else b""
    return {str(p.relative_to(root)): (p.lstat().st_ino, p.lstat().st_mode,
                                       int(p.lstat().st_mtime), content(p))
            for p in sorted(root.rglob("*"))}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; run `make install` (it installs skopeo and umoci)")
    return path


@pytest.fixture()
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "home" / "images")


# --- deterministic layers -----------------------------------------------------------------


def test_same_tree_in_two_places_with_other_mtimes_owners_and_modes_has_one_digest(
    tmp_path: Path,
) -> None:
    one = make_app(tmp_path / "one" / "app")
    two = make_app(tmp_path / "somewhere" / "else" / "entirely" / "app")
    restamp(one, mtime=1_000_000_000, uid=0, file_mode=0o644, dir_mode=0o755)
    restamp(two, mtime=1_700_000_000, uid=4321, file_mode=0o600, dir_mode=0o700)

    assert tar_bytes(one) == tar_bytes(two)
    assert tar_stats(one) == tar_stats(two)
    assert tar_stats(one, deps) == tar_stats(two, deps)
    # Changing any content changes the digest.
    write(two / "templates" / "index.html", "<h1>hello!</h1>\n")
    assert tar_stats(one).digest != tar_stats(two).digest


def test_layer_tar_normalises_everything_host_specific(tmp_path: Path) -> None:
    src = make_app(tmp_path / "app")
    os.chmod(src / "Procfile", 0o600)
    os.chmod(src / "bin" / "start", 0o700)
    os.mkfifo(src / "a-fifo")
    os.link(src / "app.py", src / "hardlinked.py")
    deep = src / ("d" * 120) / ("e" * 120)
    write(deep / ("f" * 200), "long\n")
    (src / "to-abs").symlink_to("/" + "g" * 150)

    data = tar_bytes(src)
    infos = members(data)
    by_name = {m.name: m for m in infos}

    names = [m.name for m in infos]
    assert names == sorted(names, key=os.fsencode)
    assert "a-fifo" not in by_name  # fifos, sockets and devices are skipped
    for m in infos:
        assert not m.name.startswith("/") and ".." not in m.name.split("/")
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mtime == SOURCE_DATE_EPOCH
        assert m.pax_headers == {}
        if m.isdir():
            assert m.mode == 0o755
        elif m.isfile():
            assert m.mode in (0o644, 0o755)
    assert by_name["Procfile"].mode == 0o644
    assert by_name["bin/start"].mode == 0o755
    assert by_name[".heroku/python/bin/python"].mode == 0o755
    link = by_name[".heroku/python/bin/python3"]
    assert link.issym() and link.linkname == "python"
    assert by_name["to-abs"].linkname == "/" + "g" * 150  # long targets survive
    assert by_name[f"{'d' * 120}/{'e' * 120}/{'f' * 200}"].size == 5  # long names survive
    # A hard link is stored as a second regular file, so a copy without the link matches.
    assert by_name["hardlinked.py"].isfile()
    copy = tmp_path / "copy"
    shutil.copytree(src, copy, symlinks=True, ignore=shutil.ignore_patterns("a-fifo"))
    assert tar_bytes(copy) == data


def test_include_and_prefix_choose_entries_and_where_they_unpack(tmp_path: Path) -> None:
    src = make_app(tmp_path / "app")
    assert {m.name.split("/")[0] for m in members(tar_bytes(src, deps))} == {".heroku"}
    infos = members(tar_bytes(src, code, prefix="app"))
    assert {m.name.split("/")[1] for m in infos[1:]} == {"Procfile", "app.py", "bin", "templates"}
    assert infos[0].name == "app" and infos[0].isdir() and infos[0].mode == 0o755
    assert all(m.name.startswith("app/") for m in infos[1:])
    assert tar_stats(src, code, "app").digest != tar_stats(src, code).digest
    with pytest.raises(ValueError):
        tar_stats(src, prefix="../etc")


# --- the store ----------------------------------------------------------------------------


def test_adding_the_same_tree_twice_stores_one_layer(store: ImageStore, tmp_path: Path) -> None:
    one = make_app(tmp_path / "one")
    two = make_app(tmp_path / "two")
    restamp(two, mtime=1_600_000_000, uid=99, file_mode=0o640, dir_mode=0o750)

    first = store.add_layer(one)
    usage = store.disk_usage()
    second = store.add_layer(two)

    assert first == second == tar_stats(one).digest
    assert store.layers() == [first]
    assert store.disk_usage() == usage
    assert store.layer_size(first) == len(tar_bytes(one))
    assert store.layer_files(first) == sum(1 for entry in scan(one) if entry.kind == "file")


def test_a_tree_differing_in_one_file_is_a_new_layer_and_the_old_one_is_untouched(
    store: ImageStore, tmp_path: Path
) -> None:
    src = make_app(tmp_path / "app")
    old = store.add_layer(src)
    old_tree = snapshot(store.layer_path(old))
    old_meta = (store.root / "layers" / f"{old.removeprefix('sha256:')}.json").read_bytes()

    write(src / "app.py", "print('hello from v2')\n")
    new = store.add_layer(src)

    assert new != old
    assert store.layers() == sorted([old, new])
    assert snapshot(store.layer_path(old)) == old_tree
    assert (store.root / "layers" / f"{old.removeprefix('sha256:')}.json").read_bytes() == old_meta
    assert store.verify_layer(old) and store.verify_layer(new)


def test_a_code_only_change_costs_about_the_size_of_the_code(
    store: ImageStore, tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", deps_kib=2048)
    deps1 = store.add_layer(app, include=deps)
    code1 = store.add_layer(app, include=code)
    before = store.disk_usage()

    write(app / "app.py", "print('hello from v2')\n" + "# padding\n" * 400)
    deps2 = store.add_layer(app, include=deps)
    code2 = store.add_layer(app, include=code)
    growth = store.disk_usage() - before

    assert deps2 == deps1
    assert code2 != code1
    code_size = tree_bytes(app, code)
    assert store.layer_size(deps1) > 2000 * KIB  # the bound below is far below this
    assert 0 < growth < code_size + 64 * KIB


def test_stored_layer_is_a_read_only_tree_that_regenerates_its_tar(
    store: ImageStore, tmp_path: Path
) -> None:
    src = make_app(tmp_path / "app")
    os.chmod(src / "Procfile", 0o666)
    restamp(src, mtime=1_650_000_000, uid=1234, file_mode=0o664, dir_mode=0o777)
    digest = store.add_layer(src)
    tree = store.layer_path(digest)

    assert tree == store.root / "layers" / digest.removeprefix("sha256:")
    # Only the tree and its marker: the tar itself is not kept.
    assert sorted(p.name for p in (store.root / "layers").iterdir()) == sorted(
        [tree.name, f"{tree.name}.json"]
    )
    meta = json.loads((store.root / "layers" / f"{tree.name}.json").read_text())
    files = sum(1 for entry in scan(src) if entry.kind == "file")
    assert meta == {"digest": digest, "size": len(tar_bytes(src)), "files": files}
    for path in [tree, *tree.rglob("*")]:
        st = path.lstat()
        if IS_ROOT:
            assert (st.st_uid, st.st_gid) == (0, 0)
        assert int(st.st_mtime) == SOURCE_DATE_EPOCH
        if stat.S_ISLNK(st.st_mode):
            continue
        assert st.st_mode & 0o022 == 0, path  # nobody but the owner (root) may write
        assert stat.S_IMODE(st.st_mode) in ((0o755,) if path.is_dir() else (0o644, 0o755))
    assert stat.S_IMODE((tree / "bin" / "start").stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "Procfile").stat().st_mode) == 0o644
    assert os.readlink(tree / ".heroku" / "python" / "bin" / "python3") == "python"
    assert (tree / "app.py").read_bytes() == (src / "app.py").read_bytes()

    # The self-check: the tar regenerated from the stored tree is the tar that was hashed.
    assert tar_stats(tree).digest == digest
    assert store.verify_layer(digest)
    os.chmod(tree / "Procfile", 0o755)  # tampering shows
    assert not store.verify_layer(digest)


def test_layer_lookups_fail_clearly(store: ImageStore) -> None:
    missing = "sha256:" + "0" * 64
    assert not store.has_layer(missing)
    with pytest.raises(LayerNotFound, match="rebuild the app"):
        store.layer_path(missing)
    with pytest.raises(LayerNotFound):
        store.layer_size(missing)
    with pytest.raises(InvalidInput):
        store.has_layer("md5:abc")
    with pytest.raises(ImageNotFound):
        store.image(missing)
    with pytest.raises(LayerNotFound):
        store.save_image([missing], ImageConfig())


def test_save_image_round_trips_with_a_stable_id(store: ImageStore, tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    layers = [store.add_layer(app, include=deps), store.add_layer(app, include=code)]
    config = ImageConfig(env={"FOO": "bar", "A": "1"}, cmd=["python", "app.py"],
                         exposed_ports=["5000/tcp"], labels={"paas.app": "demo"})

    image_id = store.save_image(layers, config)
    image = store.image(image_id)

    assert image.id == image_id and image.layers == layers and image.config == config
    assert store.save_image(layers, config) == image_id
    same = ImageConfig(env={"A": "1", "FOO": "bar"}, cmd=["python", "app.py"],
                       exposed_ports=["5000/tcp"], labels={"paas.app": "demo"})
    assert store.save_image(layers, same) == image_id  # dict order does not matter
    other = ImageConfig(env={"FOO": "baz"}, cmd=["python", "app.py"])
    assert store.save_image(layers, other) != image_id
    assert store.save_image(list(reversed(layers)), config) != image_id
    # The file is the canonical JSON its name is the hash of.
    data = (store.root / "images" / f"{image_id.removeprefix('sha256:')}.json").read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == image_id
    assert b" " not in data.replace(b"python app.py", b"")
    assert ImageConfig().working_dir == "/app"
    with pytest.raises(InvalidInput):
        ImageConfig(env={"BAD=NAME": "x"})


def test_image_store_lives_under_paas_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAAS_HOME", str(tmp_path / "paas-home"))
    assert image_store().root == tmp_path / "paas-home" / "images"
    assert (tmp_path / "paas-home" / "images" / "layers").is_dir()


# --- garbage collection -------------------------------------------------------------------


def test_gc_removes_what_no_kept_image_uses_and_frees_the_bytes(
    store: ImageStore, tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", deps_kib=256)
    deps1, code1 = store.add_layer(app, include=deps), store.add_layer(app, include=code)
    kept = store.save_image([deps1, code1], ImageConfig(cmd=["v1"]))
    write(app / "app.py", "print('v2')\n" * 2000)
    code2 = store.add_layer(app, include=code)
    dropped = store.save_image([deps1, code2], ImageConfig(cmd=["v2"]))
    solo_dir = make_app(tmp_path / "other", deps_kib=512)
    solo = store.add_layer(solo_dir)
    dropped_solo = store.save_image([solo], ImageConfig())
    pinned = store.add_layer(tmp_path / "other" / "templates")  # in no image, but kept
    # A tree made read-only for its owner too must still go.
    for path in [store.layer_path(solo), *store.layer_path(solo).rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
    # A crash's leftover temp dir is swept.
    (store.root / "layers" / ".tmp-crashed").mkdir()
    before = store.disk_usage()

    result = store.gc(keep_images=[kept], keep_layers=[pinned])

    assert sorted(result.removed_images) == sorted([dropped, dropped_solo])
    assert sorted(result.removed_layers) == sorted([code2, solo])
    assert store.images() == [kept]
    assert store.layers() == sorted([deps1, code1, pinned])
    assert not (store.root / "layers" / ".tmp-crashed").exists()
    assert [p.name for p in (store.root / "layers").iterdir() if p.name.startswith(".")] == []
    freed_on_disk = before - store.disk_usage()
    assert result.freed_bytes > tree_bytes(solo_dir)
    assert abs(freed_on_disk - result.freed_bytes) <= 8 * KIB  # directories may keep blocks
    assert store.verify_layer(deps1) and store.verify_layer(code1)
    assert store.image(kept).layers == [deps1, code1]
    # A removed layer comes back whole if a build adds it again.
    assert store.add_layer(solo_dir) == solo and store.verify_layer(solo)


def test_gc_and_add_layer_exclude_each_other(
    store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an add runs nobody gets the exclusive lock gc needs, and the reverse."""
    src = make_app(tmp_path / "app")
    seen: list[str] = []

    def try_lock(how: int) -> str:
        with open(store.root / ".lock", "rb") as f:
            try:
                fcntl.flock(f, how | fcntl.LOCK_NB)
            except BlockingIOError:
                return "blocked"
            return "acquired"

    real_write_tar = store_module.write_tar

    def spying_write_tar(*args, **kwargs):
        seen.append("add: gc " + try_lock(fcntl.LOCK_EX))
        return real_write_tar(*args, **kwargs)

    monkeypatch.setattr(store_module, "write_tar", spying_write_tar)
    digest = store.add_layer(src)

    real_remove = ImageStore._remove_layer

    def spying_remove(self: ImageStore, hex_: str) -> int:
        seen.append("gc: add " + try_lock(fcntl.LOCK_SH))
        return real_remove(self, hex_)

    monkeypatch.setattr(ImageStore, "_remove_layer", spying_remove)
    assert store.gc(keep_images=[]).removed_layers == [digest]
    assert seen == ["add: gc blocked", "add: gc blocked", "gc: add blocked"]
    assert try_lock(fcntl.LOCK_EX) == "acquired"  # and both let go


# --- OCI export ---------------------------------------------------------------------------


@pytest.fixture()
def app_image(store: ImageStore, tmp_path: Path) -> tuple[str, Path]:
    app = make_app(tmp_path / "app")
    layers = [store.add_layer(app, include=deps), store.add_layer(app, include=code)]
    config = ImageConfig(env={"FOO": "bar", "PYTHONUNBUFFERED": "1"},
                         cmd=["python", "app.py"], exposed_ports=["5000/tcp"],
                         labels={"paas.app": "demo"})
    return store.save_image(layers, config), app


def layout_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_oci_export_is_a_valid_layout_and_byte_identical_twice(
    store: ImageStore, app_image: tuple[str, Path], tmp_path: Path
) -> None:
    image_id, app = app_image
    export_oci(store, image_id, tmp_path / "one")
    export_oci(store, image_id, tmp_path / "two")
    one = layout_files(tmp_path / "one")
    assert one == layout_files(tmp_path / "two")

    assert json.loads(one["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(one["index.json"])
    assert index["schemaVersion"] == 2
    [entry] = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    for name, blob in one.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.loads(one[f"blobs/sha256/{entry['digest'].removeprefix('sha256:')}"])
    assert entry["size"] == len(one[f"blobs/sha256/{entry['digest'].removeprefix('sha256:')}"])
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(one[f"blobs/sha256/{manifest['config']['digest'][7:]}"])
    assert config["architecture"] == host_architecture() in ("amd64", "arm64")
    assert config["os"] == "linux" and config["created"] == "1980-01-01T00:00:00Z"
    assert config["config"] == {
        "Env": ["FOO=bar", "PYTHONUNBUFFERED=1"], "Cmd": ["python", "app.py"],
        "WorkingDir": "/app", "ExposedPorts": {"5000/tcp": {}}, "Labels": {"paas.app": "demo"},
    }
    assert config["rootfs"]["type"] == "layers"

    image = store.image(image_id)
    assert len(manifest["layers"]) == len(image.layers) == 2
    for layer, diff_id, stored in zip(manifest["layers"], config["rootfs"]["diff_ids"],
                                      image.layers, strict=True):
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        blob = one[f"blobs/sha256/{layer['digest'][7:]}"]
        assert layer["size"] == len(blob)
        # gzip header: no FNAME flag, mtime 0.
        assert blob[3] & 0x08 == 0 and blob[4:8] == b"\0\0\0\0"
        tar = gzip.decompress(blob)
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id
        # The export's layers unpack under app/; the store's digests are of the bare tree.
        assert diff_id == tar_stats(store.layer_path(stored), prefix="app").digest
        assert diff_id != stored
        names = [m.name for m in members(tar)]
        assert names[0] == "app" and all(n.startswith("app/") for n in names[1:])


def test_oci_export_keeps_other_tags_and_refuses_foreign_dirs(
    store: ImageStore, app_image: tuple[str, Path], tmp_path: Path
) -> None:
    image_id, _app = app_image
    dest = tmp_path / "layout"
    export_oci(store, image_id, dest, tag="v1")
    export_oci(store, image_id, dest, tag="latest")
    export_oci(store, image_id, dest, tag="latest")
    refs = [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in json.loads((dest / "index.json").read_bytes())["manifests"]]
    assert refs == ["latest", "v1"]
    write(tmp_path / "junk" / "notes.txt", "mine\n")
    with pytest.raises(Exception, match="not empty"):
        export_oci(store, image_id, tmp_path / "junk")
    with pytest.raises(InvalidInput):
        export_oci(store, image_id, tmp_path / "bad-tag", tag="no spaces")


def test_skopeo_reads_the_exported_layers_and_env(
    store: ImageStore, app_image: tuple[str, Path], tmp_path: Path
) -> None:
    skopeo = require("skopeo")
    image_id, _app = app_image
    export_oci(store, image_id, tmp_path / "layout")
    manifest_layers = _manifest(tmp_path / "layout")["layers"]

    done = subprocess.run([skopeo, "inspect", f"oci:{tmp_path / 'layout'}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["Layers"] == [layer["digest"] for layer in manifest_layers]
    assert "FOO=bar" in info["Env"]
    assert info["Architecture"] == host_architecture() and info["Os"] == "linux"


def test_umoci_unpacks_the_export_with_the_app_under_app(
    store: ImageStore, app_image: tuple[str, Path], tmp_path: Path
) -> None:
    umoci = require("umoci")
    image_id, app = app_image
    export_oci(store, image_id, tmp_path / "layout")
    bundle = tmp_path / "bundle"

    # As root umoci restores owners as recorded (0:0); unprivileged it needs --rootless.
    command = [umoci, "unpack", "--image", f"{tmp_path / 'layout'}:latest", str(bundle)]
    if not IS_ROOT:
        command.insert(2, "--rootless")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    rootfs = bundle / "rootfs"
    assert (rootfs / "app" / "app.py").read_bytes() == (app / "app.py").read_bytes()
    assert (rootfs / "app" / "Procfile").read_text() == "web: python app.py\n"
    assert os.readlink(rootfs / "app" / ".heroku" / "python" / "bin" / "python3") == "python"
    assert os.access(rootfs / "app" / "bin" / "start", os.X_OK)
    runtime = json.loads((bundle / "config.json").read_text())
    assert "FOO=bar" in runtime["process"]["env"]
    assert runtime["process"]["cwd"] == "/app"
    assert runtime["process"]["args"] == ["python", "app.py"]


def _manifest(layout: Path) -> dict:
    [entry] = json.loads((layout / "index.json").read_bytes())["manifests"]
    return json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_bytes())
