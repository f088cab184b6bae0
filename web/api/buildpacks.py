"""API resources of an app's buildpacks (Heroku's buildpack installations) and build cache."""

from __future__ import annotations

import shutil
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from paas import actions
from paas.errors import InvalidInput
from paas.store import App
from web.api import api, app_for_request, settings, store
from web.api import models as m
from web.api.schema import spec


def _installations(app: App) -> list[dict]:
    return [
        {"ordinal": n, "buildpack": {"url": url, "name": url.rsplit("/", 1)[-1]}}
        for n, url in enumerate(store().buildpacks(app))
    ]


@api.get("/apps/<name>/buildpack-installations")
@spec(response=list[dict[str, Any]])
def list_buildpacks(name: str) -> ResponseReturnValue:
    return jsonify(_installations(app_for_request(name)))


@api.put("/apps/<name>/buildpack-installations")
@spec(body=m.BuildpacksPut, response=list[dict[str, Any]])
def set_buildpacks(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "settings")
    body = request.get_json(silent=True)
    updates = body.get("updates") if isinstance(body, dict) else None
    if not isinstance(updates, list):
        raise InvalidInput('send {"updates": [{"buildpack": "python"}, ...]} (an empty list '
                           "clears them)")
    actions.set_buildpacks(
        store(), app, [u.get("buildpack") if isinstance(u, dict) else None for u in updates])
    return jsonify(_installations(app))


@api.delete("/apps/<name>/build-cache")
@spec(response=dict[str, bool], status=202)
def purge_build_cache(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "settings")
    shutil.rmtree(settings().cache_dir / app.name, ignore_errors=True)
    return jsonify({"purged": True}), 202
