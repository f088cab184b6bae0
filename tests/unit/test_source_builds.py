"""Builds from a source tarball: unpacking, size limits, and the API that takes a URL or
an upload and queues the build (the build itself runs in tests/e2e)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from rq import Queue

from paas import keys
from paas.build import source_blob
from paas.errors import BuildFailed, PayloadTooLarge
from paas.store import Store


def tarball(files: dict[str, str], top: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("top", ["", "repo-0123abc/"])
def test_unpack_takes_a_lone_top_folder_as_the_top(tmp_path: Path, top: str) -> None:
    (tmp_path / "src.tgz").write_bytes(tarball({"Procfile": "web: serve\n", "a/b.txt": "b"},
                                               top))
    source_blob.unpack(tmp_path / "src.tgz", tmp_path / "app")
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == ["Procfile", "a"]
    assert (tmp_path / "app" / "a" / "b.txt").read_text() == "b"


def test_unpack_refuses_what_is_not_a_tarball_and_paths_out(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"not a tarball at all")
    with pytest.raises(BuildFailed, match="not a readable tarball"):
        source_blob.unpack(tmp_path / "junk", tmp_path / "app")
    (tmp_path / "evil.tgz").write_bytes(tarball({"../escaped": "x"}))
    with pytest.raises(BuildFailed):
        source_blob.unpack(tmp_path / "evil.tgz", tmp_path / "app2")
    assert not (tmp_path / "escaped").exists()


def test_save_refuses_more_than_the_limit_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_blob, "MAX_BYTES", 10)
    with pytest.raises(PayloadTooLarge):
        source_blob.save([b"12345", b"67890", b"x"], tmp_path / "s.tar")
    assert list(tmp_path.iterdir()) == []
    assert source_blob.save([b"12345"], tmp_path / "s.tar") == 5


def test_display_url_hides_credentials_and_signatures() -> None:
    assert source_blob.display_url("https://u:p@host:8443/a/b.tgz?sig=secret") == (
        "https://host:8443/a/b.tgz")


@pytest.fixture()
def client(make_web) -> FlaskClient:  # noqa: ANN001
    web = make_web()
    client = web.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {web.admin_token}"
    client.post("/api/apps", json={"name": "hello"})
    return client


def queued(r: redis.Redis) -> list[tuple]:
    return [job.args for job in Queue(keys.BUILD_QUEUE, connection=r).jobs]


def test_an_uploaded_tarball_is_kept_and_its_build_queued(client: FlaskClient, tmp_path: Path,
                                                          r: redis.Redis) -> None:
    body = tarball({"Procfile": "web: serve\n"})
    answer = client.post("/api/apps/hello/builds?version=abc1234", data=body,
                         content_type="application/gzip")
    assert answer.status_code == 201
    build = answer.get_json()
    assert (build["status"], build["commit"], build["ref"]) == ("pending", "abc1234", "tarball")
    assert build["output_stream_url"].endswith(f"/api/apps/hello/builds/{build['id']}"
                                               "/output-stream")
    assert (tmp_path / "sources" / f"{build['id']}.tar").read_bytes() == body
    assert Store(tmp_path / "paas.db").build_source(build["id"]) == source_blob.UPLOADED
    assert queued(r) == [(build["id"],)]


def test_a_url_build_keeps_the_url_for_the_worker(client: FlaskClient, tmp_path: Path,
                                                  r: redis.Redis) -> None:
    answer = client.post("/api/apps/hello/builds", json={
        "source_blob": {"url": "https://ci.example.com/app.tgz", "version": "v1.2"}})
    assert answer.status_code == 201
    build_id = answer.get_json()["id"]
    assert Store(tmp_path / "paas.db").build_source(build_id) == "https://ci.example.com/app.tgz"
    assert queued(r) == [(build_id,)]


@pytest.mark.parametrize(("body", "message"), [
    ({"source_blob": {"url": "file:///etc/passwd"}}, "is not an http(s) URL"),
    ({"source_blob": {"url": 3}}, "source_blob.url: input should be a valid string"),
    ({"source_blob": {"url": "https://x/a.tgz", "checksum": "x"}}, "unknown field"),
    ({}, "source_blob: field required"),
])
def test_bad_build_requests_queue_nothing(client: FlaskClient, r: redis.Redis, body: dict,
                                          message: str) -> None:
    answer = client.post("/api/apps/hello/builds", json=body)
    assert answer.status_code == 422 and message in answer.get_json()["message"]
    assert queued(r) == []
    assert client.get("/api/apps/hello/builds").get_json() == []
