"""Setup of a new instance, login (which unseals), logout, password change and reset with the recovery code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import g
from flask import request
from flask import session
from flask import url_for
from flask_babel import gettext as _

from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_sessions
from blueprints.context import get_store
from blueprints.context import message
from blueprints.context import now
from blueprints.forms import ConfirmForm
from blueprints.forms import LoginForm
from blueprints.forms import PasswordForm
from blueprints.forms import RecoverForm
from blueprints.forms import SetupForm
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from blueprints.urls import safe_next
from klucznik.clock import iso
from klucznik.errors import NotFound
from klucznik.errors import PortalError
from klucznik.errors import ValidationError
from klucznik.errors import WrongCredentials
from klucznik.instance.keyring import validate_password
from klucznik.instance.keyring import validate_username
from klucznik.records import audit
from klucznik.records import users
from klucznik.text import Text
from klucznik.throttle import FailedLogins
from klucznik.throttle import FailedLoginSummary
from klucznik.throttle import LoginThrottle

bp = Blueprint("auth", __name__)
#: Longer values are no one's login or password (the rules: 2–32 characters, at most 1024).
MAX_LOGIN_NAME = 64
MAX_PASSWORD = 1024


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The gate already requires a session; this makes the requirement explicit on a view."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            return redirect_to(url_for("auth.login"))
        return view(*args, **kwargs)

    return wrapped


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Only administrators (403 for staff)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            return redirect_to(url_for("auth.login"))
        if not g.user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def _throttle() -> LoginThrottle:
    ext = current_app.extensions
    if "klucznik.throttle" not in ext:
        config = current_app.config
        ext["klucznik.throttle"] = LoginThrottle(config["KLUCZNIK_LOGIN_ATTEMPTS"], config["KLUCZNIK_LOGIN_WINDOW"],
                                                 per_address=config["KLUCZNIK_LOGIN_ATTEMPTS_PER_ADDRESS"])
    return ext["klucznik.throttle"]


def _failed_logins() -> FailedLogins:
    """Failed logins wait here (memory) and are written as summaries (see :mod:`klucznik.throttle`)."""
    ext = current_app.extensions
    if "klucznik.failed_logins" not in ext:
        ext["klucznik.failed_logins"] = FailedLogins(current_app.config["KLUCZNIK_FAILED_LOGIN_SUMMARY_SECONDS"])
    return ext["klucznik.failed_logins"]


def _write_failed_logins(db: Any, summaries: list[FailedLoginSummary]) -> None:
    for item in summaries:
        audit.record(db, actor=item.username, action="auth.login_failed", object_type="user",
                     object_id=item.username, ip=item.address or None,
                     details={"count": item.count, "first": iso(item.first), "last": iso(item.last)},
                     at=item.last)


def _record_failed_login(username: str, ip: str) -> None:
    """Count the failure; write the summaries at most once per interval (never while sealed)."""
    moment = now()
    pending = _failed_logins()
    pending.add(username, ip, at=moment)
    store = get_store()
    if store.is_sealed or not pending.due(at=moment):
        return
    summaries = pending.drain(at=moment)
    try:
        with store.write() as db:
            _write_failed_logins(db, summaries)
    except PortalError:
        pending.put_back(summaries)


def _start_session(username: str, *, pending_recovery_code: str | None = None) -> None:
    lang = session.get("lang")
    session.clear()  # a new session id on login (no fixation)
    if lang:
        session["lang"] = lang
    session["sid"] = get_sessions().start(username, client_ip(), pending_recovery_code=pending_recovery_code)


def _safe_next(target: str | None) -> str:
    """Where to go after login: a same-site path only (see :func:`blueprints.urls.safe_next`); by default the
    status page once there are clients, else the clients list."""
    return safe_next(target, url_for("status.home"), refuse_prefix="/login")


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> Any:
    """First visit: create the first administrator; the recovery code is shown next."""
    store = get_store()
    if store.state() != "new":
        return redirect_to(url_for("auth.login"))
    form = SetupForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        # Every problem at once: the login name, the password and the repetition.
        for name, check in (("username", validate_username), ("password", validate_password)):
            try:
                check(getattr(form, name).data or "")
            except ValidationError as exc:
                errors[name] = message(exc)
        if form.password.data != form.password2.data:
            errors["password2"] = _("The two passwords differ. Type the same password twice.")
        if not errors:
            try:
                code = store.setup(form.username.data or "", form.password.data or "", at=now())
            except ValidationError as exc:
                errors[exc.field or "username"] = message(exc)
            else:
                _start_session(store.keyring().usernames()[0], pending_recovery_code=code)
                return redirect_to(url_for("auth.setup_done"))
    return render_page("auth/setup.html", 422 if errors else 200, form=form, errors=errors)


@bp.route("/setup/recovery-code", methods=["GET", "POST"])
def setup_done() -> Any:
    """Show the recovery code until the administrator confirms having saved it; then it is gone."""
    live = g.get("web_session")
    if live is None or not live.pending_recovery_code:
        return redirect_to(url_for("clients.index"))
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        if form.confirmed.data:
            live.pending_recovery_code = None
            return redirect_to(url_for("office.index"))
        error = _("Tick the box once you have written the code down or printed it.")
    return render_page("auth/recovery_code.html", 422 if error else 200, form=form, code=live.pending_recovery_code,
                       error=error)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Log in; the first login after a start unseals the portal."""
    store = get_store()
    if store.state() == "new":
        return redirect_to(url_for("auth.setup"))
    if g.get("user") is not None:
        return redirect_to(_safe_next(request.args.get("next")))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        username = (form.username.data or "").strip().lower()
        ip = client_ip() or ""
        wait = _throttle().wait_seconds(username, ip)
        if wait:
            error = _("Too many failed attempts. Try again in %(seconds)s s.", seconds=wait)
            status = 429
        else:
            try:
                password = form.password.data or ""
                if len(username) > MAX_LOGIN_NAME or len(password) > MAX_PASSWORD:
                    raise WrongCredentials(Text("", ""))  # no one's: refused before the key derivation
                store.login(username, password)
                user = users.get_user(get_db(), username)
                if user is None:
                    raise WrongCredentials(Text("", ""))
            except WrongCredentials:
                _throttle().failed(username, ip)
                error = _("Wrong username or password. Check that Caps Lock is off.")
                status = 401
                _record_failed_login(username, ip)
            else:
                _throttle().succeeded(username, ip)
                with store.write() as db:
                    _write_failed_logins(db, _failed_logins().drain(at=now()))
                    restored = store.last_unseal.restored_from if store.last_unseal else None
                    audit.record(db, actor=username, action="auth.login", object_type="user", object_id=username,
                                 ip=ip, details={"restored_from": restored} if restored else None, at=now())
                _start_session(username)
                return redirect_to(_safe_next(request.args.get("next")))
    notice = session.pop("notice", None)
    return render_page("auth/login.html", status, form=form, error=error, sealed=store.is_sealed, notice=notice)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End this session."""
    if g.get("user") is not None:
        with get_store().write() as db:
            audit.record(db, actor=g.user.username, action="auth.logout", object_type="user",
                         object_id=g.user.username, ip=client_ip(), at=now())
    get_sessions().end(session.get("sid"))
    session.pop("sid", None)
    return redirect_to(url_for("auth.login"))


@bp.route("/recover", methods=["GET", "POST"])
def recover() -> Any:
    """A forgotten password: the recovery code sets a new one (and unseals, e.g. after a restore)."""
    store = get_store()
    form = RecoverForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        username = (form.username.data or "").strip().lower()
        ip = client_ip() or ""
        wait = _throttle().wait_seconds(f"recovery:{username}", ip)
        if wait:
            errors["code"] = _("Too many failed attempts. Try again in %(seconds)s s.", seconds=wait)
        elif len(form.code.data or "") > 64 or len(username) > MAX_LOGIN_NAME:
            errors["code"] = _("This is not a recovery code: it has 26 letters and digits in groups of four.")
        elif form.new_password.data != form.new_password2.data:
            errors["new_password2"] = _("The two passwords differ. Type the same password twice.")
        else:
            try:
                users.reset_password(store, username=username, recovery_code=form.code.data or "",
                                     new_password=form.new_password.data or "", ip=ip, at=now())
            except WrongCredentials as exc:
                _throttle().failed(f"recovery:{username}", ip)
                errors["code"] = message(exc)
            except (ValidationError, NotFound) as exc:
                # The domain names the field "password"; on this page it is "new_password".
                field = getattr(exc, "field", None) or "username"
                errors["new_password" if field == "password" else field] = message(exc)
            else:
                get_sessions().end_user(username)
                _start_session(username)
                return redirect_to(url_for("clients.index"))
    return render_page("auth/recover.html", 422 if errors else 200, form=form, errors=errors)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password() -> Any:
    """Change one's own password (the current one is required); other sessions end."""
    form = PasswordForm()
    errors: dict[str, str] = {}
    done = False
    if form.validate_on_submit():
        if form.new_password.data != form.new_password2.data:
            errors["new_password2"] = _("The two passwords differ. Type the same password twice.")
        else:
            try:
                users.change_password(get_store(), username=g.user.username, old=form.current_password.data or "",
                                      new=form.new_password.data or "", ip=client_ip(), at=now())
            except WrongCredentials:
                errors["current_password"] = _("The current password is wrong.")
            except ValidationError as exc:
                errors["new_password" if exc.field == "password" else (exc.field or "new_password")] = message(exc)
            else:
                get_sessions().end_user(g.user.username, keep=session.get("sid"))
                g.user = users.get_user(get_db(), g.user.username)
                done = True
    return render_page("auth/password.html", 422 if errors else 200, form=form, errors=errors, done=done)
