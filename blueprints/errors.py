"""Error pages: every error a user can meet says in plain words what happened and what to do.

A full page for a normal request, an alert partial for htmx; an unexpected error gets a number the
administrator finds in the log, never a traceback.
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask
from flask import Response
from flask import request
from flask import url_for
from flask.globals import request_ctx
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints.context import message
from blueprints.htmx import htmx
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from klucznik.errors import Conflict
from klucznik.errors import InstanceDamaged
from klucznik.errors import NotFound
from klucznik.errors import Sealed
from klucznik.errors import StorageError

log = logging.getLogger("klucznik.web")


def error_response(status: int, title: str, text: str, *, error_id: str | None = None) -> Response:
    if request_ctx.url_adapter is None:  # a Host not trusted: no page can build its links, so plain text
        return Response(f"{title}\n\n{text}\n", status, mimetype="text/plain")
    template = "errors/_alert.html" if htmx else "errors/error.html"
    return render_page(template, status, title=title, text=text, error_id=error_id)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_exc: CSRFError) -> Response:
        return error_response(
            400,
            _("The form has expired"),
            _(
                "The form was open too long or came from another page, so nothing was saved. "
                "Reload the page and try again."
            ),
        )

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge) -> Response:
        return error_response(
            413,
            _("The file is too large"),
            _(
                "What you sent is larger than the portal accepts (2 MB in total), so nothing was "
                "saved. Certificates and keys are a few kilobytes: check that you chose the right "
                "files."
            ),
        )

    @app.errorhandler(NotFound)
    def not_found_domain(exc: NotFound) -> Response:
        return error_response(404, _("Not found"), message(exc))

    @app.errorhandler(Conflict)
    def conflict(exc: Conflict) -> Response:
        return error_response(409, _("This cannot be done now"), message(exc))

    @app.errorhandler(InstanceDamaged)
    def damaged(exc: InstanceDamaged) -> Response:
        return render_page("errors/damaged.html", 503, error=exc)

    @app.errorhandler(Sealed)
    def sealed(_exc: Sealed) -> Response:
        return redirect_to(url_for("auth.login"))

    @app.errorhandler(StorageError)
    def storage(exc: StorageError) -> Response:
        # A full disk or a failed write: nothing was acknowledged, what was saved before is safe, and the
        # next write works again once there is space (docs/ARCHITECTURE.md, "Storage").
        log.error("storage error on %s %s: %s", request.method, request.path, exc.text.en)
        return error_response(503, _("The change was not saved"), message(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        texts = {
            404: (_("Page not found"), _("This address does not exist in the portal. Use the menu above.")),
            405: (
                _("Not allowed"),
                _("This address cannot be used this way. Use the buttons in the portal."),
            ),
            400: (
                _("Bad request"),
                _("The portal could not read what was sent. Reload the page and try again."),
            ),
            403: (
                _("This needs an administrator"),
                _(
                    "Only an administrator of the portal can open this page or do this. If you need it, ask "
                    "an administrator of your office; nothing was changed."
                ),
            ),
        }
        title, text = texts.get(
            exc.code or 500, (_("The portal cannot do this"), _("Reload the page and try again."))
        )
        return error_response(exc.code or 500, title, text)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return http_error(exc)
        error_id = secrets.token_hex(4)
        log.exception("unexpected error %s on %s %s", error_id, request.method, request.path)
        return error_response(
            500,
            _("Something went wrong"),
            _(
                "The portal hit an unexpected error; nothing you already saved was lost. Try "
                "again; if it repeats, give your administrator this error number."
            ),
            error_id=error_id,
        )
