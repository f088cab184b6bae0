"""Range pagination on every list that can grow: the first page, the rest by following
Next-Range, the reverse order, the default order without a Range, and a Range the list
cannot answer refused with 416 and a JSON error (the parsing itself: web/api/paging.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from paas import events
from paas.agent import state as dyno_state
from paas.errors import RangeNotSatisfiable
from paas.store import Store
from web.api.paging import Asked, parse_range


@dataclass
class Env:
    client: FlaskClient
    store: Store
    r: redis.Redis
    tmp_path: Path


@pytest.fixture()
def env(make_web, r: redis.Redis, tmp_path: Path) -> Env:  # noqa: ANN001
    web = make_web("paas.test")
    client = web.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {web.admin_token}"
    assert client.post("/api/apps", json={"name": "hello"}).status_code == 201
    return Env(client, web.store, r, tmp_path)


# Each list: how to give it items, its path, the Range field, and the field's values in
# ascending order once filled.
def releases(env: Env) -> list[int]:
    app = env.store.app("hello")
    for n in range(5):
        env.store.create_release(app, description=f"d{n}", user=None, config={}, slug="/s",
                                 process_types={"web": "serve"})
    return [1, 2, 3, 4, 5]


def builds(env: Env) -> list[int]:
    app = env.store.app("hello")
    return [env.store.create_build(app, None, f"{n:040d}", "refs/heads/main").id
            for n in range(5)]


def audit(env: Env) -> list[int]:
    for n in range(5):
        env.client.patch("/api/apps/hello/config-vars", json={f"K{n}": "v"})
    return sorted(e.id for e in env.store.audit(env.store.app("hello")))


def activity(env: Env) -> list[int]:
    for n in range(4):
        events.emit(env.r, "hello", events.CONFIG_CHANGED, keys=f"K{n}")
    return [1, 2, 3, 4, 5]  # app.created came first


def domains(env: Env) -> list[str]:
    for name in ("www.example.com", "api.example.com", "*.example.org", "b.example.net"):
        env.client.post("/api/apps/hello/domains", json={"hostname": name})
    return sorted(["hello.paas.test", "www.example.com", "api.example.com", "*.example.org",
                   "b.example.net"])


def collaborators(env: Env) -> list[str]:
    for name in ("zed", "bea", "cy", "dee"):
        env.store.create_user(name)
        env.client.post("/api/apps/hello/collaborators", json={"user": name})
    return ["admin", "bea", "cy", "dee", "zed"]


def ssh_keys(env: Env) -> list[int]:
    ids = []
    for n in range(5):
        path = env.tmp_path / f"key{n}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"k{n}",
                        "-f", str(path)], check=True)
        added = env.client.post("/api/account/keys",
                                json={"public_key": Path(f"{path}.pub").read_text()})
        ids.append(added.get_json()["id"])
    return ids


def dynos(env: Env) -> list[str]:
    published = {f"hello.web.{n}.a{n}": json.dumps({"name": f"web.{n}", "type": "web",
                                                    "state": "up", "release": 1})
                 for n in range(1, 6)}
    dyno_state.publish(env.r, "hello", published)
    return sorted(published)


LISTS: list[tuple[str, Callable[[Env], list], str, str]] = [
    ("/api/apps/hello/releases", releases, "version", "version"),
    ("/api/apps/hello/builds", builds, "id", "id"),
    ("/api/apps/hello/audit", audit, "id", "id"),
    ("/api/apps/hello/events", activity, "id", "id"),
    ("/api/apps/hello/domains", domains, "hostname", "hostname"),
    ("/api/apps/hello/collaborators", collaborators, "user", "user"),
    ("/api/account/keys", ssh_keys, "id", "id"),
    ("/api/apps/hello/dynos", dynos, "id", "id"),
]
IDS = [path.rsplit("/", 1)[1] for path, *_ in LISTS]


def values(answer, key: str) -> list:  # noqa: ANN001
    return [item[key] for item in answer.get_json()]


def follow(client: FlaskClient, path: str, first) -> list:  # noqa: ANN001
    """Every page after `first`, by its Next-Range, as one list of answers."""
    pages = [first]
    while pages[-1].status_code == 206:
        pages.append(client.get(path, headers={"Range": pages[-1].headers["Next-Range"]}))
        assert len(pages) < 20, "Next-Range never ended"
    return pages


@pytest.mark.parametrize(("path", "fill", "field", "key"), LISTS, ids=IDS)
def test_a_list_pages_by_range_and_next_range(env: Env, path: str, fill: Callable,
                                              field: str, key: str) -> None:
    expected = fill(env)
    first = env.client.get(path, headers={"Range": f"{field} ..; max=2"})
    assert first.status_code == 206, first.get_json()
    assert values(first, key) == expected[:2]
    assert first.headers["Next-Range"] == f"{field} ]{expected[1]}..; max=2"
    assert first.headers["Content-Range"] == f"{field} {expected[0]}..{expected[1]}"
    pages = follow(env.client, path, first)
    assert [p.status_code for p in pages] == [206, 206, 200]
    assert [v for p in pages for v in values(p, key)] == expected

    backwards = follow(env.client, path, env.client.get(
        path, headers={"Range": f"{field} ..; max=3, order=desc"}))
    assert [v for p in backwards for v in values(p, key)] == expected[::-1]
    assert field in backwards[0].headers["Accept-Ranges"]


@pytest.mark.parametrize(("path", "fill", "field", "key"), LISTS, ids=IDS)
@pytest.mark.parametrize("header", ["colour ..; max=2", "{field} ..; max=0",
                                    "{field} ..; max=1001", "{field} ..; size=2",
                                    "{field} everything"])
def test_a_range_the_list_cannot_answer_is_416(env: Env, path: str, fill: Callable,
                                               field: str, key: str, header: str) -> None:
    fill(env)
    answer = env.client.get(path, headers={"Range": header.format(field=field)})
    assert answer.status_code == 416
    assert answer.get_json()["id"] == "requested_range_not_satisfiable"
    assert "Range" in answer.get_json()["message"]


@pytest.mark.parametrize(("path", "field"), [
    ("/api/apps/hello/releases", "version"), ("/api/apps/hello/builds", "id"),
    ("/api/apps/hello/audit", "id"), ("/api/apps/hello/events", "id")])
def test_a_bound_of_a_number_field_must_be_a_whole_number(env: Env, path: str,
                                                          field: str) -> None:
    releases(env)
    builds(env)
    answer = env.client.get(path, headers={"Range": f"{field} ]v3..; max=2"})
    assert answer.status_code == 416 and "whole numbers" in answer.get_json()["message"]
    # Past SQLite's integers: nothing there, and no 500.
    past = env.client.get(path, headers={"Range": f"{field} ]99999999999999999999999.."})
    assert past.status_code == 200 and past.get_json() == []


def test_history_is_newest_first_without_a_range_and_pages_that_way(env: Env) -> None:
    releases(env)
    answer = env.client.get("/api/apps/hello/releases")
    assert answer.status_code == 200 and values(answer, "version") == [5, 4, 3, 2, 1]
    builds(env)
    for n in range(3):
        env.client.patch("/api/apps/hello/config-vars", json={f"K{n}": "v"})
    audit = env.client.get("/api/apps/hello/audit?limit=2")
    assert audit.status_code == 206
    newest = values(audit, "id")
    assert newest == sorted(newest, reverse=True)
    assert audit.headers["Next-Range"] == f"id ]{newest[-1]}..; max=2, order=desc"
    rest = follow(env.client, "/api/apps/hello/audit", audit)
    assert [v for p in rest for v in values(p, "id")] == sorted(
        e.id for e in env.store.audit(env.store.app("hello")))[::-1]


def test_events_without_a_range_are_the_newest_oldest_first(env: Env) -> None:
    activity(env)
    tail = env.client.get("/api/apps/hello/events?limit=2")
    assert tail.status_code == 200 and values(tail, "id") == [4, 5]
    assert [e["event"] for e in tail.get_json()] == ["config.changed"] * 2


def test_events_kept_from_before_ids_get_stable_ones_below_the_new(env: Env) -> None:
    key = "paas:events:hello"
    env.r.delete(key)
    for n in range(3):  # as emit wrote them before events had ids, newest at the head
        env.r.rpush(key, json.dumps({"ts": 100.0 - n, "event": "config.changed",
                                     "proc": "api", "fields": {"n": str(n)}}))
    events.emit(env.r, "hello", events.CONFIG_CHANGED, n="new")
    listed = events.recent(env.r, "hello", 10)
    assert [(e["id"], e["fields"]["n"]) for e in listed] == [
        (-2, "2"), (-1, "1"), (0, "0"), (2, "new")]  # 1 went to app.created, then cleared


@pytest.mark.parametrize(("header", "asked"), [
    (None, Asked("name", limit=1000)),
    ("name ..; max=200", Asked("name", limit=200)),
    ("name ]www.example.com..; max=2, order=desc",
     Asked("name", "www.example.com", "", True, 2, True)),
    ("name a..m", Asked("name", "a", "m")),
    ("name ..charlie; order=desc", Asked("name", "", "charlie", descending=True)),
    ("name ]a.b...", Asked("name", "a.b.", "", True)),  # a value may end with a dot
])
def test_parse_range(header: str | None, asked: Asked) -> None:
    assert parse_range(header, ("name", "id")) == asked


@pytest.mark.parametrize("header", ["name", "name ..; max=--5", "name ..; max=²",
                                    "name ..; max=2; order=desc", "age ..", "name ..; x"])
def test_parse_range_refuses(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, ("name", "id"))
