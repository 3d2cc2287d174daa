"""Coupon Lab: first-come-first-served coupon issuance with switchable concurrency strategies."""
from __future__ import annotations

import logging

from flask import Flask

from coupon import embedded
from coupon.config import Config, ConfigError

log = logging.getLogger(__name__)

# Bodies are tiny JSON documents; anything larger is refused with 413 before it is read.
MAX_BODY_BYTES = 64 * 1024


def create_app(config: Config | None = None) -> Flask:
    """Create the WSGI app; with no database or Redis URL, start the embedded servers."""
    from coupon import cli, errors, views
    from coupon.runtime import Runtime

    given = config or Config.from_env()
    if not given.embedded and not given.admin_token:
        raise ConfigError("COUPON_ADMIN_TOKEN must be set when the service runs on real servers")
    resolved = embedded.resolve(given, export=True)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["coupon"] = Runtime.open(resolved)
    app.register_blueprint(views.bp)
    errors.register(app)
    cli.register(app)
    return app
