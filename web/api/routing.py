"""API resources for reaching an app: custom domains, maintenance and HTTPS redirect, and
its TLS certificate (Heroku's sni-endpoints). Each change is copied to Redis at once, so
the routers apply it within milliseconds."""

from __future__ import annotations

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from paas import routing
from paas.errors import InvalidInput, NotFound
from paas.store import App
from web.api import api, app_for_request, iso, rds, settings, store
from web.api import models as m
from web.api.paging import paginate
from web.api.schema import spec

DOMAIN_RANGES = ("hostname",)


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


# --- domains --------------------------------------------------------------------------
def _domains_json(app: App) -> list[dict]:
    default = {"hostname": f"{app.name}.{settings().domain}", "kind": "platform",
               "created_at": iso(app.created_at)}
    return [default] + [
        {"hostname": d.hostname, "kind": "custom", "created_at": iso(d.created_at)}
        for d in store().domains(app)
    ]


@api.get("/apps/<name>/domains")
@spec(response=list[m.Domain], ranges=DOMAIN_RANGES)
def list_domains(name: str) -> ResponseReturnValue:
    return paginate(_domains_json(app_for_request(name)), DOMAIN_RANGES)


@api.post("/apps/<name>/domains")
def add_domain(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "settings")
    hostname = _body().get("hostname")
    if not isinstance(hostname, str):
        raise InvalidInput('send {"hostname": "www.example.com"}')
    domain = routing.add_domain(store(), rds(), app, hostname, settings().domain)
    return jsonify({"hostname": domain.hostname, "kind": "custom",
                    "created_at": iso(domain.created_at)}), 201


@api.delete("/apps/<name>/domains/<hostname>")
def remove_domain(name: str, hostname: str) -> ResponseReturnValue:
    app = app_for_request(name, "settings")
    removed = routing.remove_domain(store(), rds(), app, hostname)
    return jsonify({"hostname": removed, "kind": "custom"})


# --- maintenance and HTTPS redirect -------------------------------------------------------
def _routing_json(app: App) -> dict:
    r = store().app_routing(app)
    return {"maintenance": r.maintenance, "https_redirect": r.https_redirect}


@api.get("/apps/<name>/routing")
def get_routing(name: str) -> ResponseReturnValue:
    return jsonify(_routing_json(app_for_request(name)))


@api.patch("/apps/<name>/routing")
def set_routing(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "settings")
    body = _body()
    changes: dict[str, bool] = {}
    for field in ("maintenance", "https_redirect"):
        if field in body:
            if not isinstance(body[field], bool):
                raise InvalidInput(f"{field} must be true or false")
            changes[field] = body[field]
    if not changes:
        raise InvalidInput('send {"maintenance": true} and/or {"https_redirect": true}')
    routing.set_app_routing(store(), rds(), app, **changes)
    return jsonify(_routing_json(app))


# --- certificates ---------------------------------------------------------------------
def _certificate_json(app: App) -> dict:
    stored = store().certificate(app)
    if stored is None:
        raise NotFound(f"{app.name} has no certificate; add one with `paas certs:add`")
    info = routing.check_certificate(stored.cert_pem, stored.key_pem)
    return {
        "name": app.name, "certificate_chain": stored.cert_pem, "domains": list(info.names),
        "expires_at": iso(info.not_after.timestamp()), "issuer": info.issuer,
        "self_signed": info.self_signed, "created_at": iso(stored.created_at),
    }


@api.get("/apps/<name>/sni-endpoints")
def list_certificates(name: str) -> ResponseReturnValue:
    app = app_for_request(name)
    return jsonify([_certificate_json(app)] if store().certificate(app) else [])


@api.post("/apps/<name>/sni-endpoints")
def add_certificate(name: str) -> ResponseReturnValue:
    """Add or replace the app's certificate (one per app, used for all its domains)."""
    app = app_for_request(name, "settings")
    body = _body()
    chain, key = body.get("certificate_chain"), body.get("private_key")
    if not isinstance(chain, str) or not isinstance(key, str):
        raise InvalidInput('send {"certificate_chain": "<PEM>", "private_key": "<PEM>"}')
    routing.check_certificate(chain, key)
    store().set_certificate(app, chain, key)
    routing.publish_certificate(store(), rds(), app)
    return jsonify(_certificate_json(app)), 201


@api.delete("/apps/<name>/sni-endpoints")
def remove_certificate(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "settings")
    gone = _certificate_json(app)
    store().delete_certificate(app)
    routing.publish_certificate(store(), rds(), app)
    return jsonify(gone)
