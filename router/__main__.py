"""`python -m router`: run the platform's HTTP router until SIGTERM or SIGINT."""

from __future__ import annotations

import sys

from router.server import main

if __name__ == "__main__":
    sys.exit(main())
