"""Signing links: the office makes one for a client; the client's public page (no account, in Polish) offers the
file, takes the signed upload with the same pre-check as the wizard, sends it to KSeF, and follows the attempt
to KSeF's answer on the login (the status partial polls every few seconds and stops at the answer).

Public endpoints (listed in the gate) answer "try again later" while the portal is sealed, show nothing of
other clients, and are throttled per link and address. A used link still opens its page and its status for
a while (``links.FOLLOW_WINDOW``), to show how the attempt went; the file, upload and sending refuse it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import g
from flask import request
from flask import url_for
from flask_babel import gettext as _

from blueprints.auth import admin_required
from blueprints.auth import login_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import message
from blueprints.context import now
from blueprints.htmx import STOP_POLLING
from blueprints.htmx import htmx
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from blueprints.ksef_access import close_ksef_clients
from blueprints.ksef_access import ksef_client
from klucznik import xades
from klucznik.authorize import links
from klucznik.authorize import signed_xml
from klucznik.authorize.requests import get_request
from klucznik.errors import PortalError
from klucznik.records import audit
from klucznik.records import clients
from klucznik.records import office
from klucznik.status import reminders
from klucznik.throttle import LoginThrottle

bp = Blueprint("links", __name__)
bp.teardown_request(close_ksef_clients)

#: Endpoints of the client's page: reachable without an account (the gate lets them through).
PUBLIC = {"links.page", "links.download", "links.upload", "links.send", "links.status"}
#: Requests per link and address in a minute before the page asks to wait (the status polls count apart).
REQUESTS_PER_MINUTE = 30
#: How often the page asks how the sent attempt is going (20 a minute: well within the throttle).
POLL_SECONDS = 3


@bp.app_context_processor
def _signer_warning() -> dict[str, Any]:
    """``signer_warning(signer, nip)`` in every template: the pre-check's warning in the page's language."""

    def warning(signer: dict | None, nip: str) -> str | None:
        text = links.signer_warning(signer, nip)
        return message(text) if text else None

    return {"signer_warning": warning}


def _throttle() -> LoginThrottle:
    ext = current_app.extensions
    if "klucznik.link_throttle" not in ext:
        ext["klucznik.link_throttle"] = LoginThrottle(REQUESTS_PER_MINUTE, 60.0, per_address=2 * REQUESTS_PER_MINUTE)
    return ext["klucznik.link_throttle"]


def _open(token: str, *, used: bool = False, budget: str = "page") -> Any:
    """The link and its client, or the answer to give instead (sealed, throttled, gone).

    ``used``: a used link is accepted too, to show how its attempt went. ``budget``: what the request counts
    against in the throttle (the status polls have their own, so following never uses up the page's).
    """
    if get_store().is_sealed:
        return None, None, render_page("links/sealed.html", 503)
    throttle = _throttle()
    key = f"{budget}:{token[:16]}"
    if throttle.wait_seconds(key, client_ip() or "") > 0:
        return None, None, render_page("links/gone.html", 429, text=_("Too many attempts. Wait a minute and try again."))
    throttle.failed(key, client_ip() or "")  # every request counts
    try:
        link = links.resolve(get_db(), token, at=now(), used=used)
    except PortalError as exc:
        if htmx and request.endpoint == "links.status":  # the page was open past the link's end: stop polling
            return None, None, render_page("links/_status.html", STOP_POLLING, followed=None, gone=message(exc))
        return None, None, render_page("links/gone.html", 410, text=message(exc))
    return link, clients.get_client(get_db(), link.client_id), None


def _context(token: str, link: links.SigningLink, client: clients.Client, **extra: Any) -> dict[str, Any]:
    attempt = get_request(get_db(), link.auth_request_id) if link.auth_request_id else None
    return {"token": token, "link": link, "client": client, "attempt": attempt,
            "file_name": f"AuthTokenRequest-{client.nip}-{now():%Y%m%d}.xml", "now": now(), **extra}


@bp.route("/podpis/<token>")
def page(token: str) -> Any:
    """The client's page: a fresh challenge each time it is opened, the file, the instructions, the upload.

    Opened again after sending: how the attempt is going (asking KSeF), never a new file."""
    link, client, refusal = _open(token, used=True)
    if refusal is not None:
        return refusal
    link = links.settle_use(get_store(), link, at=now(), ip=client_ip())
    if link.used_at is not None:
        return _followed(token, link, client, links.follow(get_store(), link, ksef=ksef_client(), at=now(),
                                                           ip=client_ip()))
    try:
        attempt = signed_xml.issue_request(get_store(), client_id=client.id, method=link.method, ksef=ksef_client(),
                                           actor=link.actor, at=now(), ip=client_ip())
    except PortalError as exc:
        return render_page("links/page.html", 503, **_context(token, link, client, error=message(exc)))
    with get_store().write() as db:
        links.attach(db, link.id, attempt.id)
        audit.record(db, actor=link.actor, action="link.open", object_type="client", object_id=client.id,
                     details={"link_id": link.id, "request_id": attempt.id}, ip=client_ip(), at=now())
    link = links.get_link(get_db(), link.id)
    return render_page("links/page.html", **_context(token, link, client))


@bp.route("/podpis/<token>/<name>.xml")
def download(token: str, name: str) -> Any:
    """The unsigned file, byte for byte, named after the client's NIP and the date."""
    link, client, refusal = _open(token)
    if refusal is not None:
        return refusal
    if not link.auth_request_id:
        abort(404)
    attempt = get_request(get_db(), link.auth_request_id)
    response = current_app.response_class(attempt.unsigned_xml, mimetype="application/xml")
    response.headers["Content-Disposition"] = f"attachment; filename=AuthTokenRequest-{client.nip}-{now():%Y%m%d}.xml"
    return response


@bp.route("/podpis/<token>/upload", methods=["POST"])
def upload(token: str) -> Any:
    """The same check as the office's wizard; nothing is sent before the client confirms."""
    link, client, refusal = _open(token)
    if refusal is not None:
        return refusal
    uploaded = request.files.get("signed")
    data = uploaded.read(xades.MAX_BYTES + 1) if uploaded else b""
    if not data or not link.auth_request_id:
        return render_page("links/page.html", 422, **_context(token, link, client,
                                                              upload_error=_("Choose the signed file first.")))
    try:
        result = signed_xml.check_upload(get_store(), request_id=link.auth_request_id, client_id=client.id,
                                         data=data, actor=link.actor, at=now(), ip=client_ip())
    except PortalError as exc:
        return render_page("links/page.html", 422, **_context(token, link, client, upload_error=message(exc)))
    warning = links.signer_warning(result.signer.as_dict() if result.signer else None, client.nip)
    return render_page("links/page.html", 200 if result.ok else 422,
                       **_context(token, link, client, result=result,
                                  warning=message(warning) if warning else None))


@bp.route("/podpis/<token>/send", methods=["POST"])
def send(token: str) -> Any:
    """Send the checked file to KSeF; once KSeF accepted it, the link is used up."""
    link, client, refusal = _open(token)
    if refusal is not None:
        return refusal
    try:
        signed_xml.submit(get_store(), request_id=link.auth_request_id, client_id=client.id, ksef=ksef_client(),
                          actor=link.actor, at=now(), ip=client_ip())
    except PortalError as exc:
        return render_page("links/page.html", 422, **_context(token, link, client, send_error=message(exc)))
    with get_store().write() as db:
        links.mark_used(db, link.id, at=now())
        audit.record(db, actor=link.actor, action="link.used", object_type="client", object_id=client.id,
                     details={"link_id": link.id, "request_id": link.auth_request_id}, ip=client_ip(), at=now())
    link = links.get_link(get_db(), link.id)
    return _followed(token, link, client, links.attempt_state(get_db(), link))


@bp.route("/podpis/<token>/status")
def status(token: str) -> Any:
    """How the sent attempt is going: the page polls it; KSeF is asked until it answered on the login, then
    the answer comes with 286 and no trigger (the polling stops). Shows only this link's attempt."""
    link, client, refusal = _open(token, used=True, budget="status")
    if refusal is not None:
        return refusal
    followed = links.follow(get_store(), link, ksef=ksef_client(), at=now(), ip=client_ip())
    if htmx and not htmx.history_restore_request:
        response = render_page("links/_status.html", STOP_POLLING if followed.final else 200, token=token,
                               followed=followed, poll_seconds=POLL_SECONDS)
    else:
        response = _followed(token, link, client, followed)
    response.headers.add("Vary", "HX-Request")
    return response


def _followed(token: str, link: links.SigningLink, client: clients.Client, followed: links.Followed) -> Any:
    """The page after sending: what was sent for whom, and the attempt's status (polling until KSeF answered)."""
    return render_page("links/sent.html", token=token, link=link, client=client, followed=followed,
                       poll_seconds=POLL_SECONDS)


# -- the office's side -------------------------------------------------------------------------------------


@bp.route("/clients/<int:client_id>/links", methods=["POST"])
@login_required
def create(client_id: int) -> Any:
    """A new one-time link for the client (shown once, to copy)."""
    method = request.form.get("method", "grant")
    try:
        with get_store().write() as db:
            link, url = links.create_link(db, client_id=client_id, method=method, actor=g.user.username,
                                          ip=client_ip(), at=now())
    except PortalError as exc:
        return render_page("links/_created.html", 422, error=message(exc))
    client = clients.get_client(get_db(), client_id)
    return render_page("links/_created.html", link=link, url=url, client=client,
                       token=url.rsplit("/podpis/", 1)[1], recipient=client.email)


@bp.route("/clients/<int:client_id>/links/email", methods=["POST"])
@login_required
def email(client_id: int) -> Any:
    """"Wyślij e-mailem": the link just made goes to the client's address through the office's SMTP server.

    The form carries the link's secret (shown on the same page); only a still usable link of this client is
    sent, always to the portal's own address for it. Composed here: the link is :mod:`klucznik.authorize`'s,
    the SMTP sending :mod:`klucznik.status`'s (siblings that do not import each other)."""
    token = request.form.get("token", "")[:100]
    recipient = request.form.get("recipient", "")[:300].strip()
    client = clients.get_client(get_db(), client_id)
    link = None
    try:
        link, url = links.link_to_send(get_db(), client_id=client_id, token=token, at=now())
        settings = links.mail_settings(get_db(), recipient)
        reminders.send(settings, links.invitation(client=client, office_name=office.get_office(get_db()).name,
                                                  url=url, expires_at=link.expires_at, settings=settings,
                                                  at=now()))
        error = None
    except PortalError as exc:
        error, code = message(exc), exc.code
    with get_store().write() as db:  # every try, also with a dead or foreign link (link_id null)
        audit.record(db, actor=g.user.username, action="link.email", object_type="client", object_id=client_id,
                     details={"link_id": link.id if link else None, "recipient": recipient, "ok": error is None,
                              **({"error": code} if error else {})}, ip=client_ip(), at=now())
    return render_page("links/_email.html", 422 if error else 200, client=client, token=token,
                       recipient=recipient, error=error, sent=error is None)


@bp.route("/office/links", methods=["POST"])
@admin_required
def settings() -> Any:
    """Turn signing links on or off and set the portal's public HTTPS address."""
    try:
        with get_store().write() as db:
            links.save_settings(db, enabled=request.form.get("enabled") == "1",
                                public_url=request.form.get("public_url", ""), actor=g.user.username,
                                ip=client_ip(), at=now())
    except PortalError as exc:
        return render_page("links/_settings.html", 422, settings=links.get_settings(get_db()), error=message(exc))
    return redirect_to(url_for("office.index") + "#links")
