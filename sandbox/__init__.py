"""Klucznik's KSeF sandbox: a local server that follows the official KSeF 2.0 API, for tests and demos.

No test may reach the real KSeF, yet every flow must be tested against something that behaves like it.
The sandbox serves the same paths under ``/v2`` with the same field names, status codes, error shapes and
asynchronous behaviour; it verifies XAdES signatures for real (with :mod:`klucznik.xades`), keeps a
permission model good enough for the portal's three flows, and issues real certificates from a CA that
is clearly named as a sandbox. It also plays Latarnia (``/latarnia``) and the QR host (``/qr``), and lets
tests inject faults per endpoint.

The portal never imports this package; it is started as a process (``klucznik sandbox --port 8765``) or,
in tests, as a WSGI app in a thread.
"""

from __future__ import annotations

import json
import re
from datetime import UTC
from pathlib import Path
from typing import Any

from flask import Flask
from flask import request

from sandbox.faults import FaultMiddleware
from sandbox.ratelimits import RateLimitMiddleware
from sandbox.state import Clock
from sandbox.state import Config
from sandbox.state import SandboxState

__all__ = ["create_app", "endpoint_name", "state_of"]

_VARIABLE = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_]+)>")


def endpoint_name(method: str, rule: str) -> str:
    """``("GET", "/v2/auth/<referenceNumber>")`` → ``"GET /auth/{referenceNumber}"`` (the OpenAPI form)."""
    path = _VARIABLE.sub(r"{\1}", rule)
    path = path.removeprefix("/v2")
    return f"{method.upper()} {path or '/'}"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the sandbox WSGI app.

    ``config`` keys: ``SANDBOX_CONFIG`` (a :class:`sandbox.state.Config`, or a dict of its fields),
    ``SANDBOX_SEED`` (fault injection seed), ``SANDBOX_CLOCK`` (a :class:`sandbox.state.Clock`),
    ``SANDBOX_STATE_FILE`` (a JSON file kept across restarts: test data, grants, certificates), plus any
    Flask setting.
    """
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(
        SANDBOX_CONFIG=None, SANDBOX_SEED=0, SANDBOX_CLOCK=None, MAX_CONTENT_LENGTH=2 * 1024 * 1024
    )
    if config:
        app.config.update(config)
    settings = app.config["SANDBOX_CONFIG"]
    if isinstance(settings, dict):
        settings = Config(**settings)
    state = SandboxState(
        settings, clock=app.config["SANDBOX_CLOCK"] or Clock(), seed=app.config["SANDBOX_SEED"]
    )
    app.extensions["ksef_sandbox"] = state
    state_file = app.config.get("SANDBOX_STATE_FILE")
    if state_file:
        _persist(app, state, Path(state_file))

    from sandbox import api
    from sandbox import web

    app.register_blueprint(api.bp)
    app.register_blueprint(web.latarnia)
    app.register_blueprint(web.qr)
    app.register_blueprint(web.admin)
    app.register_blueprint(web.pages)
    faults = FaultMiddleware(app.wsgi_app, app.url_map, state.faults, endpoint_name)
    faults.wsgi_app = RateLimitMiddleware(
        faults.wsgi_app,
        state.rate_limits,
        endpoint_of=faults.endpoint,
        context_of=state.context_of_token,
        timestamp=lambda: state.now().astimezone(UTC).isoformat().replace("+00:00", "Z"),
    )
    app.wsgi_app = faults
    return app


def _persist(app: Flask, state: SandboxState, path: Path) -> None:
    """Load ``path`` if it exists, and save after every request that may have changed something."""
    if path.exists():
        state.load_json(json.loads(path.read_text(encoding="utf-8")))

    @app.after_request
    def save_state(response):
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            state.save(path)
        return response


def state_of(app: Flask) -> SandboxState:
    """The :class:`~sandbox.state.SandboxState` of a sandbox app (for tests and helpers)."""
    return app.extensions["ksef_sandbox"]
