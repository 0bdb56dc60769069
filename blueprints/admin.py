"""Administration: users (add, remove) and the audit log with filters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import g
from flask import request
from flask import url_for

from blueprints import audit_view
from blueprints.auth import admin_required
from blueprints.context import client_ip
from blueprints.context import close_db
from blueprints.context import get_db
from blueprints.context import get_sessions
from blueprints.context import get_store
from blueprints.context import message
from blueprints.context import now
from blueprints.forms import EmptyForm
from blueprints.forms import UserForm
from blueprints.htmx import htmx_partial_or_page
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from blueprints.urls import page_arg
from klucznik.errors import NotFound
from klucznik.errors import StorageError
from klucznik.errors import ValidationError
from klucznik.records import audit
from klucznik.records import users

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _users_page(form: UserForm, errors: dict[str, str], status: int = 200, created: str | None = None,
                initial_password: str | None = None, **extra: Any) -> Any:
    return render_page("admin/users.html", status, users=users.list_users(get_db()), form=form, errors=errors,
                       created=created, initial_password=initial_password, remove_form=EmptyForm(), **extra)


@bp.route("/users", methods=["GET", "POST"])
@admin_required
def user_list() -> Any:
    """List users; POST adds one with an initial password shown once (they change it at first login)."""
    form = UserForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        password = form.password.data or users.one_time_password()
        try:
            user = users.create_user(get_store(), username=form.username.data or "", role=form.role.data or "staff",
                                     password=password, actor=g.user.username, ip=client_ip(), at=now())
        except ValidationError as exc:
            errors[exc.field or "username"] = message(exc)
        else:
            return _users_page(UserForm(formdata=None), {}, created=user.username,
                               initial_password=None if form.password.data else password)
    return _users_page(form, errors, 422 if errors else 200)


@bp.route("/users/<username>/remove", methods=["POST"])
@admin_required
def user_remove(username: str) -> Any:
    """Remove a user: their key slot is deleted, the database key rotated, and their sessions end."""
    form = EmptyForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            users.remove_user(get_store(), username=username, actor=g.user.username, ip=client_ip(), at=now())
        except (ValidationError, NotFound, StorageError) as exc:
            errors["remove"] = message(exc)
        else:
            get_sessions().end_user(username)
            return redirect_to(url_for("admin.user_list"))
    return _users_page(UserForm(formdata=None), errors, 422 if errors else 400)


@bp.route("/audit")
@admin_required
def audit_log() -> Any:
    """The audit log, newest first, filtered by action, user and dates."""
    args = request.args
    page = page_arg()
    filters = {"action": args.get("action", "")[:64], "actor": args.get("actor", "")[:64],
               "since": args.get("since", "")[:10], "until": args.get("until", "")[:10]}
    since, until = audit_view.day_bounds(filters["since"], filters["until"])  # the office's days, in UTC
    result = audit.query(get_db(), action=filters["action"], actor=filters["actor"], since=since,
                         until=until, page=page)
    return htmx_partial_or_page("admin/audit.html", "admin/_audit_rows.html", result=result, filters=filters,
                                rows=audit_view.present(get_db(), result.entries), words=audit_view.action_words(),
                                actions=audit.actions(get_db()), actors=[u.username for u in users.list_users(get_db())])


@bp.route("/users/<username>/reset-password", methods=["POST"])
@admin_required
def user_reset_password(username: str) -> Any:
    """Give another user a one-time password (shown once; they must change it at the next login)."""
    form = EmptyForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        password = users.one_time_password()
        try:
            users.reset_password_by_admin(get_store(), username=username, password=password, actor=g.user.username,
                                          ip=client_ip(), at=now())
        except (ValidationError, NotFound, StorageError) as exc:
            errors["remove"] = message(exc)
        else:
            get_sessions().end_user(username)
            close_db()  # this request's connection was opened under the key that was just replaced
            return _users_page(UserForm(formdata=None), {}, reset_for=username, reset_password=password)
    return _users_page(UserForm(formdata=None), errors, 422 if errors else 400)


@bp.route("/users/<username>/role", methods=["POST"])
@admin_required
def user_role(username: str) -> Any:
    """Change a user's role (the office never ends up without an administrator)."""
    form = EmptyForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            users.set_role(get_store(), username=username, role=request.form.get("role", "")[:16],
                           actor=g.user.username, ip=client_ip(), at=now())
        except (ValidationError, NotFound) as exc:
            errors["remove"] = message(exc)
        else:
            return redirect_to(url_for("admin.user_list"))
    return _users_page(UserForm(formdata=None), errors, 422 if errors else 400)
