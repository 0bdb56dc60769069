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
from blueprints.forms import ClientForm
from blueprints.forms import EmptyForm
from blueprints.htmx import htmx_partial_or_page
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from blueprints.urls import page_arg
from klucznik.errors import FieldErrors
from klucznik.errors import NotFound
from klucznik.records import clients
from klucznik.records import credentials

bp = Blueprint("clients", __name__)


@bp.route("/")
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
    """Add a client."""
    form = ClientForm()
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
    return render_page("clients/view.html", client=client, credentials=credentials.summaries(db, client_id),
                       form=EmptyForm())


@bp.route("/clients/<int:client_id>/edit", methods=["GET", "POST"])
@login_required
def edit(client_id: int) -> Any:
    """Change a client's data."""
    client = clients.get_client(get_db(), client_id)
    # The stored values only fill the page: a POST is read as sent (a POST without the fields is refused,
    # not silently saved again with the old values).
    form = ClientForm(data={"nip": client.nip_formatted, "name": client.name, "email": client.email,
                            "notes": client.notes} if request.method == "GET" else None)
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            values = clients.validate(**_form_values(form))
            with get_store().write() as db:
                clients.update_client(db, client_id, values, actor=g.user.username, ip=client_ip(), at=now())
        except FieldErrors as exc:
            errors = {name: message(err) for name, err in exc.errors.items()}
        else:
            return redirect_to(url_for("clients.view", client_id=client_id))
    return render_page("clients/form.html", 422 if errors else 200, form=form, errors=errors, client=client)


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
