"""The app log stream: one line at a time and many in one round trip."""

from __future__ import annotations

import asyncio
import threading

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from paas import keys, logs


def test_append_and_recent_read_lines_back_in_order(r: redis.Redis) -> None:
    logs.append(r, "shop", "app", "web.1", "first")
    logs.append(r, "shop", "paas", "web.1", "second")
    lines = logs.recent(r, "shop")
    assert [(ln.source, ln.proc, ln.line) for ln in lines] == [
        ("app", "web.1", "first"), ("paas", "web.1", "second")]
    assert lines[0].format().endswith(" app[web.1]: first")


def test_appender_writes_a_batch_for_several_apps_in_one_command(r: redis.Redis) -> None:
    append_many = logs.appender(r)
    before = r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    append_many([
        ("shop", "router", "router", 'at=info path="/a"'),
        ("blog", "router", "router", 'at=info path="/b"'),
        ("shop", "app", "web.1", "ünïcode line"),
    ])
    after = r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    shop, blog = logs.recent(r, "shop"), logs.recent(r, "blog")
    assert [(ln.source, ln.proc, ln.line) for ln in shop] == [
        ("router", "router", 'at=info path="/a"'), ("app", "web.1", "ünïcode line")]
    assert [ln.line for ln in blog] == ['at=info path="/b"']
    assert shop[0].ts > 0
    # one script call for the batch (a NOSCRIPT retry loads it once, with one more call)
    assert after - before in (1, 2)


def test_appender_keeps_each_line_whole_and_in_order(r: redis.Redis) -> None:
    # Runs of one app, source and proc travel as lengths and bytes: nothing in a line may
    # split it or join it to the next.
    entries = [
        ("shop", "app", "web.1", ""),
        ("shop", "app", "web.1", "two\nlines in one, 12 34"),
        ("shop", "router", "router", "tab\tand a \x00 byte"),
        ("blog", "router", "router", "another app between"),
        ("shop", "app", "web.1", "ünïcode ✓"),
        ("shop", "app", "web.2", "last"),
    ]
    logs.appender(r)(entries)
    assert [(ln.source, ln.proc, ln.line) for ln in logs.recent(r, "shop")] == [
        (source, proc, line) for app, source, proc, line in entries if app == "shop"]
    assert [ln.line for ln in logs.recent(r, "blog")] == ["another app between"]
    # A line that is not valid text (a lone surrogate) is stored, not refused with its batch.
    logs.appender(r)([("blog", "app", "web.1", "half \ud800 a character")])
    assert logs.recent(r, "blog", 1)[0].line == "half ? a character"


def test_appender_keeps_the_stream_capped(r: redis.Redis) -> None:
    append_many = logs.appender(r)
    for _ in range(3):
        append_many([("shop", "router", "router", f"line {i}") for i in range(5000)])
    # approximate trimming: never far above the cap, and the newest line is kept
    assert logs.MAX_LINES <= r.xlen(keys.app_log("shop")) < logs.MAX_LINES * 1.2
    assert logs.recent(r, "shop", 1)[0].line == "line 4999"


def test_appender_works_with_the_asyncio_client(redis_url: str, r: redis.Redis) -> None:
    async def ship() -> None:
        client = aioredis.from_url(redis_url)
        try:
            await logs.appender(client)([("shop", "router", "router", "from the loop")])
        finally:
            await client.aclose()

    asyncio.run(ship())
    assert [ln.line for ln in logs.recent(r, "shop")] == ["from the loop"]


def test_shipper_sends_lines_from_many_threads_in_order_per_thread(r: redis.Redis) -> None:
    shipper = logs.Shipper(r, interval=0.01)

    def write(proc: str) -> None:
        for i in range(500):
            shipper.put("shop", "app", proc, f"{proc} {i}")

    threads = [threading.Thread(target=write, args=(f"web.{n}",)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shipper.flush()
    lines = logs.recent(r, "shop", 2000)
    assert len(lines) == 1500
    for proc in ("web.1", "web.2", "web.3"):
        assert [ln.line for ln in lines if ln.proc == proc] == [
            f"{proc} {i}" for i in range(500)]


def test_shipper_flush_puts_earlier_lines_before_a_later_direct_one(r: redis.Redis) -> None:
    shipper = logs.Shipper(r, interval=10.0)  # the thread would wait a long time
    shipper.put("shop", "app", "web.1", "last words")
    shipper.flush()
    logs.append(r, "shop", "paas", "web.1", "State changed from up to crashed")
    assert [ln.line for ln in logs.recent(r, "shop")] == [
        "last words", "State changed from up to crashed"]


def test_shipper_drops_a_batch_redis_refuses_and_carries_on(r: redis.Redis) -> None:
    broken = redis.Redis(unix_socket_path="/nonexistent/redis.sock",
                         retry=Retry(NoBackoff(), 0))
    shipper = logs.Shipper(broken, interval=0.01)
    shipper.put("shop", "app", "web.1", "lost")
    shipper.flush()  # logs a warning; does not raise
    working = logs.Shipper(r, interval=0.01)
    working.put("shop", "app", "web.1", "kept")
    working.flush()
    assert [ln.line for ln in logs.recent(r, "shop")] == ["kept"]
