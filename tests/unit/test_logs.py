"""The app log stream: one line at a time and many in one round trip."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

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
