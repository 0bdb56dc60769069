"""Addresses the portal reads from a request: the ``next`` target after login, ids in paths, page numbers.

Each is parsed in one place so that a hostile value (an open redirect, a CR/LF, a number SQLite cannot
hold) ends as a plain 400/404 or a harmless default, never as a redirect elsewhere or a 500.
"""

from __future__ import annotations

import re
from urllib.parse import unquote
from urllib.parse import urlsplit

from flask import Flask
from flask import Response
from flask import abort
from flask import redirect
from flask import request
from werkzeug.exceptions import SecurityError
from werkzeug.routing import IntegerConverter
from werkzeug.routing import RequestRedirect

#: SQLite integers are signed 64-bit: a larger id can match no row (and would overflow the driver).
MAX_ID = 2**63 - 1
#: No list in the portal has this many pages; a larger number is a hand-made address.
MAX_PAGE = 1_000_000
#: A ``next`` target longer than this is not one the portal made.
MAX_NEXT_LENGTH = 2048
# Control characters (tab, CR, LF, …) and backslashes: browsers drop or reinterpret them, so
# "/\t/evil.example" or "/\\evil.example" would leave the site.
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


class CappedIntegerConverter(IntegerConverter):
    """``<int:…>`` in the portal: non-negative and at most :data:`MAX_ID` (a larger id is a 404)."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002, ANN001, ANN002, ANN003
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def is_safe_path(target: str) -> bool:
    """True when ``target`` is a path on this site (``/…``), in every form a browser could read it."""
    if not target or len(target) > MAX_NEXT_LENGTH:
        return False
    decoded = target
    for _round in range(3):  # "%252F" → "%2F" → "/": look at every decoding a browser or proxy might do
        if _UNSAFE_CHARS.search(decoded) or not decoded.startswith("/") or decoded.startswith("//"):
            return False
        parts = urlsplit(decoded)
        if parts.scheme or parts.netloc:
            return False
        once = unquote(decoded)
        if once == decoded:
            return True
        decoded = once
    return False


def safe_next(target: str | None, default: str, *, refuse_prefix: str | None = None) -> str:
    """``target`` when it is a same-site path (and does not start with ``refuse_prefix``), else ``default``."""
    if target and is_safe_path(target) and not (refuse_prefix and target.startswith(refuse_prefix)):
        return target
    return default


def page_arg(name: str = "page") -> int:
    """The page number in the query (1 when absent or not a number; 400 beyond :data:`MAX_PAGE`)."""
    raw = request.args.get(name, "1").strip()
    if not raw.isascii() or not raw.isdigit():
        return 1
    if len(raw) > 7 or int(raw) > MAX_PAGE:
        abort(400)
    return max(1, int(raw))


def relative_routing_redirect() -> Response | None:
    """Routing redirects (``/admin//users`` → ``/admin/users``) as relative addresses.

    Werkzeug builds them absolute from the ``Host`` header, which a visitor controls while
    ``KLUCZNIK_TRUSTED_HOSTS`` is unset; a relative ``Location`` stays on whatever site the browser is on.
    """
    exc = request.routing_exception
    if isinstance(exc, SecurityError):  # a Host not in TRUSTED_HOSTS: answer 400 before anything builds a URL
        raise exc
    if not isinstance(exc, RequestRedirect):
        return None
    parts = urlsplit(exc.new_url)
    path = "/" + parts.path.lstrip("/")
    return redirect(f"{path}?{parts.query}" if parts.query else path, exc.code)


def init_urls(app: Flask) -> None:
    """Install the id converter (before any blueprint registers its routes) and relative redirects."""
    app.url_map.converters["int"] = CappedIntegerConverter
    app.before_request(relative_routing_redirect)
