"""Flask-only adapters: parse the request, call ``klucznik``, render a page or an htmx partial."""

from __future__ import annotations

import importlib

from flask import Flask

#: Blueprint modules, each exposing ``bp``. Add one line per area.
BLUEPRINTS = [
    "blueprints.auth",
    "blueprints.clients",
    "blueprints.admin",
    "blueprints.office",
    "blueprints.methods",
    "blueprints.links",
    "blueprints.certificates",
    "blueprints.wizard",
    "blueprints.status",
    "blueprints.ksef_warnings",
    "blueprints.mail",
]


def register_blueprints(app: Flask) -> None:
    """Register every blueprint listed in :data:`BLUEPRINTS`."""
    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(name).bp)
