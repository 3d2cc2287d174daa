"""Coupon Lab: first-come-first-served coupon issuance with switchable concurrency strategies."""

from __future__ import annotations

import logging

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from coupon.core.config import Config, ConfigError
from coupon.servers import embedded

log = logging.getLogger(__name__)

# Bodies are tiny JSON documents; anything larger is refused with 413 before it is read.
MAX_BODY_BYTES = 64 * 1024


def create_app(config: Config | None = None) -> Flask:
    """Create the WSGI app; with no database or Redis URL, start the embedded servers."""
    from coupon import cli
    from coupon.api import errors, openapi, scrape, views
    from coupon.api.gate import Gate
    from coupon.api.hotpath import HotPath
    from coupon.core import logs
    from coupon.core.metrics import IssueObserver
    from coupon.runtime import Runtime

    given = config or Config.from_env()
    # Only the all-embedded sandbox may fall back to the well-known dev token: a service with
    # any real server configured must not run open.
    if (given.database_url or given.redis_url or given.redis_sentinels) and not given.admin_token:
        raise ConfigError("COUPON_ADMIN_TOKEN must be set when the service runs on real servers")
    resolved = embedded.resolve(given, export=True)
    logs.configure(
        [resolved.admin_token or "", resolved.jwt_secret or ""],
        as_json=resolved.log_json,
        level=resolved.log_level,
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    assert isinstance(app.json, DefaultJSONProvider)
    app.json.sort_keys = False
    runtime = app.extensions["coupon"] = Runtime.open(resolved)
    observer = app.extensions["coupon.observer"] = IssueObserver(resolved.log_issues)
    gate = app.extensions["coupon.gate"] = Gate(runtime)
    app.register_blueprint(views.bp)
    app.register_blueprint(scrape.bp)
    app.register_blueprint(openapi.bp)
    errors.register(app)
    cli.register(app)
    # The issue route's hot path sits in front of Flask; every other request passes through.
    app.wsgi_app = HotPath(app.wsgi_app, runtime, observer, gate, MAX_BODY_BYTES)  # type: ignore[method-assign]
    return app
