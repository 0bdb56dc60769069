"""One access-log line per request, to stderr: when, from where, who, the method and the path, the status and
how long it took.

Never a secret: query values are dropped (``/clients?q=&page=`` keeps only the names), no form field, header or
cookie is written, and characters that could forge a line (CR, LF, other controls) are percent-encoded.
"""

from __future__ import annotations

import logging
import sys
import time
from urllib.parse import parse_qsl
from urllib.parse import quote

from flask import Flask
from flask import Response
from flask import g
from flask import request

from klucznik.clock import iso
from klucznik.clock import utcnow

log = logging.getLogger("klucznik.access")
#: Characters kept as they are in a logged path (everything else, controls and spaces included, is encoded).
_SAFE = "/:@-._~!$&'()*+,;=%"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment (a test's capture, waitress's console)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def shown_path() -> str:
    """The request's path with the names of its query parameters but not their values."""
    path = quote(request.path, safe=_SAFE)
    names = [quote(name, safe="") for name, _value in parse_qsl(request.query_string.decode("latin-1"),
                                                                 keep_blank_values=True)]
    return f"{path}?{'&'.join(f'{n}=' for n in names)}" if names else path


def _start() -> None:
    g.access_started = time.perf_counter()


def _finish(response: Response) -> Response:
    started = g.pop("access_started", None)
    elapsed = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    user = getattr(g.get("user"), "username", None) or "-"
    log.info('%s %s %s "%s %s" %s %.1f ms', iso(utcnow()), request.remote_addr or "-", quote(user, safe="@._-"),
             request.method, shown_path(), response.status_code, elapsed)
    return response


def init_access_log(app: Flask) -> None:
    """Register the access log (call first, so the time covers every other hook); ``KLUCZNIK_ACCESS_LOG`` off
    leaves it out."""
    if not app.config.get("KLUCZNIK_ACCESS_LOG", True):
        return
    if not any(isinstance(handler, _StderrHandler) for handler in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    app.before_request(_start)
    app.after_request(_finish)
