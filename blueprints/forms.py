"""Flask-WTF forms: CSRF, field parsing and size limits. The rules themselves live in the domain."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms import PasswordField
from wtforms import SelectField
from wtforms import StringField
from wtforms import TextAreaField


class SetupForm(FlaskForm):
    username = StringField()
    password = PasswordField()
    password2 = PasswordField()


class LoginForm(FlaskForm):
    username = StringField()
    password = PasswordField()


class RecoverForm(FlaskForm):
    username = StringField()
    code = StringField()
    new_password = PasswordField()
    new_password2 = PasswordField()


class PasswordForm(FlaskForm):
    current_password = PasswordField()
    new_password = PasswordField()
    new_password2 = PasswordField()


class ConfirmForm(FlaskForm):
    confirmed = BooleanField()


class ClientForm(FlaskForm):
    nip = StringField()
    name = StringField()
    email = StringField()
    notes = TextAreaField()


class AuthorizeForm(FlaskForm):
    """"Dodaj autoryzację": a NIP, and the company name when the NIP is new."""

    nip = StringField()
    name = StringField()


class UserForm(FlaskForm):
    username = StringField()
    role = SelectField(choices=["staff", "admin"], validate_choice=False)  # the domain says what is wrong
    password = PasswordField()


class OfficeForm(FlaskForm):
    name = StringField()
    nip = StringField()
    # Plain values, not (value, label) tuples: tuples are deprecated in wtforms 3.3 (a DeprecationWarning,
    # which the test suite turns into an error, made /office and /admin/users answer 500 under pytest).
    # validate_choice=False: an unknown value reaches the domain, which answers with a plain message
    # (wtforms alone would fail the form silently, with no message on the page).
    ksef_environment = SelectField(choices=["test", "demo", "prod", "sandbox"], validate_choice=False)
    sandbox_url = StringField()


class EmptyForm(FlaskForm):
    """Only the CSRF token (buttons that change state)."""
