"""Client companies: list with live search and pages, add, edit, archive."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import g
from flask import request
from flask import url_for

from blueprints.auth import login_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import message
from blueprints.context import now
from blueprints.forms import AuthorizeForm
from blueprints.forms import ClientForm
from blueprints.forms import EmptyForm
from blueprints.htmx import htmx_partial_or_page
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from blueprints.urls import page_arg
from klucznik import ids
from klucznik.errors import FieldErrors
from klucznik.errors import NotFound
from klucznik.errors import ValidationError
from klucznik.records import clients
from klucznik.records import credentials

bp = Blueprint("clients", __name__)


@bp.route("/clients")
@login_required
def index() -> Any:
    """The list; an htmx request (live search, paging) gets only the rows."""
    query = request.args.get("q", "")[:100]
    archived = request.args.get("archived") == "1"
    result = clients.search(get_db(), query, archived=archived, page=page_arg())
    return htmx_partial_or_page("clients/index.html", "clients/_results.html", result=result, q=query,
                                archived=archived)


#: Views that change a client or its KSeF connection: refused (409) while the client is archived.
READ_ONLY_WHEN_ARCHIVED = ("wizard.", "certificates.", "clients.edit")


def refuse_archived() -> None:
    """``before_request`` (after the gate): an archived client is read-only until it is restored."""
    client_id = (request.view_args or {}).get("client_id")
    if client_id is None or g.get("user") is None or not (request.endpoint or "").startswith(READ_ONLY_WHEN_ARCHIVED):
        return
    try:
        client = clients.get_client(get_db(), client_id)
    except NotFound:
        return  # the view answers its own 404
    clients.require_active(client)


def _form_values(form: ClientForm) -> dict[str, str]:
    return {"nip": form.nip.data or "", "name": form.name.data or "", "email": form.email.data or "",
            "notes": form.notes.data or ""}


@bp.route("/clients/new", methods=["GET", "POST"])
@login_required
def create() -> Any:
    """Add a client (``?nip=`` fills in the NIP, e.g. from a refused NIP change)."""
    form = ClientForm(data={"nip": request.args.get("nip", "")[:32]})
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            values = clients.validate(**_form_values(form))
            with get_store().write() as db:
                client = clients.create_client(db, values, actor=g.user.username, ip=client_ip(), at=now())
        except FieldErrors as exc:
            errors = {name: message(err) for name, err in exc.errors.items()}
        else:
            return redirect_to(url_for("clients.view", client_id=client.id))
    return render_page("clients/form.html", 422 if errors else 200, form=form, errors=errors, client=None)


@bp.route("/clients/<int:client_id>")
@login_required
def view(client_id: int) -> Any:
    """One client: data, how KSeF access is authorised, credentials."""
    db = get_db()
    client = clients.get_client(db, client_id)
    summaries = [{**row, "old_nip_formatted": ids.format_nip(row["old_nip"]) if row["old_nip"] else None}
                 for row in credentials.summaries(db, client_id)]
    return render_page("clients/view.html", client=client, credentials=summaries, form=EmptyForm(),
                       old_nips=[ids.format_nip(nip) for nip in clients.old_nips(db, client_id)])


@bp.route("/clients/<int:client_id>/edit", methods=["GET", "POST"])
@login_required
def edit(client_id: int) -> Any:
    """Change a client's data; a new NIP for a connected client asks first (409 and a confirmation form)."""
    client = clients.get_client(get_db(), client_id)
    # The stored values only fill the page: a POST is read as sent (a POST without the fields is refused,
    # not silently saved again with the old values).
    form = ClientForm(data={"nip": client.nip_formatted, "name": client.name, "email": client.email,
                            "notes": client.notes} if request.method == "GET" else None)
    errors: dict[str, str] = {}
    confirm = None
    if form.validate_on_submit():
        try:
            values = clients.validate(**_form_values(form))
            with get_store().write() as db:
                clients.update_client(db, client_id, values, actor=g.user.username, ip=client_ip(), at=now(),
                                      confirm_nip_change=request.form.get("confirm_nip_change") or None)
        except FieldErrors as exc:
            errors = {name: message(err) for name, err in exc.errors.items()}
        except clients.NipChangeNeedsConfirmation as exc:
            confirm = {"message": message(exc), "new_nip": exc.new_nip, "new_nip_formatted": ids.format_nip(exc.new_nip),
                       "values": _form_values(form)}
        else:
            return redirect_to(url_for("clients.view", client_id=client_id))
    status = 409 if confirm else 422 if errors else 200
    return render_page("clients/form.html", status, form=form, errors=errors, client=client, confirm=confirm)


@bp.route("/clients/<int:client_id>/archive", methods=["POST"])
@login_required
def archive(client_id: int) -> Any:
    """Archive (or, with ``restore=1``, bring back) a client; nothing is deleted."""
    form = EmptyForm()
    if form.validate_on_submit():
        with get_store().write() as db:
            clients.set_archived(db, client_id, request.form.get("restore") != "1", actor=g.user.username,
                                 ip=client_ip(), at=now())
    return redirect_to(url_for("clients.view", client_id=client_id))


@bp.route("/clients/authorize", methods=["GET", "POST"])
@login_required
def authorize() -> Any:
    """"Dodaj autoryzację": start from a NIP; a known client goes to its wizard, a new one is created first."""
    form = AuthorizeForm()
    errors: dict[str, str] = {}
    new_client = False
    existing = None
    if form.validate_on_submit():
        try:
            nip = ids.normalize_nip(form.nip.data or "")
        except ValidationError as exc:
            errors["nip"] = message(exc)
        else:
            existing = clients.find_by_nip(get_db(), nip)
            if existing is not None and not existing.archived_at:
                return redirect_to(url_for("wizard.start", client_id=existing.id))
            if existing is None:
                new_client = True
                if (form.name.data or "").strip():
                    try:
                        values = clients.validate(nip=nip, name=form.name.data or "")
                        with get_store().write() as db:
                            client = clients.create_client(db, values, actor=g.user.username, ip=client_ip(),
                                                           at=now())
                    except FieldErrors as exc:
                        errors = {name: message(err) for name, err in exc.errors.items()}
                    else:
                        return redirect_to(url_for("wizard.start", client_id=client.id))
    status = 422 if errors or (existing is not None) else 200
    return render_page("clients/authorize.html", status, form=form, errors=errors, new_client=new_client,
                       archived=existing)
