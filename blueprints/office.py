"""The office: its profile (name, NIP, KSeF environment) and its own KSeF certificate, with a connection check.

Changing the KSeF environment once it was saved asks for confirmation first. The office's certificate and
key are checked like a client's online pair in method 3 and stored for the environment in force; "Sprawdź
połączenie" logs in to KSeF with them (:mod:`klucznik.authorize.office`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import g
from flask import request
from flask_babel import gettext as _

from blueprints.auth import admin_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import lang
from blueprints.context import message
from blueprints.context import now
from blueprints.forms import OfficeForm
from blueprints.htmx import htmx
from blueprints.htmx import render_page
from blueprints.ksef_access import close_ksef_clients
from blueprints.ksef_access import ksef_client
from klucznik import certs
from klucznik import xades
from klucznik.authorize import links
from klucznik.authorize import office as office_identity
from klucznik.authorize import office_enroll
from klucznik.errors import FieldErrors
from klucznik.errors import PortalError
from klucznik.records import office

bp = Blueprint("office", __name__)
bp.teardown_request(close_ksef_clients)


@bp.app_template_filter("ksef_environment")
def ksef_environment_filter(environment: str | None) -> str:
    """``{{ cred.ksef_environment | ksef_environment }}``: the environment's name on every page."""
    return office.environment_name(environment)


def _context(**extra: Any) -> dict[str, Any]:
    """What the office page shows besides the form: the stored credentials and the environment in force."""
    db = get_db()
    profile = office.get_office(db)
    return {
        "profile": profile,
        "environment_name": office.environment_name,
        "office_credentials": office.office_credentials(db),
        "current_credential": office.office_credential(db, environment=profile.ksef_environment),
        "enroll_attempt": office_enroll.current_attempt(db, profile.ksef_environment),
        "link_settings": links.get_settings(db),
        "lang_code": lang(),
        **extra,
    }


@bp.route("/office", methods=["GET", "POST"])
@admin_required
def index() -> Any:
    """Show and change the office profile (a change of KSeF environment is confirmed first)."""
    current = office.get_office(get_db())
    form = OfficeForm(data={"name": current.name, "nip": current.nip_formatted,
                            "ksef_environment": current.ksef_environment, "sandbox_url": current.sandbox_url})
    errors: dict[str, str] = {}
    saved = False
    confirm_change = None
    if form.validate_on_submit():
        try:
            profile = office.validate(name=form.name.data or "", nip=form.nip.data or "",
                                      ksef_environment=form.ksef_environment.data or "",
                                      sandbox_url=form.sandbox_url.data or "")
            saved_environment = office.saved_environment(get_db())
            changing = saved_environment is not None and saved_environment != profile.ksef_environment
            if changing and request.form.get("confirm_environment") != profile.ksef_environment:
                confirm_change = {"old": saved_environment, "new": profile.ksef_environment}
            else:
                with get_store().write() as db:
                    office.save_office(db, profile, actor=g.user.username, ip=client_ip(), at=now())
                saved = True
        except FieldErrors as exc:
            errors = {name: message(err) for name, err in exc.errors.items()}
    return render_page("office/index.html", 422 if errors else 200,
                       **_context(form=form, errors=errors, saved=saved, confirm_change=confirm_change))


@bp.route("/office/certificate", methods=["POST"])
@admin_required
def certificate() -> Any:
    """Check the office's certificate, key and password like method 3; store them for the environment in force."""
    profile = office.get_office(get_db())
    form = OfficeForm(data={"name": profile.name, "nip": profile.nip_formatted,
                            "ksef_environment": profile.ksef_environment, "sandbox_url": profile.sandbox_url})
    if not profile.nip:
        return render_page("office/index.html", 422, **_context(
            form=form, errors={}, cert_error=_("Save the office's NIP first: the certificate is checked against it.")))
    crt = _read_file("crt")
    key = _read_file("key")
    password = request.form.get("password") or None
    result = office_identity.check_office_pair(crt=crt, key=key, password=password, nip=profile.nip, at=now())
    if not result.ok:
        return render_page("office/index.html", 422, **_context(form=form, errors={}, cert_result=result))
    with get_store().write() as db:
        office_identity.save_office_pair(db, result=result, environment=profile.ksef_environment, nip=profile.nip,
                                         actor=g.user.username, ip=client_ip(), at=now())
    return render_page("office/index.html", **_context(form=form, errors={}, cert_result=result, cert_saved=True))


@bp.route("/office/check", methods=["POST"])
@admin_required
def check() -> Any:
    """"Sprawdź połączenie": log in to KSeF as the office and show the result."""
    try:
        result = office_identity.check_connection(get_store(), ksef=ksef_client(), actor=g.user.username,
                                                  ip=client_ip(), at=now())
        check_result = {"ok": result.ok, "message": message(result.text)}
    except PortalError as exc:  # e.g. an unknown environment: nothing was sent
        check_result = {"ok": False, "message": message(exc)}
    if htmx:
        return render_page("office/_check.html", 200 if check_result["ok"] else 422, check_result=check_result)
    profile = office.get_office(get_db())
    form = OfficeForm(data={"name": profile.name, "nip": profile.nip_formatted,
                            "ksef_environment": profile.ksef_environment, "sandbox_url": profile.sandbox_url})
    return render_page("office/index.html", 200 if check_result["ok"] else 422,
                       **_context(form=form, errors={}, check_result=check_result))


@bp.route("/office/enroll", methods=["POST"])
@admin_required
def enroll_new() -> Any:
    """A fresh file for the office's own NIP, to sign with the office's qualified seal."""
    error = None
    try:
        office_enroll.issue(get_store(), ksef=ksef_client(), actor=g.user.username, ip=client_ip(), at=now())
    except PortalError as exc:
        error = message(exc)
    return _page(422 if error else 200, enroll_error=error)


@bp.route("/office/enroll/AuthTokenRequest.xml")
@admin_required
def enroll_download() -> Any:
    """The unsigned file of the office's attempt, byte for byte, as an attachment."""
    db = get_db()
    attempt = office_enroll.current_attempt(db, office.get_office(db).ksef_environment)
    if not attempt or "unsigned_xml" not in attempt:
        abort(404)
    response = current_app.response_class(attempt["unsigned_xml"].encode(), mimetype="application/xml")
    response.headers["Content-Disposition"] = f"attachment; filename=AuthTokenRequest-{attempt['nip']}.xml"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/office/enroll/upload", methods=["POST"])
@admin_required
def enroll_upload() -> Any:
    """Check the signed file; when it passes, obtain and store the office's Authentication certificate."""
    uploaded = request.files.get("signed")
    data = uploaded.read(xades.MAX_BYTES + 1) if uploaded else b""
    if not data:
        return _page(422, enroll_error=_("Choose the signed file first."))
    try:
        result = office_enroll.upload_and_enroll(get_store(), data=data, ksef=ksef_client(), actor=g.user.username,
                                                 ip=client_ip(), at=now())
    except PortalError as exc:
        return _page(422, enroll_error=message(exc))
    if not result.ok:
        return _page(422, enroll_result=result)
    return _page(200, enroll_done=True)


def _page(status: int, **extra: Any) -> Any:
    profile = office.get_office(get_db())
    form = OfficeForm(data={"name": profile.name, "nip": profile.nip_formatted,
                            "ksef_environment": profile.ksef_environment, "sandbox_url": profile.sandbox_url})
    return render_page("office/index.html", status, **_context(form=form, errors={}, **extra))


def _read_file(name: str) -> bytes | None:
    """The bytes of file field ``name`` (at most the size limit + 1 byte; ``None`` when none was chosen)."""
    uploads = request.files.getlist(name)
    if len(uploads) > 1:
        abort(400)
    if not uploads or not uploads[0].filename:
        return None
    return uploads[0].stream.read(certs.MAX_FILE_SIZE + 1)
