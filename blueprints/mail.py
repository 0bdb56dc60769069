"""The office's e-mail settings for expiry reminders (SMTP) and the test button."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import g
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms import SelectField
from wtforms import StringField

from blueprints.auth import admin_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import message
from blueprints.context import now
from blueprints.htmx import render_page
from klucznik.errors import FieldErrors
from klucznik.errors import PortalError
from klucznik.records import audit
from klucznik.records import smtp
from klucznik.status import reminders

bp = Blueprint("mail", __name__)


class SmtpForm(FlaskForm):
    host = StringField()
    port = StringField()
    # plain values and validate_choice=False, like OfficeForm: the domain answers an unknown value in words
    security = SelectField(choices=list(smtp.SECURITY), validate_choice=False)
    username = StringField()
    password = PasswordField()
    sender = StringField()
    recipients = StringField()


@bp.route("/office/email", methods=["GET", "POST"])
@admin_required
def settings() -> Any:
    """Show and change the SMTP settings (the password is never shown; empty keeps it)."""
    current = smtp.get_smtp(get_db())
    form = SmtpForm(data={"host": current.host, "port": str(current.port), "security": current.security,
                          "username": current.username, "sender": current.sender,
                          "recipients": ", ".join(current.recipients)})
    errors: dict[str, str] = {}
    saved = False
    if form.validate_on_submit():
        try:
            values = smtp.validate(host=form.host.data or "", port=form.port.data or "",
                                   security=form.security.data or "", username=form.username.data or "",
                                   password=form.password.data or "", sender=form.sender.data or "",
                                   recipients=form.recipients.data or "", stored=current)
            with get_store().write() as db:
                smtp.save_smtp(db, values, actor=g.user.username, ip=client_ip(), at=now())
            current, saved = values, True
        except FieldErrors as exc:
            errors = {name: message(err) for name, err in exc.errors.items()}
    return render_page("office/email.html", 422 if errors else 200, form=form, errors=errors, saved=saved,
                       has_password=bool(current.password), result=None)


@bp.route("/office/email/test", methods=["POST"])
@admin_required
def send_test() -> Any:
    """Send one test e-mail with the stored settings and say plainly whether it worked."""
    current = smtp.get_smtp(get_db())
    form = SmtpForm(data={"host": current.host, "port": str(current.port), "security": current.security,
                          "username": current.username, "sender": current.sender,
                          "recipients": ", ".join(current.recipients)})
    result: dict[str, Any] = {}
    if form.validate_on_submit():
        try:
            reminders.send_test(current, at=now())
            result = {"ok": True}
        except PortalError as exc:
            result = {"ok": False, "message": message(exc)}
        with get_store().write() as db:
            audit.record(db, actor=g.user.username, action="office.smtp_test", object_type="office",
                         details={"ok": result["ok"]}, ip=client_ip(), at=now())
    return render_page("office/email.html", 200 if result.get("ok") else 422, form=form, errors={}, saved=False,
                       has_password=bool(current.password), result=result)
