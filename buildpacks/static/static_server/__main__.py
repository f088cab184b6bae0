"""The command line: `python3 -I DIR/static_server` serves the app's site;
`python3 -I DIR/static_server --build APP_DIR` is bin/compile's build step."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from .config import STATE_DIR, ConfigError, build
    from .core import load_site
    from .server import serve

    if argv[:1] == ["--build"]:
        if len(argv) != 2:
            print("usage: static_server --build APP_DIR", file=sys.stderr)
            return 2
        return build(Path(argv[1]), sys.stdout)
    # Run as APP/.paas/static_server; the app folder is the one above .paas.
    here = Path(__file__).resolve().parent.parent
    app_dir = here.parent if here.name == STATE_DIR else Path.cwd()
    try:
        site = load_site(app_dir)
    except ConfigError as exc:
        print(f"static: {exc}", file=sys.stderr, flush=True)
        return 1
    host = os.environ.get("HOST", "0.0.0.0")
    try:
        port = int(os.environ.get("PORT", "5000"))
    except ValueError:
        print(f"static: PORT={os.environ['PORT']!r} is not a port number", file=sys.stderr)
        return 1
    return asyncio.run(serve(site, host, port, app_dir / site.config.root))


if __name__ == "__main__":
    if __package__:  # python3 -m static_server
        sys.exit(main(sys.argv[1:]))
    # `python3 -I DIR/static_server` runs this file on its own, with the package's folder
    # on sys.path: import it again as part of its package, from the folder above, so that
    # the relative imports work.
    package_dir = Path(__file__).resolve().parent
    sys.path[0] = str(package_dir.parent)
    sys.exit(importlib.import_module(f"{package_dir.name}.__main__").main(sys.argv[1:]))
