"""API resources of the caller's SSH keys (`/api/account/keys`), in Heroku's shape.

A key added here lets its owner push over SSH; the SSH server finds the user by it.
"""

from __future__ import annotations

from flask import g, jsonify
from flask.typing import ResponseReturnValue

from paas.errors import InvalidInput
from paas.sshkeys import parse_public_key
from paas.store_keys import SshKey
from web.api import api, iso, store
from web.api import models as m
from web.api.apps import _body
from web.api.paging import paginate
from web.api.schema import spec

KEY_RANGES = ("id", "fingerprint")


def key_json(key: SshKey) -> dict:
    return {
        "id": key.id,
        "fingerprint": key.fingerprint,
        "comment": key.comment,
        "public_key": key.public_key,
        "created_at": iso(key.created_at),
        "updated_at": iso(key.created_at),  # keys never change; Heroku's clients expect it
    }


@api.get("/account/keys")
@spec(response=list[m.SshKey], ranges=KEY_RANGES)
def list_keys() -> ResponseReturnValue:
    return paginate([key_json(k) for k in store().ssh_keys(g.user)], KEY_RANGES)


@api.post("/account/keys")
def add_key() -> ResponseReturnValue:
    text = _body().get("public_key")
    if not isinstance(text, str):
        raise InvalidInput('give the key as {"public_key": "ssh-ed25519 AAAA… comment"}')
    return jsonify(key_json(store().add_ssh_key(g.user, parse_public_key(text)))), 201


# `path`: a fingerprint (SHA256:…) is base64 and may hold a slash.
@api.get("/account/keys/<path:ident>")
def get_key(ident: str) -> ResponseReturnValue:
    return jsonify(key_json(store().ssh_key(g.user, ident)))


@api.delete("/account/keys/<path:ident>")
def remove_key(ident: str) -> ResponseReturnValue:
    return jsonify(key_json(store().remove_ssh_key(g.user, ident)))
