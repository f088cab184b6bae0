"""API resources of apps: the app itself, builds, releases, config vars, formation, dynos, logs."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from flask import Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from paas import actions, logs, releases
from paas import apps as app_ops
from paas.agent import state as dyno_state
from paas.errors import InvalidInput
from paas.store import App, Build, Release
from web.api import api, app_for_request, iso, rds, settings, store
from web.api import models as m
from web.api.paging import paginate, paginate_rows
from web.api.schema import spec


def _body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        if request.get_data():
            raise InvalidInput("the request body is not valid JSON")
        return {}
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


# --- serializers -------------------------------------------------------------------
def app_json(app: App, current_versions: dict[int, int] | None = None) -> dict:
    """The app as the API shows it; `current_versions` (Store.current_versions) saves a
    query per app when listing many."""
    s = settings()
    if current_versions is not None:
        version = current_versions.get(app.id)
    else:
        current = store().current_release(app)
        version = current.version if current else None
    return {
        "name": app.name,
        "owner": app.owner,
        "created_at": iso(app.created_at),
        "web_url": s.app_url(app.name),
        "git_url": f"{request.host_url}git/{app.name}.git",
        "ssh_git_url": s.ssh_git_url(app.name, urlsplit(request.host_url).hostname or ""),
        "release": version,
        "boot_timeout": app.boot_timeout,
        "stop_timeout": app.stop_timeout,
    }


def build_json(build: Build) -> dict:
    return {
        "id": build.id,
        "status": build.status,
        "commit": build.commit_sha,
        "ref": build.ref,
        "user": build.user,
        "created_at": iso(build.created_at),
        "finished_at": iso(build.finished_at),
        "failure": build.failure,
    }


def release_json(release: Release, current: Release | None) -> dict:
    return {
        "version": release.version,
        "status": release.status,
        "status_reason": release.status_reason,
        "description": release.description,
        "commit": release.commit_sha,
        "build_id": release.build_id,
        "user": release.user,
        "created_at": iso(release.created_at),
        "current": current is not None and current.id == release.id,
        "process_types": release.process_types,
        "image": release.slug if release.slug and release.slug.startswith("sha256:") else None,
        "app_json": release.app_json,
        "has_output": release.output is not None,
    }


# --- apps ---------------------------------------------------------------------------
#: The fields each list's `Range` may sort by (web/api/paging.py); the first is its default.
APP_RANGES = ("name", "created_at")
BUILD_RANGES = ("id",)  # ids count up as builds are made: their order of creation
RELEASE_RANGES = ("version",)
DYNO_RANGES = ("id",)  # names repeat while a deploy drains the old dynos
#: Items in a page of builds or releases when the request has no `Range` (Heroku's).
HISTORY_PAGE = 200


@api.get("/apps")
@spec(response=list[m.App], ranges=APP_RANGES)
def list_apps() -> ResponseReturnValue:
    versions = store().current_versions()
    return paginate([app_json(a, versions) for a in store().apps(g.user)], APP_RANGES)


@api.post("/apps")
@spec(body=m.AppCreate, response=m.App, status=201)
def create_app() -> ResponseReturnValue:
    name = _body().get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidInput("name must be a string")
    app = app_ops.create(settings(), store(), rds(), g.user, name or None)
    g.audit_app = (app, "create")
    return jsonify(app_json(app)), 201


@api.get("/apps/<name>")
@spec(response=m.App)
def get_app(name: str) -> ResponseReturnValue:
    return jsonify(app_json(app_for_request(name)))


@api.delete("/apps/<name>")
@spec(response=m.App)
def destroy_app(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "destroy")
    body = app_json(app)
    app_ops.destroy(settings(), store(), rds(), app)
    return jsonify(body)


# --- builds -------------------------------------------------------------------------
@api.get("/apps/<name>/builds")
@spec(response=list[m.Build], ranges=BUILD_RANGES)
def list_builds(name: str) -> ResponseReturnValue:
    """The app's builds, newest first unless a Range asks otherwise."""
    app = app_for_request(name)
    return paginate_rows(lambda window: [build_json(b) for b in store().builds_in(app, window)],
                         BUILD_RANGES[0], descending=True, default_max=HISTORY_PAGE)


@api.get("/apps/<name>/builds/<int:build_id>")
@spec(response=m.Build)
def get_build(name: str, build_id: int) -> ResponseReturnValue:
    return jsonify(build_json(store().app_build(app_for_request(name), build_id)))


@api.get("/apps/<name>/builds/<int:build_id>/output")
@spec(response=str, media_type="text/plain")
def build_output(name: str, build_id: int) -> Response:
    build = store().app_build(app_for_request(name), build_id)
    text = store().build_output(build.id) or ""
    return Response(text, mimetype="text/plain")


# --- releases -----------------------------------------------------------------------
@api.get("/apps/<name>/releases")
@spec(response=list[m.Release], ranges=RELEASE_RANGES)
def list_releases(name: str) -> ResponseReturnValue:
    """The app's releases, newest first unless a Range asks otherwise."""
    app = app_for_request(name)
    current = store().current_release(app)
    return paginate_rows(
        lambda window: [release_json(r, current) for r in store().releases_in(app, window)],
        RELEASE_RANGES[0], descending=True, default_max=HISTORY_PAGE)


@api.get("/apps/<name>/releases/<version>")
@spec(response=m.Release)
def get_release(name: str, version: str) -> ResponseReturnValue:
    app = app_for_request(name)
    release = store().release(app, _version(version))
    return jsonify(release_json(release, store().current_release(app)))


@api.post("/apps/<name>/releases")
@spec(body=m.ReleaseCreate, response=m.Release, status=201)
def rollback(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "rollback")
    wanted = _body().get("release")
    version = _version(str(wanted)) if wanted is not None else None
    release = releases.rollback(store(), rds(), app, g.user, version)
    return jsonify(release_json(release, store().current_release(app))), 201


def _version(text: str) -> int:
    digits = text.lower().removeprefix("v")
    if not digits.isdigit():
        raise InvalidInput(f"{text!r} is not a release version; use a number like 3 or v3")
    return int(digits)


# --- config vars ----------------------------------------------------------------------
@api.get("/apps/<name>/config-vars")
@spec(response=dict[str, str])
def get_config(name: str) -> ResponseReturnValue:
    return jsonify(store().config_vars(app_for_request(name, "config:read")))


@api.patch("/apps/<name>/config-vars")
@spec(body=m.ConfigVarsPatch, response=dict[str, str])
def update_config(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "config:write")
    config, release = actions.update_config(store(), rds(), app, g.user, _body())
    response = jsonify(config)
    response.headers["Paas-Release"] = str(release.version)
    return response


# --- formation and dynos -------------------------------------------------------------------
def _formation_json(app: App) -> list[dict]:
    return actions.formation(store(), app)


@api.get("/apps/<name>/formation")
@spec(response=list[m.FormationEntry])
def get_formation(name: str) -> ResponseReturnValue:
    return jsonify(_formation_json(app_for_request(name)))


@api.patch("/apps/<name>/formation")
@spec(body=m.FormationPatch, response=list[m.FormationEntry])
def update_formation(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "scale")
    actions.update_formation(store(), rds(), app, _body().get("updates"))
    return jsonify(_formation_json(app))


@api.get("/apps/<name>/dynos")
@spec(response=list[m.Dyno], ranges=DYNO_RANGES)
def list_dynos(name: str) -> ResponseReturnValue:
    app = app_for_request(name)
    dynos = dyno_state.read(rds(), app.name)
    for dyno in dynos:
        dyno["started_at"] = iso(dyno.get("started_at"))
    return paginate(dynos, DYNO_RANGES)


@api.delete("/apps/<name>/dynos")
@spec(response=dict[str, int], status=202)
def restart_dynos(name: str) -> ResponseReturnValue:
    seq = actions.restart(store(), rds(), app_for_request(name, "scale"))
    return jsonify({"restart": seq}), 202


# --- logs ---------------------------------------------------------------------------------
@api.get("/apps/<name>/log-session")
@spec(response=str, media_type="text/plain",
      query={"lines": {"type": "integer", "minimum": 1, "maximum": logs.MAX_LINES}})
def log_session(name: str) -> Response:
    app = app_for_request(name)
    lines = request.args.get("lines", "100")
    if not lines.isdigit() or not 0 < int(lines) <= logs.MAX_LINES:
        raise InvalidInput(f"lines must be a number from 1 to {logs.MAX_LINES}")
    tail = request.args.get("tail", "0") in ("1", "true", "yes")
    r = rds()
    recent = logs.recent(r, app.name, int(lines))

    def stream() -> Iterator[str]:
        for line in recent:
            yield line.format() + "\n"
        if not tail:
            return
        after = recent[-1].id if recent else "0-0"
        for line in logs.follow(r, app.name, after=after):
            if line is not None:
                yield line.format() + "\n"

    return Response(stream(), mimetype="text/plain",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
