"""The KSeF connection wizard: choose a method; for methods 1 and 2 download, sign, upload, confirm, follow.

Thin views over :mod:`klucznik.wizard`: each handler parses the request, calls one domain step with the
current time, and renders a page or an htmx partial. The state of an attempt is the ``auth_requests`` row
(not the browser session), so reloads and second tabs are harmless. Polling uses htmx: the progress
element asks again after a second, and the final answer has status 286, which stops htmx polling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import g
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints.auth import login_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import lang
from blueprints.context import message
from blueprints.context import now
from blueprints.errors import error_response
from blueprints.htmx import STOP_POLLING
from blueprints.htmx import htmx
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from klucznik import xades
from klucznik.authorize import signed_xml
from klucznik.authorize.flow import advance
from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import get_request
from klucznik.authorize.requests import latest_request
from klucznik.authorize.session import ksef_client_for
from klucznik.clock import parse as parse_datetime
from klucznik.errors import PortalError
from klucznik.ksef.errors import KsefError
from klucznik.records import clients

bp = Blueprint("wizard", __name__)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> Any:
    """A signed file above the portal's limit: said under the upload field (swapped like any verdict), not in
    a banner that would stay after a later file passes."""
    args = request.view_args or {}
    if request.endpoint != "wizard.upload":
        return error_response(413, _("The file is too large"), _("Reload the page and try again."))
    client, auth_request = _attempt(int(args["client_id"]), int(args["request_id"]))
    error = _("This file is too large: the portal accepts at most 2 MB at once. A signed login file has a few "
              "kilobytes: check that you chose the file the signing program saved.")
    context = _page_context(client, auth_request, auth_request.method, upload_error=error)
    if htmx:
        return _partial("wizard/_check.html", 422, **context)
    return render_page("wizard/method.html", 413, **context)

METHOD_SLUGS = {"grant": "grant", "certificates": "portal_certs"}
SLUG_OF = {v: k for k, v in METHOD_SLUGS.items()}
#: Times are shown as the accountant's clock shows them.
LOCAL_TIME = ZoneInfo("Europe/Warsaw")


def _client(client_id: int) -> clients.Client:
    """The client company ``client_id`` (404 page when there is none)."""
    return clients.get_client(get_db(), client_id)


def _method(slug: str) -> str:
    """The wizard method of a URL slug (404 page for an unknown slug)."""
    if slug not in METHOD_SLUGS:
        abort(404)
    return METHOD_SLUGS[slug]


def _ksef():
    """A KSeF client for the office's environment (``KSEF_CLIENT_OPTIONS`` adds e.g. retries in tests)."""
    options = {"timeout": (5.0, 30.0), **current_app.config.get("KSEF_CLIENT_OPTIONS", {})}
    client = ksef_client_for(get_db(), **options)
    g.setdefault("wizard_ksef_clients", []).append(client)
    return client


@bp.teardown_request
def _close_ksef_clients(_exc: BaseException | None = None) -> None:
    """Close the KSeF clients (their HTTP connections) this request opened."""
    for client in g.pop("wizard_ksef_clients", []):
        client.close()


def _request(client_id: int, request_id: int) -> AuthRequest:
    """The client's attempt ``request_id`` (404 page when it is not this client's)."""
    return get_request(get_db(), request_id, client_id=client_id)


def _attempt(client_id: int, request_id: int) -> tuple[clients.Client, AuthRequest]:
    """The client and its attempt, as every attempt page starts with them."""
    return _client(client_id), _request(client_id, request_id)


def _run(step: Callable[..., Any], **arguments: Any) -> Any:
    """Run a wizard step as the logged-in user, now, from this request's address."""
    return step(get_store(), actor=g.user.username, at=now(), ip=client_ip(), **arguments)


def _page_context(client: clients.Client, auth_request: AuthRequest | None, method: str, **extra: Any):
    """The template context of the method page and its partials (times shown on the Warsaw clock)."""
    moment = now()
    seconds_left = auth_request.seconds_left(moment) if auth_request else 0
    return {
        "client": client,
        "auth_request": auth_request,
        "method": method,
        "slug": SLUG_OF[method],
        "now": moment,
        "seconds_left": seconds_left,
        "minutes_left": -(-seconds_left // 60),
        "expires_local": auth_request.expires_at.astimezone(LOCAL_TIME).strftime("%H:%M:%S")
        if auth_request
        else "",
        "lang_code": lang(),
        "step": wizard_step(auth_request, moment),
        "download_name": download_name(client, auth_request) if auth_request else "",
        **extra,
    }


def download_name(client: clients.Client, auth_request: AuthRequest) -> str:
    """``AuthTokenRequest-<NIP>-<date>.xml``: the client's NIP and the day the file was prepared (Warsaw)."""
    day = auth_request.created_at.astimezone(LOCAL_TIME).strftime("%Y-%m-%d")
    return f"AuthTokenRequest-{client.nip}-{day}.xml"


def wizard_step(auth_request: AuthRequest | None, moment) -> int:
    """The number of the step bar's current step for methods 1 and 2 (5: everything done).

    2 "download" while there is no usable file, 3 "sign" once a file was issued, 4 "upload and send"
    from a checked file on, 5 when KSeF finished successfully.
    """
    if auth_request is None or auth_request.status == "failed":
        return 2
    if auth_request.status in ("issued", "checked") and auth_request.expired(moment):
        return 2
    if auth_request.status == "issued":
        return 3
    return 5 if auth_request.status == "done" else 4


@bp.route("/clients/<int:client_id>/wizard")
@login_required
def start(client_id: int) -> Any:
    """Step 1: the three ways to connect the client to KSeF."""
    client = _client(client_id)
    return render_page("wizard/start.html", client=client)


@bp.route("/clients/<int:client_id>/wizard/<slug>")
@login_required
def method_page(client_id: int, slug: str) -> Any:
    """Methods 1 and 2: the latest attempt (if it is still open) or the button for a new file."""
    method = _method(slug)
    client = _client(client_id)
    latest = latest_request(get_db(), client_id, method=method)
    if latest is not None and clients.of_old_nip(get_db(), latest.id):  # the client's NIP changed since
        latest = None
    return render_page("wizard/method.html", **_page_context(client, latest, method))


@bp.route("/clients/<int:client_id>/wizard/<slug>/new", methods=["POST"])
@login_required
def new_request(client_id: int, slug: str) -> Any:
    """Take a fresh challenge from KSeF and prepare the file to sign."""
    method = _method(slug)
    client = _client(client_id)
    try:
        auth_request = _run(signed_xml.issue_request, client_id=client.id, method=method, ksef=_ksef())
    except PortalError as exc:
        return render_page(
            "wizard/method.html",
            503 if isinstance(exc, KsefError) else 422,
            **_page_context(client, None, method, error=message(exc)),
        )
    # One click: the attempt's page opens and starts the download itself (a meta refresh, no script).
    return redirect_to(url_for("wizard.attempt", client_id=client.id, request_id=auth_request.id, download=1))


@bp.route("/clients/<int:client_id>/wizard/attempts/<int:request_id>")
@login_required
def attempt(client_id: int, request_id: int) -> Any:
    """One attempt: download, instructions, upload, confirmation and progress, as far as it got."""
    client, auth_request = _attempt(client_id, request_id)
    context = _page_context(client, auth_request, auth_request.method)
    start_download = (
        request.args.get("download") == "1" and auth_request.status == "issued" and not auth_request.expired(now())
    )
    return render_page("wizard/method.html", start_download=start_download, **context)


@bp.route("/clients/<int:client_id>/wizard/attempts/<int:request_id>/AuthTokenRequest.xml")
@login_required
def download(client_id: int, request_id: int) -> Any:
    """The unsigned file, exactly as stored, as an attachment (signing tools must get it unchanged)."""
    client, auth_request = _attempt(client_id, request_id)
    response = current_app.response_class(auth_request.unsigned_xml, mimetype="application/xml")
    response.headers["Content-Disposition"] = f"attachment; filename={download_name(client, auth_request)}"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/clients/<int:client_id>/wizard/attempts/<int:request_id>/validity")
@login_required
def validity(client_id: int, request_id: int) -> Any:
    """How long the file stays valid (polled; 286 once it has expired, which stops the polling)."""
    client, auth_request = _attempt(client_id, request_id)
    context = _page_context(client, auth_request, auth_request.method)
    status = STOP_POLLING if auth_request.expired(context["now"]) or auth_request.status != "issued" else 200
    return render_page("wizard/_validity.html", status, **context)


@bp.route("/clients/<int:client_id>/wizard/attempts/<int:request_id>/upload", methods=["POST"])
@login_required
def upload(client_id: int, request_id: int) -> Any:
    """Check the uploaded signed file at once and show who signed it; nothing is sent to KSeF yet."""
    client, auth_request = _attempt(client_id, request_id)
    uploaded = request.files.get("signed")
    data = uploaded.read(xades.MAX_BYTES + 1) if uploaded else b""
    error = None
    result = None
    if not data:
        error = _("Choose the signed file first.")
    else:
        try:
            result = _run(signed_xml.check_upload, request_id=auth_request.id, client_id=client_id, data=data)
        except PortalError as exc:
            error = message(exc)
    auth_request = _request(client_id, request_id)
    context = _page_context(client, auth_request, auth_request.method, result=result, upload_error=error)
    status = 200 if result is not None and result.ok else 422
    if htmx:
        return _partial("wizard/_check.html", status, **context)
    return render_page("wizard/method.html", status, **context)


@bp.route("/clients/<int:client_id>/wizard/attempts/<int:request_id>/submit", methods=["POST"])
@login_required
def submit(client_id: int, request_id: int) -> Any:
    """Send the checked file to KSeF (the original bytes) and start following the status."""
    client, auth_request = _attempt(client_id, request_id)
    error = None
    try:
        _run(signed_xml.submit, request_id=auth_request.id, client_id=client_id, ksef=_ksef())
    except PortalError as exc:
        error = message(exc)
    auth_request = _request(client_id, request_id)
    context = _page_context(client, auth_request, auth_request.method, submit_error=error)
    if not htmx:
        return render_page("wizard/method.html", **context)
    if auth_request.status == "checked":  # not sent (KSeF unavailable): offer the button again
        return _partial("wizard/_confirm.html", 200, **context)
    return _partial("wizard/_progress.html", STOP_POLLING if auth_request.final else 200, **context)


@bp.route("/clients/<int:client_id>/wizard/attempts/<int:request_id>/progress")
@login_required
def progress(client_id: int, request_id: int) -> Any:
    """One step of following KSeF (polled every second until the attempt is finished)."""
    client, auth_request = _attempt(client_id, request_id)
    notice = None
    if not auth_request.final and auth_request.status not in ("issued", "checked"):
        result = _run(advance, request_id=auth_request.id, client_id=client_id, ksef=_ksef())
        auth_request = result.request
        notice = message(result.notice) if result.notice else None
    context = _page_context(
        client,
        auth_request,
        auth_request.method,
        notice=notice,
        tokens=_token_summary(client_id) if auth_request.status == "done" else None,
    )
    if htmx:
        return _partial("wizard/_progress.html", STOP_POLLING if auth_request.final else 200, **context)
    return render_page("wizard/method.html", **context)


def _partial(template: str, status: int, **context: Any) -> Any:
    """An htmx partial with the step bar swapped out of band (the step moves as the attempt does)."""
    html = render_template(template, **context) + render_template("wizard/_steps_oob.html", **context)
    return current_app.make_response((html, status))


def _token_summary(client_id: int) -> dict[str, Any] | None:
    """The validity of the client's active KSeF tokens, for the success page (``None`` without tokens)."""
    row = (
        get_db()
        .execute(
            "SELECT context_nip, access_valid_until, refresh_valid_until, created_at FROM ksef_tokens "
            "WHERE client_id = ? AND status = 'active' ORDER BY id DESC LIMIT 1",
            [client_id],
        )
        .fetchone()
    )
    if row is None:
        return None
    return {
        "context_nip": row[0],
        "access_valid_until": _local(row[1]),
        "refresh_valid_until": _local(row[2]),
        "created_at": _local(row[3]),
    }


def _local(stored: str) -> str:
    """A stored UTC time as the accountant's clock shows it (``2026-12-01 01:37``)."""
    return parse_datetime(stored).astimezone(LOCAL_TIME).strftime("%Y-%m-%d %H:%M")
