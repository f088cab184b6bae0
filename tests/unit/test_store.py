"""The SQLite store: apps, tokens, releases and formation as the rest of the platform sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.errors import Conflict, NotFound
from paas.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "paas.db")
    s.migrate()
    return s


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    first = Store(tmp_path / "p.db")
    first.migrate()
    first.create_user("admin", is_admin=True)
    again = Store(tmp_path / "p.db")
    again.migrate()
    assert again.user_by_name("admin") is not None


def test_tokens_are_stored_hashed_and_resolve_to_their_user(store: Store) -> None:
    user = store.create_user("ann")
    token = store.create_token(user.id)
    assert store.user_for_token(token) == user
    assert store.user_for_token(token + "x") is None
    raw = Path(store.path).read_bytes()
    assert token.encode() not in raw


def test_app_names_are_unique_and_missing_apps_say_what_to_do(store: Store) -> None:
    owner = store.create_user("ann")
    store.create_app("hello", owner.id)
    with pytest.raises(Conflict):
        store.create_app("hello", owner.id)
    with pytest.raises(NotFound) as err:
        store.app("nope")
    assert "paas apps" in err.value.message


def test_access_is_for_the_owner_and_admins(store: Store) -> None:
    ann, bob = store.create_user("ann"), store.create_user("bob")
    admin = store.create_user("root", is_admin=True)
    app = store.create_app("hello", ann.id)
    assert store.can_access(ann, app) and store.can_access(admin, app)
    assert not store.can_access(bob, app)
    assert [a.name for a in store.apps(bob)] == []
    assert [a.name for a in store.apps(ann)] == ["hello"]


def test_config_updates_set_and_unset(store: Store) -> None:
    app = store.create_app("hello", store.create_user("ann").id)
    store.update_config(app, {"A": "1", "B": "2"})
    assert store.update_config(app, {"A": None, "B": "3"}) == {"B": "3"}


def test_releases_number_up_and_the_first_web_gets_one_dyno(store: Store) -> None:
    app = store.create_app("hello", store.create_user("ann").id)
    v1 = store.create_release(app, description="Deploy a", user=None, config={"A": "1"},
                              slug="/s/1", process_types={"web": "w", "worker": "x"})
    assert v1.version == 1 and v1.status == "pending"
    assert store.formation(app) == {"web": 1, "worker": 0}
    store.set_formation(app, {"web": 3})
    v2 = store.create_release(app, description="Deploy b", user=None, config={},
                              slug="/s/2", process_types={"web": "w"})
    assert v2.version == 2
    assert store.formation(app)["web"] == 3, "a later release keeps the chosen scale"


def test_release_for_deploy_skips_failed_and_current_is_newest_succeeded(store: Store) -> None:
    app = store.create_app("hello", store.create_user("ann").id)
    made = [
        store.create_release(app, description=f"d{i}", user=None, config={}, slug=f"/s/{i}",
                             process_types={"web": "w"})
        for i in range(3)
    ]
    store.set_release_status(made[0], "succeeded")
    store.set_release_status(made[2], "failed", "boom")
    assert store.release_for_deploy(app).version == 2
    assert store.current_release(app).version == 1
    store.set_release_status(made[1], "succeeded")
    assert store.current_release(app).version == 2
    assert store.release(app, 3).status_reason == "boom"


def test_deleting_an_app_removes_its_rows(store: Store) -> None:
    owner = store.create_user("ann")
    app = store.create_app("hello", owner.id)
    store.update_config(app, {"A": "1"})
    store.delete_app(app)
    assert store.find_app("hello") is None
    again = store.create_app("hello", owner.id)
    assert store.config_vars(again) == {}


def test_every_app_gets_its_own_uid_never_reused(store: Store) -> None:
    owner = store.create_user("ann")
    first = store.create_app("one", owner.id)
    second = store.create_app("two", owner.id)
    assert first.uid >= 200_000 and second.uid == first.uid + 1
    store.delete_app(second)
    assert store.create_app("three", owner.id).uid == second.uid + 1


def test_build_ids_are_never_reused_after_an_app_is_destroyed(store: Store) -> None:
    owner = store.create_user("ann")
    doomed = store.create_app("doomed", owner.id)
    last = store.create_build(doomed, owner, "a" * 40, "refs/heads/main")
    store.delete_app(doomed)
    other = store.create_app("other", owner.id)
    assert store.create_build(other, owner, "b" * 40, "refs/heads/main").id == last.id + 1


def test_the_builds_migration_keeps_existing_builds(tmp_path: Path) -> None:
    from paas import store as store_module

    old = Store(tmp_path / "old.db")
    conn = old._conn()
    for number, script in enumerate(store_module.MIGRATIONS[:4], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    # Rows written with the schema of the time (the Store's methods follow the newest).
    conn.executescript(
        "INSERT INTO users (id, name, created_at) VALUES (1, 'ann', 0);"
        "INSERT INTO apps (id, name, owner_id, created_at, uid) VALUES (1, 'hello', 1, 0, 200000);"
        "INSERT INTO builds (id, app_id, user_id, status, commit_sha, ref, created_at)"
        f" VALUES (7, 1, 1, 'succeeded', '{'c' * 40}', 'refs/heads/main', 0);"
        "INSERT INTO releases (app_id, version, build_id, slug, config, process_types,"
        " description, status, user_id, created_at)"
        " VALUES (1, 1, 7, '/s', '{}', '{\"web\": \"w\"}', 'd', 'succeeded', 1, 0);"
    )
    old.migrate()
    assert old.build(7).commit_sha == "c" * 40
    assert old.releases(old.app("hello"))[0].build_id == 7


def test_deploy_summaries_of_every_app_and_of_one(store: Store) -> None:
    from paas.store import DeploySummary

    admin = store.create_user("admin", is_admin=True)
    new = store.create_app("fresh", admin.id)
    live = store.create_app("live", admin.id)
    deploying = store.create_app("deploying", admin.id)
    for app, statuses in ((live, ["succeeded", "failed"]),
                          (deploying, ["succeeded", "pending"])):
        for status in statuses:
            release = store.create_release(app, description="d", user=None, config={},
                                           slug="/slug", process_types={"web": "serve"})
            store.set_release_status(release, status)
    config_only = store.create_release(new, description="config", user=None, config={"A": "1"})
    store.set_release_status(config_only, "succeeded")
    store.set_formation(live, {"web": 2, "worker": 1})
    summaries = store.deploy_summaries()
    assert summaries[live.id] == DeploySummary(current=1, to_run=1, to_run_has_image=True,
                                               wanted=3)
    assert summaries[deploying.id] == DeploySummary(current=1, to_run=2,
                                                    to_run_has_image=True, wanted=1)
    assert summaries[new.id] == DeploySummary(current=1, to_run=1, to_run_has_image=False,
                                              wanted=0)
    for app in (new, live, deploying):
        assert store.deploy_summaries(app) == {app.id: summaries[app.id]}
