"""A KSeF client for the office's configured environment, closed when the request ends.

A blueprint that talks to KSeF registers :func:`close_ksef_clients` as its ``teardown_request``.
``KSEF_CLIENT_OPTIONS`` in the app's configuration adds options (e.g. retries and a clock in tests).
"""

from __future__ import annotations

from flask import current_app
from flask import g

from blueprints.context import get_db
from klucznik.authorize.session import ksef_client_for
from klucznik.ksef.client import KsefClient


def ksef_client() -> KsefClient:
    """A KSeF client for the office's environment, closed at the end of this request."""
    options = {"timeout": (5.0, 30.0), **current_app.config.get("KSEF_CLIENT_OPTIONS", {})}
    client = ksef_client_for(get_db(), **options)
    g.setdefault("ksef_access_clients", []).append(client)
    return client


def close_ksef_clients(_exc: BaseException | None = None) -> None:
    """Close the KSeF clients (their HTTP connections) this request opened."""
    for client in g.pop("ksef_access_clients", []):
        client.close()
