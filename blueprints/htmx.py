"""htmx in one place: the extension, page-or-partial rendering, redirects that htmx follows, stop-polling."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask import current_app
from flask import redirect
from flask import render_template
from flask_htmx import HTMX
from flask_htmx.constants import HTMX_STOP_POLLING
from flask_htmx.responses import HTMXResponseClientRedirect

htmx = HTMX()
#: htmx stops polling when the answer has this status (286).
STOP_POLLING = HTMX_STOP_POLLING


def render_page(template: str, status: int = 200, **context: Any) -> Response:
    return current_app.make_response((render_template(template, **context), status))


def htmx_partial_or_page(page: str, partial: str, **context: Any) -> Response:
    """Render ``partial`` for an htmx request and ``page`` otherwise, with ``Vary: HX-Request``."""
    template = partial if htmx and not htmx.history_restore_request else page
    response = current_app.make_response(render_template(template, **context))
    response.headers.add("Vary", "HX-Request")
    return response


def redirect_to(url: str) -> Response:
    """A redirect that also works for htmx requests (``HX-Redirect`` instead of a swapped 302)."""
    if htmx:
        return HTMXResponseClientRedirect(url)
    return redirect(url, 303)
