"""What a view needs from the request's world: the store, a database connection, the clock, the language,
the user.

The clock is the web layer's one source of "now": ``KLUCZNIK_CLOCK`` (a callable returning an aware UTC
datetime; tests pin it) or the real clock. Views pass ``now()`` to the domain as ``at``.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask import g
from flask import request
from flask_babel import get_locale
from sqlite_utils import Database

from blueprints.sessions import SessionRegistry
from klucznik import clock
from klucznik.errors import PortalError
from klucznik.instance.store import Store
from klucznik.records.users import User
from klucznik.text import DEFAULT_LANGUAGE
from klucznik.text import Text


def get_store() -> Store:
    """The instance of this app."""
    return current_app.extensions["klucznik.store"]


def get_sessions() -> SessionRegistry:
    return current_app.extensions["klucznik.sessions"]


def get_db() -> Database:
    """One connection per request, closed at teardown (flaskr's ``get_db``)."""
    if "db" not in g:
        g.db = get_store().connect()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def now() -> datetime:
    """The current moment for this request (``KLUCZNIK_CLOCK`` when set, else the real clock)."""
    return (current_app.config.get("KLUCZNIK_CLOCK") or clock.utcnow)()


def client_ip() -> str | None:
    return request.remote_addr


def lang() -> str:
    """The current UI language code."""
    return str(get_locale() or DEFAULT_LANGUAGE)


def message(item: PortalError | Text) -> str:
    """A domain error's (or a :class:`Text`'s) message in the UI language."""
    text = item.text if isinstance(item, PortalError) else item
    return text.get(lang())


def current_user() -> User | None:
    return g.get("user")
