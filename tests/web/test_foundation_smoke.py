"""The first five minutes: setup, recovery code, login, clients, office (real instance, real Flask app)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from tests.support.web import WebClient
from tests.support.web import make_app


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WebClient:
    """A portal over an empty instance folder."""
    path = tmp_path / "instance"
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(path))
    return WebClient(make_app(Store(path, kdf=TEST_KDF)).test_client())


def test_first_visit_leads_to_setup(fresh: WebClient) -> None:
    response = fresh.get("/clients")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/setup")


def test_setup_refuses_short_password_and_keeps_form(fresh: WebClient) -> None:
    fresh.get("/setup")
    response = fresh.post("/setup", {"username": "anna", "password": "short", "password2": "short"})
    assert response.status_code == 422
    assert "co najmniej 12 znaków" in response.get_data(as_text=True)


def test_setup_shows_recovery_code_until_confirmed(fresh: WebClient) -> None:
    fresh.get("/setup")
    response = fresh.post("/setup", {"username": "anna", "password": "a long password", "password2": "a long password"})
    assert response.headers["Location"].endswith("/setup/recovery-code")
    page = fresh.get("/clients")
    assert page.headers["Location"].endswith("/setup/recovery-code")
    shown = fresh.get("/setup/recovery-code").get_data(as_text=True)
    assert "recovery-code" in shown
    assert fresh.post("/setup/recovery-code", {}).status_code == 422
    assert fresh.post("/setup/recovery-code", {"confirmed": "y"}).status_code == 303
    assert fresh.get("/clients").status_code == 200
    # Once confirmed, the code is gone from the server.
    assert fresh.get("/setup/recovery-code").status_code == 303


def test_polish_is_the_default_and_english_selectable(web: WebClient) -> None:
    assert "Klienci" in web.get("/clients").get_data(as_text=True)
    web.post("/language", {"lang": "en", "next": "/clients"})
    assert "Clients" in web.get("/clients").get_data(as_text=True)


def test_uploads_stay_in_memory_even_when_large(app) -> None:
    """Werkzeug spools uploads over 500 KiB to a temporary file; the portal's request class never does."""
    from werkzeug.test import EnvironBuilder

    big = b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 700_000
    builder = EnvironBuilder(method="POST", data={"f": (io.BytesIO(big), "k.key")})
    environ = builder.get_environ()
    try:
        request = app.request_class(environ)
        stream = request.files["f"].stream
        assert type(stream).__name__ == "BytesIO"
        assert stream.getvalue() == big
        request.close()
    finally:
        environ["wsgi.input"].close()
        builder.close()


def test_template_translations_follow_the_locale_within_one_app_context(app) -> None:
    """The templates' translations are looked up once per request, yet a changed locale is never served stale.

    Two requests in one app context (so one ``g``) with different languages, and ``force_locale`` inside
    a request, each render in their own language.
    """
    from flask import render_template_string
    from flask import session
    from flask_babel import force_locale

    with app.app_context():
        with app.test_request_context("/"):
            session["lang"] = "pl"
            assert render_template_string("{{ _('Clients') }}") == "Klienci"
            with force_locale("en"):
                assert render_template_string("{{ _('Clients') }}") == "Clients"
            assert render_template_string("{{ _('Clients') }}") == "Klienci"
        with app.test_request_context("/"):
            session["lang"] = "en"
            from flask_babel import refresh

            refresh()  # the locale flask_babel keeps for the app context was the first request's
            assert render_template_string("{{ ngettext('%(num)s client', '%(num)s clients', 2) }}") == "2 clients"
