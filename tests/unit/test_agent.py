"""The agent's convergence against a fake driver, a real store and a real Redis.

The fake driver's web dynos run a real HTTP server on their $PORT (so the
readiness check is the real one); a test decides when a dyno exits.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from paas import keys, releases, routes
from paas.agent import state
from paas.agent.agent import Agent
from paas.runtime import DynoSpec, OutputSink, RunningDyno
from paas.store import App, Release, Store


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Listener:
    """A dyno's web server: answers HTTP on its port until closed."""

    def __init__(self, port: int) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Answer)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """A socket that accepts connections (the kernel does) and never answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()

    def close(self) -> None:
        self.sock.close()


class FakeDriver:
    adopts_strays = True

    def __init__(self) -> None:
        self.running: dict[str, RunningDyno] = {}
        self.left_over: list[RunningDyno] = []
        self.attached: list[str] = []
        self.booted_dynos: list[tuple[str, int]] = []  # (name, release)
        self.sockets: dict[str, Listener | Silent] = {}
        self.exit_codes: dict[str, int] = {}
        self.boot_lines: list[str] = []
        self.crash_on_boot = False
        self.never_listen = False
        self.silent = False  # listen, but never answer a request

    def start(self, spec: DynoSpec, output: OutputSink) -> RunningDyno:
        for line in self.boot_lines:
            output(line)
        if self.crash_on_boot:
            self.exit_codes[spec.id] = 3
        elif spec.port is not None and self.silent:
            self.sockets[spec.id] = Silent(spec.port)
        elif spec.port is not None and not self.never_listen:
            self.sockets[spec.id] = Listener(spec.port)
        dyno = RunningDyno(spec=spec, pid=0, started_at=0.0)
        self.running[spec.id] = dyno
        return dyno

    def poll(self, dyno: RunningDyno) -> int | None:
        return self.exit_codes.get(dyno.spec.id)

    def signal(self, dyno: RunningDyno, signum: int) -> None:
        pass

    def stop(self, dyno: RunningDyno, grace: float) -> int | None:
        self.running.pop(dyno.spec.id, None)
        listener = self.sockets.pop(dyno.spec.id, None)
        if listener:
            listener.close()
        return self.exit_codes.get(dyno.spec.id, 0)

    def strays(self) -> list[RunningDyno]:
        return self.left_over

    def attach(self, dyno: RunningDyno, output: OutputSink) -> None:
        self.attached.append(dyno.spec.id)

    def booted(self, dyno: RunningDyno) -> None:
        self.booted_dynos.append((dyno.spec.name, dyno.spec.release))

    def exit_reason(self, dyno: RunningDyno) -> str | None:
        return None

    def crash(self, name: str) -> None:
        for dyno in self.running.values():
            if dyno.spec.name == name:
                self.exit_codes[dyno.spec.id] = 1
                self.sockets.pop(dyno.spec.id).close()

    def names(self) -> list[tuple[str, int]]:
        return sorted((d.spec.name, d.spec.release) for d in self.running.values())

    def close(self) -> None:
        for listener in self.sockets.values():
            listener.close()


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "paas.db")
    s.migrate()
    return s


@pytest.fixture()
def driver() -> FakeDriver:
    d = FakeDriver()
    yield d
    d.close()


@pytest.fixture()
def agent(store: Store, r: redis.Redis, driver: FakeDriver) -> Agent:
    return Agent(store=store, r=r, driver=driver, boot_timeout=1.0, stop_grace=0.1)


@pytest.fixture()
def app(store: Store) -> App:
    return store.create_app("hello", store.create_user("ann").id)


def release(store: Store, app: App, n: int, types: dict[str, str] | None = None) -> None:
    store.create_release(app, description=f"v{n}", user=None, config={"N": str(n)},
                         slug=f"/slugs/{n}", process_types=types or {"web": "serve"})


def backends(r: redis.Redis) -> list[str]:
    route = routes.load(r, "hello")
    return [b.dyno for b in route.backends] if route else []


def settle(agent: Agent) -> None:
    """Stops of replaced dynos run in background threads; wait for them."""
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("stop-"):
            thread.join(5)


def test_a_first_release_starts_its_formation_and_routes_it(
    agent: Agent, store: Store, app: App, driver: FakeDriver, r: redis.Redis
) -> None:
    release(store, app, 1, {"web": "serve", "worker": "work"})
    agent.converge_app(store.app("hello"))
    assert driver.names() == [("web.1", 1)], "worker defaults to 0, web to 1"
    assert backends(r) == ["web.1"]
    assert store.release(app, 1).status == "succeeded"
    assert [d["state"] for d in state.read(r, "hello")] == ["up"]


def test_a_new_release_replaces_the_old_dynos_after_the_switch(
    agent: Agent, store: Store, app: App, driver: FakeDriver, r: redis.Redis
) -> None:
    release(store, app, 1)
    agent.converge_app(store.app("hello"))
    release(store, app, 2)
    agent.converge_app(store.app("hello"))
    settle(agent)
    assert driver.names() == [("web.1", 2)]
    assert routes.load(r, "hello").release == 2
    assert store.current_release(app).version == 2


def test_a_release_whose_dyno_crashes_at_boot_fails_and_the_old_one_keeps_serving(
    agent: Agent, store: Store, app: App, driver: FakeDriver, r: redis.Redis
) -> None:
    release(store, app, 1)
    agent.converge_app(store.app("hello"))
    driver.crash_on_boot = True
    driver.boot_lines = ["ImportError: no module named flask"]
    release(store, app, 2)
    agent.converge_app(store.app("hello"))
    failed = store.release(app, 2)
    assert failed.status == "failed"
    assert "web.1 exited with status 3" in failed.status_reason
    assert "ImportError" in failed.status_reason
    assert driver.names() == [("web.1", 1)]
    assert routes.load(r, "hello").release == 1
    driver.crash_on_boot = False
    agent.converge_app(store.app("hello"))
    assert driver.names() == [("web.1", 1)], "a failed release is not retried by itself"


def test_a_web_dyno_that_never_binds_its_port_fails_with_r10(
    agent: Agent, store: Store, app: App, driver: FakeDriver
) -> None:
    driver.never_listen = True
    release(store, app, 1)
    agent.converge_app(store.app("hello"))
    assert "R10" in store.release(app, 1).status_reason
    assert driver.names() == []


def test_a_web_dyno_that_listens_but_never_answers_is_not_routed(
    agent: Agent, store: Store, app: App, driver: FakeDriver, r: redis.Redis
) -> None:
    release(store, app, 1)
    agent.converge_app(store.app("hello"))
    driver.silent = True
    release(store, app, 2)
    agent.converge_app(store.app("hello"))
    assert "did not answer an HTTP request" in store.release(app, 2).status_reason
    assert routes.load(r, "hello").release == 1  # v1 kept serving
    # Only v1's dyno left its boot CPU weight; v2's never became healthy.
    assert driver.booted_dynos == [("web.1", 1)]


def test_scaling_starts_and_stops_only_the_difference(
    agent: Agent, store: Store, app: App, driver: FakeDriver, r: redis.Redis
) -> None:
    release(store, app, 1)
    agent.converge_app(store.app("hello"))
    first = set(driver.running)
    store.set_formation(app, {"web": 3})
    agent.converge_app(store.app("hello"))
    assert driver.names() == [("web.1", 1), ("web.2", 1), ("web.3", 1)]
    assert first <= set(driver.running), "web.1 keeps running while others start"
    assert backends(r) == ["web.1", "web.2", "web.3"]
    store.set_formation(app, {"web": 1})
    agent.converge_app(store.app("hello"))
    settle(agent)
    assert driver.names() == [("web.1", 1)]
    assert backends(r) == ["web.1"]


def test_a_crashed_dyno_leaves_the_route_and_comes_back(
    agent: Agent, store: Store, app: App, driver: FakeDriver, r: redis.Redis
) -> None:
    release(store, app, 1)
    store.set_formation(app, {"web": 2})
    agent.converge_app(store.app("hello"))
    driver.crash("web.2")
    agent._reap()
    assert backends(r) == ["web.1"]
    crashed = [d for d in state.read(r, "hello") if d["name"] == "web.2"]
    assert crashed[0]["state"] == "crashed" and crashed[0]["exit_code"] == 1
    dyno = next(d for d in agent.dynos["hello"] if d.spec.name == "web.2")
    dyno.restart_at = 0  # the backoff has passed
    agent.converge_app(store.app("hello"))
    assert backends(r) == ["web.1", "web.2"]


def test_a_restart_rolls_every_dyno(
    agent: Agent, store: Store, app: App, driver: FakeDriver
) -> None:
    release(store, app, 1)
    agent.converge_app(store.app("hello"))
    before = set(driver.running)
    store.bump_restart(app)
    agent.converge_app(store.app("hello"))
    settle(agent)
    assert len(driver.running) == 1 and not before & set(driver.running)


def test_a_destroyed_app_loses_its_dynos_and_route(
    agent: Agent, store: Store, app: App, driver: FakeDriver, r: redis.Redis
) -> None:
    release(store, app, 1)
    agent.converge_app(store.app("hello"))
    store.delete_app(app)
    agent._teardown("hello")
    assert driver.names() == []
    assert routes.load(r, "hello") is None
    assert state.read(r, "hello") == []


def test_a_new_agent_adopts_matching_dynos_and_stops_the_rest(
    store: Store, app: App, driver: FakeDriver, r: redis.Redis
) -> None:
    release(store, app, 1)
    first = Agent(store=store, r=r, driver=driver, boot_timeout=1.0, stop_grace=0.1)
    first.converge_app(store.app("hello"))
    kept = next(iter(driver.running.values()))
    # An extra dyno the formation no longer wants, as if scaled down while the agent was dead.
    extra = driver.start(DynoSpec(
        id="hello.web.2.x", app="hello", name="web.2", type="web", release=1, restart_seq=0,
        layers=(Path("/slugs/1"),), command="serve", port=None, uid=app.uid), print)
    driver.left_over = [kept, extra]
    second = Agent(store=store, r=r, driver=driver, boot_timeout=1.0, stop_grace=0.1)
    second._take_over_strays()
    assert driver.attached == [kept.spec.id]
    assert set(driver.running) == {kept.spec.id}, "the adopted dyno was not restarted"
    assert driver.booted_dynos == [("web.1", 1), ("web.1", 1)], (
        "an adopted dyno gets its full CPU weight again, whatever the agent before did")
    assert backends(r) == ["web.1"]
    second.converge_app(store.app("hello"))
    assert set(driver.running) == {kept.spec.id}, "converging keeps the adopted dyno"


def test_a_new_size_rolls_the_dynos_onto_its_limits(
    agent: Agent, store: Store, app: App, driver: FakeDriver
) -> None:
    release(store, app, 1)
    agent.converge_app(store.app("hello"))
    store.set_formation_sizes(app, {"web": "standard-2x"})
    agent.converge_app(store.app("hello"))
    settle(agent)
    (dyno,) = driver.running.values()
    assert dyno.spec.limits.memory_mb == 1024


def test_a_settled_app_is_skipped_until_something_about_it_changes(
    agent: Agent, store: Store, app: App, driver: FakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    release(store, app, 1)
    worked: list[str] = []
    real = agent.converge_app

    def counting(a: App) -> bool:
        worked.append(a.name)
        return real(a)

    monkeypatch.setattr(agent, "converge_app", counting)

    def one_pass() -> None:
        agent.converge_all()
        for thread in threading.enumerate():
            if thread.name.startswith("converge-"):
                thread.join(5)

    for _ in range(4):  # deploys, finds it settled, then leaves it alone
        one_pass()
    assert worked == ["hello", "hello"]
    store.set_formation(app, {"web": 2})
    for _ in range(3):  # starts web.2, finds it settled, leaves it alone
        one_pass()
    assert len(worked) == 4 and driver.names() == [("web.1", 1), ("web.2", 1)]
    agent._next_full_pass = 0.0  # a full pass looks at every app whatever changed
    one_pass()
    one_pass()
    assert len(worked) == 5


def test_a_waiting_push_is_woken_when_the_release_settles_and_sees_no_extra_output(
    agent: Agent, store: Store, app: App, r: redis.Redis
) -> None:
    release(store, app, 1)
    waiting: list[Release] = []
    lines: list[str] = []
    waiter = threading.Thread(target=lambda: waiting.append(releases.wait(
        store, app, store.release(app, 1), 60, r=r, on_output=lines.append)))
    r.set(keys.heartbeat("agent"), "1", ex=60)
    waiter.start()
    agent.converge_app(store.app("hello"))
    waiter.join(60)
    assert [rel.status for rel in waiting] == ["succeeded"]
    # The mark that woke it is in the release's stream, but it is no line of output.
    marks = r.xrange(keys.release_log("hello", 1))
    assert [fields for _, fields in marks] == [{b"settled": b"1"}]
    assert lines == []
