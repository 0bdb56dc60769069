"""Methods 1 and 2 beyond the wizard's steps: the proof of a client's grant to the office, and revoking it.

Thin views over :mod:`klucznik.authorize.grant_check`; the client page and the wizard's progress load the
grant's status as an htmx partial.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint
from flask import current_app
from flask import g
from flask import request
from flask import url_for
from flask_babel import gettext as _

from blueprints.auth import login_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import lang
from blueprints.context import message
from blueprints.context import now
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from blueprints.ksef_access import close_ksef_clients
from blueprints.ksef_access import ksef_client
from klucznik.authorize import enroll
from klucznik.authorize import flow
from klucznik.authorize import grant_check
from klucznik.authorize.session import ksef_client_for
from klucznik.errors import PortalError
from klucznik.records import clients
from klucznik.records import enrollments
from klucznik.records import office

bp = Blueprint("methods", __name__)
bp.teardown_request(close_ksef_clients)

#: ``app.extensions`` key of the thread that took up interrupted attempts after the start (tests join it).
RESUME_THREAD = "klucznik.resume_thread"
_resume_lock = threading.Lock()


@bp.before_app_request
def _resume_after_start() -> None:
    """Once per process, as soon as the instance is unsealed: take up attempts a stop interrupted (a thread)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if RESUME_THREAD in app.extensions or get_store().is_sealed:
        return
    with _resume_lock:
        if RESUME_THREAD in app.extensions:
            return
        app.extensions[RESUME_THREAD] = None
        _start_resume(app)


def _start_resume(app: Any) -> None:
    """Start the thread that advances every interrupted attempt once (when there is any)."""
    store = get_store()
    with store.connect() as db:
        if not enrollments.unfinished_requests(db):
            return
    options = {"timeout": (5.0, 30.0), **app.config.get("KSEF_CLIENT_OPTIONS", {})}
    at = now()

    def ksef_for():
        with store.connect() as db:
            return ksef_client_for(db, **options)

    thread = threading.Thread(
        target=flow.resume_unfinished, kwargs={"ksef_for": ksef_for, "actor": "system", "at": at},
        args=(store,), name="klucznik-resume", daemon=True,
    )
    app.extensions[RESUME_THREAD] = thread
    thread.start()


def _grant_context(client_id: int, **extra: Any) -> dict[str, Any]:
    db = get_db()
    client = clients.get_client(db, client_id)
    profile = office.get_office(db)
    return {
        "client": client,
        "check": grant_check.latest_check(db, client_id),
        "self_grant": bool(profile.nip) and profile.nip == client.nip,
        "environment": profile.ksef_environment,
        "permission_name": grant_check.permission_name,
        "lang_code": lang(),
        **extra,
    }


@bp.app_context_processor
def _grant_proof() -> dict[str, Any]:
    """``grant_proof(client_id)`` in every template: what ``methods/_grant_status.html`` shows."""
    return {"grant_proof": _grant_context}


@bp.app_context_processor
def _enrollment_progress() -> dict[str, Any]:
    """``enrollment_progress(request_id)`` in every template: method 2's certificate requests, without keys."""

    def rows(request_id: int) -> list[dict[str, Any]]:
        return [
            {"type": r.certificate_type, "slot": r.slot, "status": r.status, "reference": r.reference_number,
             "serial": r.serial, "key_algorithm": r.key_algorithm}
            for r in enrollments.for_request(get_db(), request_id)
        ]

    return {"enrollment_progress": rows}


@bp.route("/clients/<int:client_id>/wizard/attempts/<int:request_id>/enroll/confirm", methods=["POST"])
@login_required
def enroll_confirm(client_id: int, request_id: int) -> Any:
    """Method 2: the go-ahead after the limits and the company's certificates were shown."""
    try:
        enroll.confirm(get_store(), request_id=request_id, client_id=client_id,
                       key_type=request.form.get("key_type", "ec"), also_grant=request.form.get("also_grant") == "1",
                       actor=g.user.username, at=now(), ip=client_ip())
    except PortalError as exc:
        return render_page("errors/_alert.html", 422, title=_("Not confirmed"), text=message(exc))
    return redirect_to(url_for("wizard.attempt", client_id=client_id, request_id=request_id))


@bp.route("/clients/<int:client_id>/grant")
@login_required
def grant_status(client_id: int) -> Any:
    """The latest proof of the client's grant (partial), with "Sprawdź uprawnienia" and "Odbierz uprawnienia"."""
    return render_page("methods/_grant_status.html", **_grant_context(client_id))


@bp.route("/clients/<int:client_id>/grant/verify", methods=["POST"])
@login_required
def grant_verify(client_id: int) -> Any:
    """Log in as the office in the client's context and read the grants received; show the result."""
    error = None
    try:
        grant_check.verify_grant(get_store(), client_id=client_id, ksef=ksef_client(), actor=g.user.username,
                                 ip=client_ip(), at=now())
    except PortalError as exc:
        error = message(exc)
    context = _grant_context(client_id, error=error)
    status = 200 if context["check"] and context["check"].ok and not error else 422
    return render_page("methods/_grant_status.html", status, **context)


@bp.route("/clients/<int:client_id>/grant/revoke", methods=["POST"])
@login_required
def grant_revoke(client_id: int) -> Any:
    """"Odbierz uprawnienia": first a confirmation, then the revocation in the client's KSeF session."""
    if request.form.get("confirm") != "yes":
        return render_page("methods/_grant_status.html", **_grant_context(client_id, confirm_revoke=True))
    error = None
    revoked = False
    try:
        grant_check.revoke_grant(get_store(), client_id=client_id, ksef=ksef_client(), actor=g.user.username,
                                 ip=client_ip(), at=now())
        revoked = True
    except PortalError as exc:
        error = message(exc)
    return render_page("methods/_grant_status.html", 200 if revoked else 422,
                       **_grant_context(client_id, error=error, revoked=revoked))
