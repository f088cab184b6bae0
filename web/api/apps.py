"""API resources of apps: the app itself, builds, releases, config vars, formation, dynos, logs."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from paas import apps as app_ops
from paas import events, logs, releases
from paas import sizes as dyno_sizes
from paas.agent import state as dyno_state
from paas.errors import InvalidInput
from paas.store import App, Build, Release
from web.api import api, app_for_request, iso, rds, settings, store
from web.api import models as m
from web.api.paging import paginate
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
@api.get("/apps")
@spec(response=list[m.App])
def list_apps() -> ResponseReturnValue:
    versions = store().current_versions()
    return paginate([app_json(a, versions) for a in store().apps(g.user)],
                    ("name", "created_at"))


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
@spec(response=list[m.Build])
def list_builds(name: str) -> ResponseReturnValue:
    app = app_for_request(name)
    return jsonify([build_json(b) for b in store().builds(app)])


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
@spec(response=list[m.Release])
def list_releases(name: str) -> ResponseReturnValue:
    app = app_for_request(name)
    current = store().current_release(app)
    return jsonify([release_json(r, current) for r in store().releases(app)])


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
    changes = _body()
    if not changes:
        raise InvalidInput("give at least one config var to set or unset")
    for key, value in changes.items():
        app_ops.check_config_key(key)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"the value of {key} must be a string, or null to unset it")
    config = store().update_config(app, changes)
    set_keys = sorted(k for k, v in changes.items() if v is not None)
    unset_keys = sorted(k for k, v in changes.items() if v is None)
    parts = []
    if set_keys:
        parts.append("Set " + ", ".join(set_keys))
    if unset_keys:
        parts.append("Unset " + ", ".join(unset_keys))
    release = releases.create(store(), rds(), app, description="; ".join(parts) + " config vars",
                              user=g.user, config=config)
    events.emit(rds(), app.name, events.CONFIG_CHANGED, release=f"v{release.version}",
                keys=",".join(sorted(changes)))
    response = jsonify(config)
    response.headers["Paas-Release"] = str(release.version)
    return response


# --- formation and dynos -------------------------------------------------------------------
def _formation_json(app: App) -> list[dict]:
    release = store().release_for_deploy(app)
    types = release.process_types if release else {}
    quantities = store().formation(app)
    sizes = store().formation_sizes(app)
    return [
        {"type": ptype, "quantity": quantities.get(ptype, 0), "command": command,
         **dyno_sizes.describe(sizes.get(ptype, dyno_sizes.DEFAULT_SIZE))}
        for ptype, command in types.items()
    ]


@api.get("/apps/<name>/formation")
@spec(response=list[m.FormationEntry])
def get_formation(name: str) -> ResponseReturnValue:
    return jsonify(_formation_json(app_for_request(name)))


@api.patch("/apps/<name>/formation")
@spec(body=m.FormationPatch, response=list[m.FormationEntry])
def update_formation(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "scale")
    updates = _body().get("updates")
    if not isinstance(updates, list) or not updates:
        raise InvalidInput('send {"updates": [{"type": "web", "quantity": 2}]}')
    release = store().release_for_deploy(app)
    known = release.process_types if release else {}
    quantities: dict[str, int] = {}
    sizes: dict[str, str] = {}
    for update in updates:
        ptype = update.get("type") if isinstance(update, dict) else None
        if ptype not in known:
            listed = ", ".join(known) or "none yet; push the app first"
            raise InvalidInput(f"{app.name} has no process type {ptype!r} (it has: {listed})")
        if "quantity" not in update and "size" not in update:
            raise InvalidInput(f"give a quantity or a size for {ptype}")
        if "quantity" in update:
            quantity = update["quantity"]
            if (not isinstance(quantity, int) or isinstance(quantity, bool)
                    or not 0 <= quantity <= 100):
                raise InvalidInput(f"the quantity of {ptype} must be a whole number from 0 to 100")
            quantities[ptype] = quantity
        if "size" in update:
            size = update["size"]
            dyno_sizes.limits(size if isinstance(size, str) else repr(size))
            sizes[ptype] = size
    store().set_formation(app, quantities)
    store().set_formation_sizes(app, sizes)
    events.emit(rds(), app.name, events.FORMATION_CHANGED,
                **{ptype: qty for ptype, qty in quantities.items()},
                **{f"{ptype}.size": size for ptype, size in sizes.items()})
    releases.wake_agent(rds())
    return jsonify(_formation_json(app))


@api.get("/apps/<name>/dynos")
@spec(response=list[m.Dyno])
def list_dynos(name: str) -> ResponseReturnValue:
    app = app_for_request(name)
    dynos = dyno_state.read(rds(), app.name)
    for dyno in dynos:
        dyno["started_at"] = iso(dyno.get("started_at"))
    return jsonify(dynos)


@api.delete("/apps/<name>/dynos")
@spec(response=dict[str, int], status=202)
def restart_dynos(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "scale")
    seq = store().bump_restart(app)
    releases.wake_agent(rds())
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
