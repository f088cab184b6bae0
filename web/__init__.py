"""The platform's web process: REST API under /api, git under /git, the dashboard at /.

`create_app()` is the Flask app factory gunicorn serves; the router sends the
platform's own domain here over a unix socket.
"""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from paas.config import Settings, redis_client, settings
from paas.git.http import GitApp
from paas.store import Store


def create_app(s: Settings | None = None) -> Flask:
    s = s or settings()
    app = Flask(__name__)
    app.config["PAAS_SETTINGS"] = s
    app.extensions["paas_store"] = Store(s.db_path)
    app.extensions["paas_redis"] = redis_client(s)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from web.api import api
    from web.dashboard import init_dashboard

    app.register_blueprint(api)
    init_dashboard(app)

    git = GitApp(s, app.extensions["paas_store"], app.extensions["paas_redis"])
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/git": git})  # type: ignore[method-assign]
    # Only the router reaches this process (over a unix socket), so its headers are trusted.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_port=1)  # type: ignore[method-assign]
    logging.getLogger("paas").setLevel(logging.INFO)
    return app
