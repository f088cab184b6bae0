"""`python -m paas.build.worker`: the RQ worker that runs build jobs."""

from __future__ import annotations

import logging
import os
import socket
import sys

import redis
from rq import Queue, Worker

import paas.build.jobs  # noqa: F401 - imported once here so each forked job starts warm
from paas import keys
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


def enqueue(r: redis.Redis, build_id: int) -> None:
    """Queue the build of `build_id`."""
    from paas.build.jobs import BUILD_TIMEOUT

    Queue(keys.BUILD_QUEUE, connection=r).enqueue_call(
        "paas.build.jobs.run_build",
        args=(build_id,),
        timeout=int(BUILD_TIMEOUT) + 300,
        result_ttl=3600,
        failure_ttl=86400,
        description=f"build {build_id}",
    )


if __name__ == "__main__":
    sys.exit(main())
