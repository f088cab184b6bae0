"""The dashboard's pages (apps list and an app's tabs) and the forms that change an app."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from flask import flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from paas import actions, events, logs, releases, routing
from paas import apps as app_ops
from paas import sizes as dyno_sizes
from paas.agent import state as dyno_state
from paas.build import output
from paas.errors import InvalidInput, PaasError
from paas.store import App, DeploySummary
from web.dashboard import app_for_user, audit, dashboard, rds, settings, store
from web.dashboard.auth import local_path
from web.dashboard.streams import line_matches, metrics_for

#: Lines the logs page shows before live ones arrive.
RECENT_LOG_LINES = 200


@dashboard.app_template_filter("when")
def when(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dashboard.errorhandler(PaasError)
def paas_error(exc: PaasError) -> ResponseReturnValue:
    """A form's error goes back to its page as a message; a page's error is a page."""
    if request.method == "POST":
        flash(exc.message, "error")
        return redirect(local_path(request.form.get("back")))
    return render_template("dashboard/error.html", status=exc.status,
                           message=exc.message), exc.status


def form_done(message: str) -> ResponseReturnValue:
    flash(message, "ok")
    return redirect(local_path(request.form.get("back")))


def app_state(summary: DeploySummary, dynos: list[dict]) -> dict[str, str]:
    """The app's state at a glance: a word, its colour class and a short detail."""
    wanted = summary.wanted
    states = Counter(d.get("state") for d in dynos)
    if summary.to_run is None or not summary.to_run_has_image:
        return {"word": "new", "css": "muted", "detail": "no code pushed yet"}
    detail = f"{states['up']}/{wanted} dynos up"
    if states["crashed"]:
        return {"word": "crashed", "css": "bad", "detail": f"{states['crashed']} crashed; {detail}"}
    if summary.current is None or summary.to_run != summary.current:
        return {"word": "deploying", "css": "busy", "detail": f"v{summary.to_run}; {detail}"}
    if wanted == 0:
        return {"word": "idle", "css": "muted", "detail": "scaled to zero"}
    if states["up"] < wanted:
        return {"word": "starting", "css": "busy", "detail": detail}
    return {"word": "up", "css": "good", "detail": detail}


def render_tab(template: str, app: App, tab: str, **context: object) -> str:
    return render_template(f"dashboard/{template}", app=app, tab=tab,
                           web_url=settings().app_url(app.name), **context)


# --- apps ------------------------------------------------------------------------------
@dashboard.get("/")
def apps() -> str:
    # One query and one Redis round trip for the whole list, however many apps.
    apps = store().apps(g.user)
    summaries = store().deploy_summaries()
    dynos = dyno_state.read_many(rds(), [app.name for app in apps])
    gone = DeploySummary(current=None, to_run=None, to_run_has_image=False, wanted=0)
    rows = []
    for app in apps:
        summary = summaries.get(app.id, gone)  # destroyed since the list was read
        rows.append({"app": app, "version": summary.current,
                     "state": app_state(summary, dynos[app.name])})
    return render_template("dashboard/apps.html", rows=rows)


@dashboard.post("/apps")
def create_app() -> ResponseReturnValue:
    name = request.form.get("name", "").strip() or None
    app = app_ops.create(settings(), store(), rds(), g.user, name)
    audit(app, "create_app", {"name": name} if name else None, permission="create")
    flash(f"Created {app.name}. Push code to it to deploy.", "ok")
    return redirect(url_for("dashboard.overview", name=app.name))


@dashboard.get("/apps/<name>")
def overview(name: str) -> str:
    app = app_for_user(name)
    dynos = dyno_state.read(rds(), app.name)
    builds = store().builds(app, limit=1)
    return render_tab("overview.html", app, "overview", dynos=dynos,
                 state=app_state(store().deploy_summaries(app)[app.id], dynos),
                 current=store().current_release(app),
                 latest=next(iter(store().releases(app, limit=1)), None),
                 build=builds[0] if builds else None,
                 git_url=f"{request.host_url}git/{app.name}.git")


# --- activity ------------------------------------------------------------------------------
@dashboard.get("/apps/<name>/activity")
def activity(name: str) -> str:
    app = app_for_user(name)
    recent = list(reversed(events.recent(rds(), app.name, 50)))
    return render_tab("activity.html", app, "activity", builds=store().builds(app, limit=20),
                 releases=store().releases(app, limit=20),
                 current=store().current_release(app), events=recent)


@dashboard.get("/apps/<name>/builds/<int:build_id>")
def build(name: str, build_id: int) -> str:
    app = app_for_user(name)
    found = store().app_build(app, build_id)
    stored = store().build_output(found.id)
    if stored is not None:
        lines, running = stored.splitlines(), False
    else:
        # The store keeps the output once the release deployed; until then (the build's
        # status may already say succeeded) the Redis stream has it.
        lines, end = output.so_far(rds(), found.id)
        running = end is None and (found.status in ("pending", "building") or bool(lines))
    # Each line ends with its newline, so a streamed line starts a line of its own.
    return render_tab("build.html", app, "activity", build=found,
                 text="".join(line + "\n" for line in lines),
                 shown=len(lines), running=running)


@dashboard.post("/apps/<name>/rollback")
def rollback(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "rollback")
    version = request.form.get("version", "")
    if not version.isdigit():
        raise InvalidInput("choose a release to roll back to")
    release = releases.rollback(store(), rds(), app, g.user, int(version))
    audit(app, "rollback", {"release": int(version)}, release=release.version)
    return form_done(f"Rolling back to v{version} as v{release.version}.")


# --- resources ---------------------------------------------------------------------------
@dashboard.get("/apps/<name>/resources")
def resources(name: str) -> str:
    app = app_for_user(name)
    return render_tab("resources.html", app, "resources",
                 formation=actions.formation(store(), app), sizes=dyno_sizes.SIZES,
                 dynos=dyno_state.read(rds(), app.name))


@dashboard.post("/apps/<name>/formation")
def scale(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "scale")
    ptype = request.form.get("type", "")
    quantity = request.form.get("quantity", "").strip()
    if not quantity.isdigit():
        raise InvalidInput(f"the quantity of {ptype} must be a whole number from 0 to 100")
    update: dict[str, object] = {"type": ptype, "quantity": int(quantity)}
    if request.form.get("size"):
        update["size"] = request.form["size"]
    actions.update_formation(store(), rds(), app, [update])
    audit(app, "update_formation", {"updates": [update]})
    return form_done(f"Scaled {ptype} to {quantity}.")


@dashboard.post("/apps/<name>/restart")
def restart(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "scale")
    actions.restart(store(), rds(), app)
    audit(app, "restart_dynos")
    return form_done("Restarting every dyno, one after another.")


# --- settings ----------------------------------------------------------------------------
@dashboard.get("/apps/<name>/settings")
def settings_page(name: str) -> str:
    app = app_for_user(name, "config:read")
    return render_tab("settings.html", app, "settings", config=store().config_vars(app),
                 buildpacks=store().buildpacks(app), domains=store().domains(app),
                 platform_host=f"{app.name}.{settings().domain}",
                 maintenance=store().app_routing(app).maintenance)


@dashboard.post("/apps/<name>/config")
def set_config(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "config:write")
    key = request.form.get("key", "").strip()
    if request.form.get("unset"):
        changes: dict[str, object] = {key: None}
    else:
        changes = {key: request.form.get("value", "")}
    _, release = actions.update_config(store(), rds(), app, g.user, changes)
    audit(app, "update_config", changes, permission="config:write", release=release.version)
    verb = "Unset" if request.form.get("unset") else "Set"
    return form_done(f"{verb} {key}; deploying v{release.version}.")


@dashboard.post("/apps/<name>/buildpacks")
def set_buildpacks(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "settings")
    lines = (line.strip() for line in request.form.get("buildpacks", "").splitlines())
    entries = [line for line in lines if line]
    actions.set_buildpacks(store(), app, entries)
    audit(app, "set_buildpacks", {"updates": [{"buildpack": e} for e in entries]})
    return form_done("Buildpacks saved; they build the next push.")


@dashboard.post("/apps/<name>/domains")
def add_domain(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "settings")
    hostname = request.form.get("hostname", "")
    domain = routing.add_domain(store(), rds(), app, hostname, settings().domain)
    audit(app, "add_domain", {"hostname": hostname})
    return form_done(f"Added {domain.hostname}: point its DNS at this platform and it reaches "
                 f"{app.name}.")


@dashboard.post("/apps/<name>/domains/<hostname>/remove")
def remove_domain(name: str, hostname: str) -> ResponseReturnValue:
    app = app_for_user(name, "settings")
    removed = routing.remove_domain(store(), rds(), app, hostname)
    audit(app, "remove_domain")
    return form_done(f"Removed {removed}.")


@dashboard.post("/apps/<name>/maintenance")
def set_maintenance(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "settings")
    wanted = request.form.get("maintenance", "")
    if wanted not in ("on", "off"):
        raise InvalidInput("choose whether maintenance mode is on or off")
    routing.set_app_routing(store(), rds(), app, maintenance=wanted == "on")
    audit(app, "set_routing", {"maintenance": wanted == "on"})
    if wanted == "on":
        return form_done("Maintenance mode is on: visitors get the maintenance page (503).")
    return form_done("Maintenance mode is off: visitors reach the app again.")


@dashboard.post("/apps/<name>/delete")
def delete(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "destroy")
    if request.form.get("confirm", "").strip() != app.name:
        raise InvalidInput(f"type the app's name, {app.name}, to delete it")
    app_ops.destroy(settings(), store(), rds(), app)
    audit(app, "destroy_app")
    flash(f"Deleted {app.name}.", "ok")
    return redirect(url_for("dashboard.apps"))


# --- logs, metrics ------------------------------------------------------------------------
@dashboard.get("/apps/<name>/logs")
def logs_page(name: str) -> str:
    app = app_for_user(name)
    proc_filter = request.args.get("type", "")
    recent = logs.recent(rds(), app.name, logs.MAX_LINES if proc_filter else RECENT_LOG_LINES)
    shown = [line for line in recent if line_matches(line, proc_filter)][-RECENT_LOG_LINES:]
    release = store().release_for_deploy(app)
    types = sorted(release.process_types) if release else []
    return render_tab("logs.html", app, "logs", lines=shown, proc_filter=proc_filter,
                 types=types, after=recent[-1].id if recent else "0-0")


@dashboard.get("/apps/<name>/metrics")
def metrics_page(name: str) -> str:
    app = app_for_user(name)
    return render_tab("metrics.html", app, "metrics", data=metrics_for(app))
