"""Web plumbing shared by every blueprint: the store, the request gate, security headers, errors, htmx.

The gate (``before_request``) enforces, in order: a new instance leads to the setup page; a damaged one
to an explanation; a sealed one to the login page (the first login unseals it); an unauthenticated or
idle session to the login page; a password that must be changed to the password page.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask_babel import Babel
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_htmx import HTMX
from flask_htmx.responses import HTMXResponseClientRedirect
from flask_wtf.csrf import CSRFError
from flask_wtf.csrf import CSRFProtect
from sqlite_utils import Database
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import RequestEntityTooLarge

from klucznik.errors import InstanceDamaged
from klucznik.errors import NotFound
from klucznik.errors import PortalError
from klucznik.errors import Sealed
from klucznik.errors import WrongCredentials
from klucznik.keyring import DEFAULT_KDF
from klucznik.storage import Store
from klucznik.users import User
from klucznik.users import get_user

log = logging.getLogger("klucznik.web")
bp = Blueprint("web", __name__)
csrf = CSRFProtect()
htmx = HTMX()
babel = Babel()

CSP = ("default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; "
       "img-src 'self' data:")
#: Endpoints reachable without a session (and while sealed).
PUBLIC_ENDPOINTS = {"static", "auth.setup", "auth.login", "auth.recover", "web.health",
                    "web.set_language"}
LANGUAGES = ("pl", "en")


# -- sessions -----------------------------------------------------------------------------------------------


@dataclass
class WebSession:
    """A server-side session: the cookie carries only its random id."""

    username: str
    created: float
    last_seen: float
    ip: str | None = None
    #: The recovery code right after setup, shown until the administrator confirms saving it (memory only).
    pending_recovery_code: str | None = None


@dataclass
class SessionRegistry:
    """Live sessions, in memory only: a restart (or seal) logs everyone out."""

    sessions: dict[str, WebSession] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, username: str, ip: str | None, *, pending_recovery_code: str | None = None) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self.lock:
            self.sessions[sid] = WebSession(username, now, now, ip, pending_recovery_code)
        return sid

    def touch(self, sid: str | None, idle_seconds: float) -> WebSession | None:
        """The session ``sid`` if it is alive (and mark it used), else None."""
        if not sid:
            return None
        now = time.monotonic()
        with self.lock:
            live = self.sessions.get(sid)
            if live is None:
                return None
            if now - live.last_seen > idle_seconds:
                del self.sessions[sid]
                return None
            live.last_seen = now
            return live

    def end(self, sid: str | None) -> None:
        with self.lock:
            self.sessions.pop(sid or "", None)

    def end_user(self, username: str, *, keep: str | None = None) -> None:
        """End every session of ``username`` except ``keep``."""
        with self.lock:
            for sid in [s for s, v in self.sessions.items() if v.username == username and s != keep]:
                del self.sessions[sid]

    def clear(self) -> None:
        with self.lock:
            self.sessions.clear()


# -- access to the store ------------------------------------------------------------------------------------


def get_store() -> Store:
    """The instance of this app."""
    return current_app.extensions["klucznik.store"]


def get_sessions() -> SessionRegistry:
    return current_app.extensions["klucznik.sessions"]


def get_db() -> Database:
    """One connection per request, closed at teardown (flaskr's ``get_db``)."""
    if "db" not in g:
        g.db = get_store().connect()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def client_ip() -> str | None:
    return request.remote_addr


def lang() -> str:
    """The current UI language code."""
    return str(get_locale() or "pl")


def message(error: PortalError) -> str:
    """A domain error's message in the UI language."""
    return error.message(lang())


# -- htmx helpers -------------------------------------------------------------------------------------------


def htmx_partial_or_page(page: str, partial: str, **context: Any) -> Response:
    """Render ``partial`` for an htmx request and ``page`` otherwise, with ``Vary: HX-Request``."""
    template = partial if htmx and not htmx.history_restore_request else page
    response = current_app.make_response(render_template(template, **context))
    response.headers.add("Vary", "HX-Request")
    return response


def redirect_to(url: str) -> Response:
    """A redirect that also works for htmx requests (``HX-Redirect`` instead of a swapped 302)."""
    if htmx:
        return HTMXResponseClientRedirect(url)
    return redirect(url, 303)


def render_page(template: str, status: int = 200, **context: Any) -> Response:
    response = current_app.make_response((render_template(template, **context), status))
    return response


# -- the gate -----------------------------------------------------------------------------------------------


def _gate() -> Response | None:
    g.user = None
    endpoint = request.endpoint or ""
    if endpoint == "static":
        return None
    store = get_store()
    try:
        state = store.state()
    except InstanceDamaged as exc:
        if endpoint in ("web.health", "web.set_language"):
            return None
        return render_page("errors/damaged.html", 503, error=exc)
    if state == "new":
        if endpoint in ("auth.setup", "web.health", "web.set_language"):
            return None
        return redirect_to(url_for("auth.setup"))
    if state == "sealed":
        get_sessions().clear()
    live = get_sessions().touch(session.get("sid"), current_app.config["KLUCZNIK_IDLE_TIMEOUT"].total_seconds())
    if live is not None and state == "unsealed":
        user = get_user(get_db(), live.username)
        if user is None:
            get_sessions().end(session.get("sid"))
        else:
            g.user = user
            g.web_session = live
    if endpoint in PUBLIC_ENDPOINTS:
        return None
    if g.user is None:
        if session.get("sid"):
            session.pop("sid", None)
            session["notice"] = "expired"
        return redirect_to(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
    if g.web_session.pending_recovery_code and endpoint not in ("auth.setup_done", "auth.logout"):
        return redirect_to(url_for("auth.setup_done"))
    if g.user.must_change_password and endpoint not in ("auth.password", "auth.logout"):
        return redirect_to(url_for("auth.password"))
    return None


def current_user() -> User | None:
    return g.get("user")


# -- responses ----------------------------------------------------------------------------------------------


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.endpoint != "static":
        headers.setdefault("Cache-Control", "no-store")
    if current_app.config.get("KLUCZNIK_HTTPS"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _error_response(status: int, title: str, text: str, *, error_id: str | None = None) -> Response:
    template = "errors/_alert.html" if htmx else "errors/error.html"
    return render_page(template, status, title=title, text=text, error_id=error_id)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_exc: CSRFError) -> Response:
        return _error_response(400, _("The form has expired"),
                               _("The form was open too long or came from another page, so nothing was saved. "
                                 "Reload the page and try again."))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge) -> Response:
        return _error_response(413, _("The file is too large"),
                               _("What you sent is larger than the portal accepts (2 MB in total), so nothing was "
                                 "saved. Certificates and keys are a few kilobytes: check that you chose the right "
                                 "files."))

    @app.errorhandler(NotFound)
    def not_found_domain(exc: NotFound) -> Response:
        return _error_response(404, _("Not found"), message(exc))

    @app.errorhandler(InstanceDamaged)
    def damaged(exc: InstanceDamaged) -> Response:
        return render_page("errors/damaged.html", 503, error=exc)

    @app.errorhandler(Sealed)
    def sealed(_exc: Sealed) -> Response:
        return redirect_to(url_for("auth.login"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        texts = {
            404: (_("Page not found"), _("This address does not exist in the portal. Use the menu above.")),
            405: (_("Not allowed"), _("This address cannot be used this way. Use the buttons in the portal.")),
            400: (_("Bad request"), _("The portal could not read what was sent. Reload the page and try again.")),
        }
        title, text = texts.get(exc.code or 500, (exc.name, _("Reload the page and try again.")))
        return _error_response(exc.code or 500, title, text)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return http_error(exc)
        error_id = secrets.token_hex(4)
        log.exception("unexpected error %s on %s %s", error_id, request.method, request.path)
        return _error_response(500, _("Something went wrong"),
                               _("The portal hit an unexpected error; nothing you already saved was lost. Try "
                                 "again; if it repeats, give your administrator this error number."),
                               error_id=error_id)


@bp.route("/health")
def health() -> Response:
    """For monitoring: is the instance set up and unsealed (no details)."""
    try:
        state = get_store().state()
    except InstanceDamaged:
        state = "damaged"
    return current_app.make_response(({"state": state}, 200 if state == "unsealed" else 503))


@bp.route("/language", methods=["POST"])
def set_language() -> Response:
    """Switch the UI between Polish and English."""
    chosen = request.form.get("lang", "pl")
    session["lang"] = chosen if chosen in LANGUAGES else "pl"
    back = request.form.get("next") or "/"
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    return redirect_to(back)


def _select_locale() -> str:
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else "pl"


def _try_unattended_unseal(app: Flask, store: Store) -> None:
    key_file = app.config.get("KLUCZNIK_UNSEAL_KEY_FILE")
    if not key_file:
        return
    try:
        if store.state() == "sealed":
            store.unseal_with_key_file(Path(key_file))
            log.info("unsealed with the unattended key file")
    except (WrongCredentials, InstanceDamaged) as exc:
        log.error("unattended unseal failed: %s", exc.message_en)


def init_app(app: Flask) -> None:
    """Wire the store, sessions, CSRF, htmx, Babel, the gate, headers and error pages into ``app``."""
    store = app.config.get("KLUCZNIK_STORE") or Store(app.instance_path, kdf=app.config.get("KLUCZNIK_KDF") or DEFAULT_KDF)
    app.extensions["klucznik.store"] = store
    app.extensions["klucznik.sessions"] = SessionRegistry()
    csrf.init_app(app)
    htmx.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    app.before_request(_gate)
    app.after_request(_security_headers)
    app.teardown_appcontext(close_db)
    app.jinja_env.globals.update(msg=message, lang=lang, current_user=current_user,
                                has_endpoint=lambda name: name in app.view_functions)
    app.register_blueprint(bp)
    _register_error_handlers(app)
    _try_unattended_unseal(app, store)
