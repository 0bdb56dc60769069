"""The office profile: name, NIP and the KSeF environment."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import g

from blueprints.auth import admin_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import message
from blueprints.context import now
from blueprints.forms import OfficeForm
from blueprints.htmx import render_page
from klucznik.errors import FieldErrors
from klucznik.records import office

bp = Blueprint("office", __name__)


@bp.route("/office", methods=["GET", "POST"])
@admin_required
def index() -> Any:
    """Show and change the office profile."""
    current = office.get_office(get_db())
    form = OfficeForm(data={"name": current.name, "nip": current.nip_formatted,
                            "ksef_environment": current.ksef_environment, "sandbox_url": current.sandbox_url})
    errors: dict[str, str] = {}
    saved = False
    if form.validate_on_submit():
        try:
            profile = office.validate(name=form.name.data or "", nip=form.nip.data or "",
                                      ksef_environment=form.ksef_environment.data or "",
                                      sandbox_url=form.sandbox_url.data or "")
            with get_store().write() as db:
                office.save_office(db, profile, actor=g.user.username, ip=client_ip(), at=now())
            saved = True
        except FieldErrors as exc:
            errors = {name: message(err) for name, err in exc.errors.items()}
    return render_page("office/index.html", 422 if errors else 200, form=form, errors=errors, saved=saved)
