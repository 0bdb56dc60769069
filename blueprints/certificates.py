"""Method 3: upload a client's own KSeF certificates, with every field checked the moment it is filled.

Each input of the form posts the *whole* form (htmx includes the enclosing form; the files are sent
again each time, never kept on the server before the final submit) to :func:`check`, which runs the
same domain check as the final submit and answers the status of the field that changed, plus the
statuses of every other field and the submit button as out-of-band swaps. Only status elements are
swapped, never the inputs, so chosen files stay chosen and passwords are never sent back.
The final submit (:func:`upload`) checks everything again and stores both pairs in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import Blueprint
from flask import abort
from flask import g
from flask import request
from flask import url_for
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints.auth import login_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import lang
from blueprints.context import now
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from klucznik import certs as certificates
from klucznik.authorize import upload as method3
from klucznik.certs.model import PairCheck
from klucznik.ids import format_nip
from klucznik.records import clients
from klucznik.records import credentials

bp = Blueprint("certificates", __name__)

FIELDS = ("crt", "key", "password")
TARGETS = tuple(f"{slot}-{name}" for slot in certificates.SLOTS for name in FIELDS) + ("nip",)


@dataclass(frozen=True)
class UploadForm:
    """What one post of the form carried: the two sections, the NIP, and which fields were filled."""

    online: certificates.PairInput
    offline: certificates.PairInput
    nip: str
    filled: frozenset[str]


@dataclass
class FieldStatus:
    """What to show under one field: a state, messages by severity, and a summary when it is good."""

    target: str
    state: str = "empty"
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: list[tuple[str, str]] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)


@bp.route("/clients/<int:client_id>/certificates/upload", methods=["GET", "POST"])
@login_required
def upload(client_id: int) -> Any:
    """GET: the form; POST ("Wgraj pliki"): check everything again and store both pairs or nothing."""
    client = clients.get_client(get_db(), client_id)
    stored = credentials.active_slots(get_db(), client_id)
    if request.method == "GET":
        form = UploadForm(certificates.PairInput(), certificates.PairInput(), client.nip_formatted, frozenset({"nip"}))
        result = _evaluate(form, client, stored)
        return render_page(
            "certificates/upload.html",
            client=client,
            nip=client.nip_formatted,
            statuses=_blank_statuses(),
            ready=False,
            failed=False,
            missing=_missing(form, result, _blank_statuses()),
            stored=stored,
        )
    form = _read_form()
    result = _evaluate(form, client, stored)
    if not result.ok:
        # The file and password inputs come back empty: say what was wrong, never show green over them.
        statuses = _after_refusal(_statuses(form, result))
        return render_page(
            "certificates/upload.html",
            422,
            client=client,
            nip=form.nip,
            statuses=statuses,
            ready=False,
            failed=True,
            missing=_missing(form, result, statuses),
            stored=stored,
        )
    with get_store().write() as db:
        method3.save_uploaded_set(
            db, client_id=client_id, result=result, actor=g.user.username, ip=client_ip(), at=now()
        )
    return redirect_to(url_for("clients.view", client_id=client_id))


@bp.route("/clients/<int:client_id>/certificates/check/<target>", methods=["POST"])
@login_required
def check(client_id: int, target: str) -> Any:
    """Inline check: the status of ``target``, every other status and the button (out of band)."""
    if target not in TARGETS:
        abort(404)
    client = clients.get_client(get_db(), client_id)
    stored = credentials.active_slots(get_db(), client_id)
    form = _read_form()
    result = _evaluate(form, client, stored)
    statuses = _statuses(form, result)
    status = 422 if statuses[target].state == "error" else 200
    return render_page(
        "certificates/_check.html",
        status,
        target=target,
        statuses=statuses,
        ready=result.ok,
        missing=_missing(form, result, statuses),
        stored=stored,
    )


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> Any:
    """More than the portal accepts at once: said at the field that was checked (or on the page), not in a
    banner that would stay after later files pass."""
    client = clients.get_client(get_db(), int((request.view_args or {}).get("client_id", 0)))
    stored = credentials.active_slots(get_db(), client.id)
    statuses = _blank_statuses()
    text = _("This file is too large: the portal accepts at most 2 MB at once. Certificates and keys from KSeF "
             "are a few kilobytes: check that you chose the right file.")
    target = (request.view_args or {}).get("target")
    empty = Missing(to_fill=[], to_fix=[], offline_later=False)
    if request.endpoint == "certificates.check" and target in TARGETS:
        statuses[target].errors.append(text)
        statuses[target].codes.append("request_too_large")
        statuses[target].state = "error"
        missing = Missing(to_fill=[], to_fix=[_field_labels()[target]], offline_later=False)
        return render_page("certificates/_check.html", 422, target=target, statuses=statuses, ready=False,
                           missing=missing, stored=stored)
    return render_page("certificates/upload.html", 413, client=client, nip=client.nip_formatted,
                       statuses=statuses, ready=False, failed=True, missing=empty, stored=stored, too_large=text)


# -- parsing ------------------------------------------------------------------------------------------------


def _read_form() -> UploadForm:
    """The posted files (at most the size limit + 1 byte each), passwords and NIP; duplicates are refused."""
    filled: set[str] = set()
    pairs = {}
    for slot in certificates.SLOTS:
        crt = _read_file(f"{slot}_crt")
        key = _read_file(f"{slot}_key")
        password = _single_value(f"{slot}_password")
        for name, value in (("crt", crt), ("key", key), ("password", password)):
            if value is not None and value != "":
                filled.add(f"{slot}-{name}")
        pairs[slot] = certificates.PairInput(crt=crt, key=key, password=password or None)
    nip = _single_value("nip")
    if nip.strip():
        filled.add("nip")
    return UploadForm(pairs["online"], pairs["offline"], nip, frozenset(filled))


def _read_file(name: str) -> bytes | None:
    """The bytes of file field ``name`` (``None`` when no file was chosen, ``b""`` for an empty file)."""
    uploads = request.files.getlist(name)
    if len(uploads) > 1:
        abort(400)
    if not uploads or not uploads[0].filename:
        return None
    return uploads[0].stream.read(certificates.MAX_FILE_SIZE + 1)


def _single_value(name: str) -> str:
    """A text field sent at most once."""
    values = request.form.getlist(name)
    if len(values) > 1:
        abort(400)
    return values[0] if values else ""


def _evaluate(form: UploadForm, client: clients.Client, stored: tuple[str, ...]) -> certificates.SetCheck:
    """The domain's check of the whole form (the same for inline checks and the final submit).

    The offline pair may follow later; the online pair may be left out when the client already has one.
    """
    optional = ("offline", "online") if "online" in stored else ("offline",)
    return certificates.check_set(
        online=form.online, offline=form.offline, nip=form.nip, at=now(), client_nip=client.nip, optional=optional
    )


def _field_labels() -> dict[str, str]:
    """How the missing list names each field, in the page's language."""
    return {
        "online-crt": _("the authentication certificate (.crt)"),
        "online-key": _("the authentication certificate's private key (.key)"),
        "online-password": _("the password of the authentication key"),
        "offline-crt": _("the offline certificate (.crt)"),
        "offline-key": _("the offline certificate's private key (.key)"),
        "offline-password": _("the password of the offline key"),
        "nip": _("the company NIP"),
    }


@dataclass(frozen=True)
class Missing:
    """What keeps "Wgraj pliki" disabled: fields still to fill and fields to correct."""

    to_fill: list[str]
    to_fix: list[str]
    offline_later: bool


def _missing(form: UploadForm, result: certificates.SetCheck, statuses: dict[str, FieldStatus]) -> Missing:
    """The fields still to fill or to correct before the upload can be stored (empty when ready)."""
    to_fill: list[str] = []
    to_fix: list[str] = []
    labels = _field_labels()
    for target in TARGETS:
        slot = target.split("-")[0]
        if slot in result.absent:
            continue
        label = labels[target]
        if "password_required" in statuses[target].codes:
            to_fill.append(label)
        elif statuses[target].state == "error":
            to_fix.append(label)
        elif target not in form.filled and not target.endswith("password"):
            to_fill.append(label)
    if result.ok:
        to_fill, to_fix = [], []
    return Missing(to_fill=to_fill, to_fix=to_fix, offline_later="offline" in result.absent)


def _after_refusal(statuses: dict[str, FieldStatus]) -> dict[str, FieldStatus]:
    """After a refused submit the file and password inputs come back empty: keep only the errors and
    warnings (what was wrong with what was sent), never a green verdict over a field that is now empty."""
    for target, status in statuses.items():
        if target == "nip":
            continue
        status.summary = []
        status.notes = []
        status.state = _state(status)
    return statuses


# -- statuses -----------------------------------------------------------------------------------------------


def _blank_statuses() -> dict[str, FieldStatus]:
    """Every field without a verdict yet."""
    return {target: FieldStatus(target) for target in TARGETS}


def _statuses(form: UploadForm, result: certificates.SetCheck) -> dict[str, FieldStatus]:
    """Turn the domain's verdict into one status per field; fields not filled yet stay neutral."""
    statuses = _blank_statuses()
    en = lang() == "en"
    for problem in result.all_problems:
        target = "nip" if problem.field == "nip" else f"{problem.slot}-{problem.field}"
        if problem.code == "empty_file" and target not in form.filled:
            continue
        text = problem.message_en if en else problem.message_pl
        statuses[target].codes.append(problem.code)
        (statuses[target].errors if problem.is_error else statuses[target].warnings).append(text)
    for slot in certificates.SLOTS:
        for note in result.pair(slot).notes:
            statuses[f"{note.slot or slot}-{note.field}"].notes.append(
                note.message_en if en else note.message_pl
            )
    for slot in certificates.SLOTS:
        _add_summaries(statuses, result.pair(slot), form)
    if result.nip is not None and not statuses["nip"].errors:
        statuses["nip"].summary.append((_("NIP"), format_nip(result.nip)))
    for status in statuses.values():
        status.state = _state(status)
    return statuses


def _add_summaries(statuses: dict[str, FieldStatus], pair: PairCheck, form: UploadForm) -> None:
    """The green summaries: who the certificate identifies, its type, serial, validity; the key; the password."""
    slot = pair.slot
    info = pair.certificate
    if info is not None and not statuses[f"{slot}-crt"].errors:
        statuses[f"{slot}-crt"].summary = _certificate_summary(info)
    key = pair.key
    if key is not None and not statuses[f"{slot}-key"].errors:
        text = (
            _("%(algorithm)s key, password-protected", algorithm=key.algorithm)
            if key.encrypted
            else _("%(algorithm)s key without a password", algorithm=key.algorithm)
        )
        matched = info is not None
        statuses[f"{slot}-key"].summary = [(_("Key"), text)] + (
            [(_("Pair"), _("the key belongs to this certificate"))] if matched else []
        )
        if key.encrypted and not statuses[f"{slot}-password"].errors:
            statuses[f"{slot}-password"].summary = [(_("Password"), _("correct: the key opens"))]
    elif f"{slot}-key" in form.filled and {"password_required", "wrong_password"} & set(
        statuses[f"{slot}-password"].codes
    ):
        statuses[f"{slot}-key"].summary = [(_("Key"), _("password-protected: enter its password below"))]


def _certificate_summary(info: certificates.CertificateInfo) -> list[tuple[str, str]]:
    """Label/value lines describing a certificate for an accountant."""
    who = info.organization or info.common_name or info.subject
    if info.identity is not None:
        number = format_nip(info.identity.value) if info.identity.type == "NIP" else info.identity.shown
        who = f"{who} ({info.identity.type} {number})"
    kinds = {"Authentication": _("Authentication (online)"), "Offline": _("Offline (issuer verification)")}
    return [
        (_("Identifies"), who),
        (_("KSeF type"), kinds.get(info.ksef_type or "", _("none"))),
        (_("Serial number"), info.serial),
        (_("Valid until"), info.not_after.strftime("%Y-%m-%d")),
    ]


def _state(status: FieldStatus) -> str:
    """error > warning > ok (something good to show) > empty (nothing to say yet)."""
    if status.errors:
        return "error"
    if status.warnings:
        return "warning"
    if status.summary or status.notes:
        return "ok"
    return "empty"
