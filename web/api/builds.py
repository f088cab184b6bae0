"""Builds from a source tarball, for CI without git: `POST /api/apps/{app}/builds` with
{"source_blob": {"url": ...}} or with the tarball as the body, then its output streamed
from `/builds/{id}/output-stream`, as a push streams it."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from paas import keys
from paas.build import output, source_blob, worker
from paas.errors import InvalidInput, PayloadTooLarge
from web.api import MAX_BODY, UPLOAD_ENDPOINTS, api, app_for_request, rds, settings, store
from web.api import models as m
from web.api.apps import build_json
from web.api.schema import spec, validate_body

#: Content types of a tarball sent as the body (anything else is taken as JSON).
TARBALL_TYPES = {"application/gzip", "application/x-gzip", "application/x-tar",
                 "application/octet-stream", "application/x-bzip2", "application/x-xz"}
_READ = 1024 * 1024


@api.post("/apps/<name>/builds")
@spec(body=m.BuildCreate, response=m.Build, status=201, validate=False)
def create_build(name: str) -> ResponseReturnValue:
    """Build and release a source tarball: from a URL (JSON body) or uploaded as the body
    (`Content-Type: application/gzip`, `?version=` to label it)."""
    app = app_for_request(name, "deploy")
    uploading = request.mimetype in TARBALL_TYPES
    if uploading:
        version = request.args.get("version", "")
        url = None
    else:
        if (request.content_length or 0) > MAX_BODY:
            raise PayloadTooLarge(f"the request body is over {MAX_BODY // 1024} KiB")
        validate_body(m.BuildCreate)
        blob = request.get_json()["source_blob"]
        url = source_blob.check_url(blob["url"], settings().source_url_allow_private)
        version = blob.get("version") or ""
    if len(version) > 64 or any(c.isspace() for c in version):
        raise InvalidInput("version must be at most 64 characters without spaces")
    build = store().create_build(app, g.user, version or "tarball", "tarball")
    if uploading:
        request.max_content_length = source_blob.MAX_BYTES
        try:
            source_blob.save(_body_chunks(), source_blob.upload_path(settings(), build.id))
        except BaseException:
            store().set_build_status(build.id, "failed", "the upload did not arrive whole")
            raise
    store().set_build_source(build.id, source_blob.UPLOADED if uploading else url or "")
    output.reset(rds(), build.id)
    worker.enqueue(rds(), build.id, app.name)
    answer = build_json(store().build(build.id))
    answer["output_stream_url"] = f"{request.host_url}api/apps/{app.name}/builds/{build.id}" \
                                  "/output-stream"
    return jsonify(answer), 201


UPLOAD_ENDPOINTS.add("api.create_build")


def _body_chunks() -> Iterator[bytes]:
    while chunk := request.stream.read(_READ):
        yield chunk


@api.get("/apps/<name>/builds/<int:build_id>/output-stream")
@spec(response=str, media_type="text/plain")
def build_output_stream(name: str, build_id: int) -> Response:
    """The build's output as it is written, ending with the build; its whole text when it
    finished long ago."""
    build = store().app_build(app_for_request(name), build_id)
    r = rds()
    if build.status in ("succeeded", "failed") and not r.exists(keys.build_log(build.id)):
        return Response(store().build_output(build.id) or "", mimetype="text/plain")

    def lines() -> Iterator[str]:
        for item in output.follow(r, build.id):
            if isinstance(item, output.BuildEnd):
                yield f"-----> Build {item.status}" + (f": {item.reason}" if item.reason
                                                       else "") + "\n"
                return
            if item is not None:
                yield item + "\n"
            elif store().build(build.id).status in ("succeeded", "failed") and not r.exists(
                    keys.build_log(build.id)):
                return  # ended and its stream expired while we waited

    return Response(lines(), mimetype="text/plain",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
