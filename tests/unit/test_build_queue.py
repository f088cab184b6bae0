"""The build queue keeps each app's builds in line, whoever made them (git push or the
API): a build waits for the app's build before it, not for other apps', and still runs
when the one ahead failed. Real Redis, real RQ; the job itself is a recorder."""

from __future__ import annotations

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.registry import DeferredJobRegistry

from paas import keys
from paas.build import jobs, output, worker


def test_an_apps_builds_run_one_after_another_in_order(r: redis.Redis,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, int]] = []

    def run_build(build_id: int) -> None:
        ran.append(("start", build_id))
        ran.append(("end", build_id))
        if build_id == 1:
            raise RuntimeError("build 1 breaks; build 2 must run all the same")

    monkeypatch.setattr(jobs, "run_build", run_build)
    assert worker.enqueue(r, 1, "hello") is None
    assert worker.enqueue(r, 2, "hello") == 1
    assert worker.enqueue(r, 3, "other") is None
    assert worker.enqueue(r, 4, "hello") == 2
    queue = Queue(keys.BUILD_QUEUE, connection=r)
    assert [job.args for job in queue.jobs] == [(1,), (3,)]
    waiting = DeferredJobRegistry(queue=queue)
    assert sorted(queue.fetch_job(i).args[0] for i in waiting.get_job_ids()) == [2, 4]
    # Whoever follows the build's output (the pusher, the API's stream) sees why it waits.
    assert output.so_far(r, 2)[0] == ["-----> Waiting for build 1 of hello to finish"]
    assert output.so_far(r, 3)[0] == []

    SimpleWorker([queue], connection=r).work(burst=True, with_scheduler=False)
    assert ran == [("start", 1), ("end", 1), ("start", 3), ("end", 3),
                   ("start", 2), ("end", 2), ("start", 4), ("end", 4)]
    assert waiting.get_job_ids() == []


def test_a_build_after_the_last_one_ended_starts_at_once(r: redis.Redis,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "run_build", lambda build_id: None)
    queue = Queue(keys.BUILD_QUEUE, connection=r)
    worker.enqueue(r, 1, "hello")
    SimpleWorker([queue], connection=r).work(burst=True, with_scheduler=False)
    assert worker.enqueue(r, 2, "hello") is None
    assert [job.args for job in queue.jobs] == [(2,)]
    # The job of the build before is gone from Redis (its result expired): no wait either.
    r.set(keys.build_chain("hello"), "no-such-job 2")
    assert worker.enqueue(r, 3, "hello") is None
    assert [job.args for job in queue.jobs] == [(2,), (3,)]


def test_no_worker_running_is_seen(r: redis.Redis) -> None:
    assert worker.running(r) is False
    SimpleWorker([Queue(keys.BUILD_QUEUE, connection=r)], connection=r).register_birth()
    assert worker.running(r) is True
