"""`python -m paas.build.worker`: the RQ worker that runs build jobs, and the one way a
build is queued (`enqueue`), which keeps each app's builds in line."""

from __future__ import annotations

import logging
import os
import socket
import sys

import redis
from rq import Queue, Worker
from rq.job import Dependency, JobStatus

import paas.build.jobs  # noqa: F401 - imported once here so each forked job starts warm
from paas import keys
from paas.build.output import BuildOutput
from paas.config import redis_client, settings

#: Builds yield the CPU to running dynos: on one small machine a build at full priority
#: would show up as latency on every app while it runs. Everything a build starts
#: (buildpacks, runc and its container) inherits this.
BUILD_NICENESS = int(os.environ.get("PAAS_BUILD_NICE", "10"))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    if BUILD_NICENESS:
        os.nice(BUILD_NICENESS)
    r = redis_client(settings())
    queue = Queue(keys.BUILD_QUEUE, connection=r)
    worker = Worker([queue], connection=r,
                    name=f"paas-build.{socket.gethostname()}.{os.getpid()}")
    worker.work(with_scheduler=False, logging_level="INFO")
    return 0


def enqueue(r: redis.Redis, build_id: int, app: str) -> int | None:
    """Queue the build of `build_id`, behind the app's build before it if that one has not
    ended; the id of the build it waits for, or None.

    An app's builds run one at a time, in the order they were made, whether a git push
    or the API (a source tarball) made them: each build job releases and waits for its
    deploy, so with several workers two builds of one app would otherwise interleave
    their releases. The wait is RQ's job dependency, not a lock held by a worker: a
    waiting build takes no worker, and the one ahead failing does not stop it."""
    from paas.build.jobs import BUILD_TIMEOUT

    queue = Queue(keys.BUILD_QUEUE, connection=r)
    with r.lock(keys.build_chain_lock(app), timeout=30, blocking_timeout=30):
        job_id, _, ahead = (r.get(keys.build_chain(app)) or b"").decode().partition(" ")
        job = queue.enqueue_call(
            "paas.build.jobs.run_build",
            args=(build_id,),
            timeout=int(BUILD_TIMEOUT) + 300,
            result_ttl=3600,
            failure_ttl=86400,
            description=f"build {build_id}",
            # A job RQ no longer has (it ended over an hour ago) counts as done.
            depends_on=Dependency(jobs=[job_id], allow_failure=True) if job_id else None,
        )
        # Kept past any build that could still be running, then no longer needed.
        r.set(keys.build_chain(app), f"{job.id} {build_id}", ex=86400)
    if job.get_status(refresh=False) != JobStatus.DEFERRED or not ahead.isdigit():
        return None
    BuildOutput(r, build_id).line(f"-----> Waiting for build {ahead} of {app} to finish")
    return int(ahead)


def running(r: redis.Redis) -> bool:
    """Whether any build worker is alive to take queued builds."""
    return Worker.count(connection=r, queue=Queue(keys.BUILD_QUEUE, connection=r)) > 0


if __name__ == "__main__":
    sys.exit(main())
