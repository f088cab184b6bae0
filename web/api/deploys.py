"""API resources of the deploy life cycle: release output, app timeouts, stopping dynos,
and the app's activity (events)."""

from __future__ import annotations

import json

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from paas import events, keys, releases
from paas.agent import state as dyno_state
from paas.errors import InvalidInput, NotFound
from paas.store import App
from web.api import api, app_for_request, iso, rds, store
from web.api import models as m
from web.api.apps import _body, _version
from web.api.paging import paginate
from web.api.schema import spec

EVENT_RANGES = ("id",)

#: The limits `paas ps:set` accepts, in seconds.
TIMEOUT_RANGES = {"boot_timeout": (1, 3600), "stop_timeout": (1, 3600)}


def timeouts_json(app: App) -> dict:
    """An app's timeouts: its own, or null where it uses the platform's default."""
    return {"boot_timeout": app.boot_timeout, "stop_timeout": app.stop_timeout}


@api.get("/apps/<name>/releases/<version>/output")
@spec(response=str, media_type="text/plain")
def release_output(name: str, version: str) -> Response:
    """What the release phase (and postdeploy) printed, as plain text."""
    app = app_for_request(name)
    release = store().release(app, _version(version))
    if release.output is None:
        raise NotFound(f"v{release.version} ran no release phase (no `release:` in its "
                       "Procfile, no predeploy or postdeploy in its app.json)")
    return Response(release.output + "\n", mimetype="text/plain")


@api.get("/apps/<name>/settings")
@spec(response=dict[str, int | None])
def get_settings(name: str) -> ResponseReturnValue:
    return jsonify(timeouts_json(app_for_request(name)))


@api.patch("/apps/<name>/settings")
@spec(body=m.SettingsPatch, response=dict[str, int | None])
def update_settings(name: str) -> ResponseReturnValue:
    """Set `boot_timeout` / `stop_timeout` in seconds (null: the platform's default)."""
    app = app_for_request(name, "settings")
    changes = _body()
    if not changes:
        raise InvalidInput('send {"boot_timeout": 120} and/or {"stop_timeout": 60}')
    for key, value in changes.items():
        if key not in TIMEOUT_RANGES:
            raise InvalidInput(f"{key!r} is not a setting; the settings are "
                               + ", ".join(TIMEOUT_RANGES))
        low, high = TIMEOUT_RANGES[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not low <= value <= high):
            raise InvalidInput(f"{key} must be a whole number of seconds from {low} to {high}, "
                               "or null for the platform's default")
    app = store().set_app_timeouts(app, changes)
    events.emit(rds(), app.name, events.SETTINGS_CHANGED,
                **{k: "default" if v is None else v for k, v in changes.items()})
    return jsonify(timeouts_json(app))


@api.post("/apps/<name>/dynos/<dyno>/actions/stop")
@spec(response=dict[str, list[str]], status=202)
def stop_dyno(name: str, dyno: str) -> ResponseReturnValue:
    """Stop a dyno (`web.2`) or every dyno of a type (`web`); the agent drains each first.
    One the formation still wants is replaced by a fresh one, as on Heroku."""
    app = app_for_request(name, "scale")
    running = dyno_state.read(rds(), app.name)
    chosen = [d for d in running if dyno in (d.get("name"), d.get("type"))]
    if not chosen:
        listed = ", ".join(sorted({d["name"] for d in running})) or "none are running"
        raise NotFound(f"{app.name} has no dyno {dyno!r} ({listed})")
    rds().rpush(keys.agent_requests(), json.dumps({"app": app.name, "dyno": dyno,
                                                   "action": "stop"}))
    releases.wake_agent(rds())
    return jsonify({"stopping": sorted({d["name"] for d in chosen})}), 202


@api.get("/apps/<name>/events")
@spec(response=list[m.Event], ranges=EVENT_RANGES,
      query={"limit": {"type": "integer", "minimum": 1, "maximum": 1000}})
def list_events(name: str) -> ResponseReturnValue:
    """The app's activity, oldest first: without a Range, its newest ?limit=N events
    (default 100, at most events.KEPT); a Range pages through every event kept."""
    app = app_for_request(name)
    limit = request.args.get("limit", "100")
    if not limit.isascii() or not limit.isdigit() or not 0 < int(limit) <= events.KEPT:
        raise InvalidInput(f"limit must be a number from 1 to {events.KEPT}")
    ranged = "Range" in request.headers
    found = events.recent(rds(), app.name, events.KEPT if ranged else int(limit))
    for event in found:
        event["ts"] = iso(event["ts"])
    return paginate(found, EVENT_RANGES)
