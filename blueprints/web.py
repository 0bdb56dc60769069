"""The ``web`` blueprint (health check, language switch) and :func:`init_app`, which wires the portal's web
plumbing into the app: the store, sessions, CSRF, htmx, Babel, the gate, security headers and error pages.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request
from flask import session
from flask_babel import Babel
from flask_babel import get_translations
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFProtect

from blueprints.accesslog import init_access_log
from blueprints.clients import refuse_archived
from blueprints.context import close_db
from blueprints.context import current_user
from blueprints.context import get_store
from blueprints.context import lang
from blueprints.context import message
from blueprints.errors import error_response
from blueprints.errors import register_error_handlers
from blueprints.gate import gate
from blueprints.gate import security_headers
from blueprints.htmx import htmx
from blueprints.htmx import redirect_to
from blueprints.sessions import SessionRegistry
from blueprints.urls import init_urls
from blueprints.urls import safe_next
from klucznik.errors import InstanceDamaged
from klucznik.errors import WrongCredentials
from klucznik.ids import format_nip
from klucznik.instance.keyring import DEFAULT_KDF
from klucznik.instance.store import Store
from klucznik.text import DEFAULT_LANGUAGE
from klucznik.text import LANGUAGES

if TYPE_CHECKING:  # flask_babel's own dependency, named here for the type only
    from babel.support import NullTranslations

log = logging.getLogger("klucznik.web")
bp = Blueprint("web", __name__)
csrf = CSRFProtect()
babel = Babel()


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
    session["lang"] = chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE
    return redirect_to(safe_next(request.form.get("next"), "/"))


#: No text field of the portal takes more (a client's notes: 5000); longer values are refused whole.
MAX_FIELD_CHARS = 10_000


def refuse_oversized_fields() -> Response | None:
    """``before_request``: a form value over :data:`MAX_FIELD_CHARS` is refused before any view reads it."""
    if request.method != "POST" or not request.form:
        return None
    if all(len(value) <= MAX_FIELD_CHARS for _name, values in request.form.lists() for value in values):
        return None
    return error_response(
        400,
        _("A field is too long"),
        _(
            "One of the fields holds more than %(limit)s characters, so nothing was saved. Shorten it "
            "and try again.",
            limit=f"{MAX_FIELD_CHARS:,}".replace(",", " "),
        ),
    )


def _select_locale() -> str:
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def _translations() -> NullTranslations:
    """flask_babel's translations for this request, looked up once.

    flask_babel's template callables look them up again for every string (the context, the locale and the
    domain each time: about a fifth of a list page's time). The result is kept beside flask_babel's own cache
    of the locale (``g._flask_babel``) and used only while that locale is the one it was found for, so
    ``force_locale`` and ``refresh`` still take effect.
    """
    if not g:  # no app context: flask_babel answers with its null translations
        return get_translations()
    cached = getattr(g, "_klucznik_translations", None)
    locale = getattr(getattr(g, "_flask_babel", None), "babel_locale", None)
    if cached is not None and locale is not None and cached[0] is locale:
        return cached[1]
    translations = get_translations()
    g._klucznik_translations = (getattr(g._flask_babel, "babel_locale", None), translations)
    return translations


def _install_template_gettext(app: Flask) -> None:
    """flask_babel's template callables, with the translations looked up once per request."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
        newstyle=True,
    )


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
    store = app.config.get("KLUCZNIK_STORE") or Store(
        app.instance_path, kdf=app.config.get("KLUCZNIK_KDF") or DEFAULT_KDF
    )
    init_access_log(app)
    init_urls(app)
    app.before_request(refuse_oversized_fields)
    app.extensions["klucznik.store"] = store
    app.extensions["klucznik.sessions"] = SessionRegistry()
    csrf.init_app(app)
    htmx.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    _install_template_gettext(app)
    app.before_request(gate)
    app.before_request(refuse_archived)
    app.after_request(security_headers)
    app.teardown_appcontext(close_db)
    app.jinja_env.globals.update(
        msg=message,
        lang=lang,
        current_user=current_user,
        has_endpoint=lambda name: name in app.view_functions,
    )
    # NIPs are always shown with dashes (123-456-32-18), whatever a view passes.
    app.jinja_env.filters["nip"] = format_nip
    app.register_blueprint(bp)
    register_error_handlers(app)
    _try_unattended_unseal(app, store)
