"""The static buildpack's file server, and the build step that prepares a site for it.

`python3 -I .paas/static_server` serves the app's site on $HOST:$PORT as described by the
.paas/static.json beside it; bin/compile runs `python3 -I static_server --build APP_DIR`,
which checks the app's static.json, gzips text files once and writes that resolved config.
Python 3.10+ standard library only: dynos have the stack's python3 and nothing else, and
the package runs from its copy in the app, so its modules import only each other.

- config.py: static.json checked, the site's files, and the build step (--build).
- core.py: a site in memory and the answer to each request, without I/O.
- server.py: HTTP/1.1 over asyncio, sendfile, the access log, signals.
- __main__.py: the command line.
"""
