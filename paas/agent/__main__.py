"""`python -m paas.agent`: run the node agent until SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys

from paas.agent.agent import Agent
from paas.config import redis_client, settings
from paas.image import image_store
from paas.runtime import driver_for
from paas.store import Store


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    s = settings()
    agent = Agent(
        store=Store(s.db_path),
        r=redis_client(s),
        driver=driver_for(s),
        boot_timeout=float(os.environ.get("PAAS_BOOT_TIMEOUT", "60")),
        stop_grace=float(os.environ.get("PAAS_STOP_GRACE", "30")),
        images=image_store(s),
        domain=s.domain,
    )
    signal.signal(signal.SIGTERM, lambda *_: agent.request_stop())
    signal.signal(signal.SIGINT, lambda *_: agent.request_stop())
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
