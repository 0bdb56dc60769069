"""The request gate and the security headers of every answer.

The gate (``before_request``) enforces, in order: a new instance leads to the setup page; a damaged one
to an explanation; a sealed one to the login page (the first login unseals it); an unauthenticated or
idle session to the login page; a password that must be changed to the password page.
"""

from __future__ import annotations

from flask import Response
from flask import current_app
from flask import g
from flask import request
from flask import session
from flask import url_for

from blueprints import links
from blueprints.context import get_db
from blueprints.context import get_sessions
from blueprints.context import get_store
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from klucznik.errors import InstanceDamaged
from klucznik.records.users import get_user

CSP = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; "
    "img-src 'self' data:"
)
#: Endpoints reachable without a session (and while sealed).
PUBLIC_ENDPOINTS = {"static", "auth.setup", "auth.login", "auth.recover", "web.health", "web.set_language"}
#: The client's signing-link page (no account; it answers "try later" itself while sealed).
PUBLIC_ENDPOINTS |= links.PUBLIC


def gate() -> Response | None:
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
    live = get_sessions().touch(
        session.get("sid"), current_app.config["KLUCZNIK_IDLE_TIMEOUT"].total_seconds()
    )
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


def security_headers(response: Response) -> Response:
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
