"""The office's own KSeF identity against the real sandbox: the certificate checked like method 3, stored for one
environment, logging in with it (own context and a client's), "Sprawdź połączenie", and never another environment."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from klucznik.authorize import office as office_identity
from klucznik.authorize.session import active_tokens
from klucznik.authorize.session import ksef_client_for
from klucznik.authorize.session import save_tokens
from klucznik.ksef.errors import KsefError
from klucznik.ksef.models import AuthTokens
from klucznik.ksef.models import TokenInfo
from klucznik.ksef.transport import RetryPolicy
from klucznik.records import office
from tests.fixtures.office_identity import issue_ksef_certificate
from tests.fixtures.sandbox import OFFICE_NIP
from tests.support.defaults import NOW


def _switch_environment(store, environment: str) -> None:
    with store.connect() as db:
        profile = office.get_office(db)
    with store.write() as db:
        office.save_office(
            db,
            office.OfficeProfile(profile.name, profile.nip, environment, profile.sandbox_url),
            actor="admin",
            at=NOW,
        )


def test_office_logs_in_in_its_own_context_and_ends_the_session(store, sandbox_server, office_identity_stored):
    ksef = sandbox_server.client()
    with store.connect() as db:
        credential = office.office_credential(db, environment="sandbox")
        session = office_identity.office_login(db, ksef=ksef, at=sandbox_server.state.now(), poll_interval=0.0)
    assert credential is not None and credential.id == office_identity_stored
    assert (session.context_nip, session.office_nip, session.environment) == (OFFICE_NIP, OFFICE_NIP, "sandbox")
    auth = sandbox_server.state.find_auth(session.reference_number)
    assert auth.context_nip == OFFICE_NIP and auth.certificate_serial == credential.serial  # the KSeF certificate
    assert office_identity.end_session(session) is True
    assert auth.revoked


def test_office_cannot_log_in_in_a_client_context_without_a_grant(store, sandbox_server, office_identity_stored):
    with store.connect() as db, pytest.raises(KsefError) as refused:
        office_identity.office_login(
            db, ksef=sandbox_server.client(), context_nip="5261040828", at=sandbox_server.state.now(),
            poll_interval=0.0,
        )
    assert refused.value.codes == (415,)


def test_check_connection_records_the_result_on_the_credential_and_in_the_audit(
    store, sandbox_server, office_identity_stored
):
    result = office_identity.check_connection(
        store, ksef=sandbox_server.client(), actor="admin", ip="127.0.0.1", at=sandbox_server.state.now(),
        poll_interval=0.0,
    )
    assert result.ok and "Połączenie działa" in result.text.pl and "SANDBOX" in result.text.pl
    with store.connect() as db:
        credential = office.office_credential(db, environment="sandbox")
        audit = db.execute("SELECT details FROM audit_log WHERE action = 'office.connection.check'").fetchall()
        ops = db.execute("SELECT operation, ok FROM ksef_operations").fetchall()
    assert credential.check_ok is True and credential.checked_at is not None
    assert len(audit) == 1 and '"ok": true' in audit[0][0]
    assert ("office.login", 1) in ops
    # the session was ended at once
    assert all(a.revoked for a in sandbox_server.state.auths.values() if a.context_nip == OFFICE_NIP
               and a.certificate_serial == credential.serial)


def test_a_revoked_office_certificate_fails_the_check_in_plain_words(store, sandbox_server, office_identity_stored):
    with store.connect() as db:
        serial = office.office_credential(db, environment="sandbox").serial
    sandbox_server.state.certificates[serial].status = "Revoked"
    result = office_identity.check_connection(
        store, ksef=sandbox_server.client(), actor="admin", ip=None, at=sandbox_server.state.now(), poll_interval=0.0
    )
    assert not result.ok and "Nie udało się zalogować do KSeF jako biuro" in result.text.pl
    with store.connect() as db:
        assert office.office_credential(db, environment="sandbox").check_ok is False


def test_credentials_of_another_environment_are_never_used(store, sandbox_server, office_identity_stored):
    _switch_environment(store, "test")
    before = len(sandbox_server.exchanges())
    with store.connect() as db:
        assert office.office_credential(db, environment="test") is None
        with pytest.raises(office.EnvironmentMismatch) as refused:
            office_identity.office_login(db, ksef=ksef_client_for(db), at=sandbox_server.state.now())
    assert "SANDBOX" in refused.value.text.pl and "TEST" in refused.value.text.pl
    assert len(sandbox_server.exchanges()) == before  # refused before any call to KSeF


def test_a_ksef_client_of_another_address_is_refused(store, sandbox_server, office_identity_stored):
    from klucznik.ksef.client import KsefClient

    with store.connect() as db, pytest.raises(office.EnvironmentMismatch):
        office_identity.office_login(
            db, ksef=KsefClient("https://api-test.ksef.mf.gov.pl/v2"), at=sandbox_server.state.now()
        )


def test_client_tokens_of_another_environment_are_not_handed_out(store, client_company, sandbox_office):
    tokens = AuthTokens(TokenInfo("a", NOW), TokenInfo("r", NOW))
    with store.write() as db:
        save_tokens(db, client_id=client_company.id, context_nip=client_company.nip, reference=None, tokens=tokens,
                    at=NOW)
    with store.connect() as db:
        assert active_tokens(db, client_company.id) is not None
    _switch_environment(store, "demo")
    with store.connect() as db, pytest.raises(office.EnvironmentMismatch):
        active_tokens(db, client_company.id)


def test_each_environment_keeps_its_own_office_certificate(store, sandbox_server, office_identity_stored):
    _switch_environment(store, "test")
    other = issue_ksef_certificate(sandbox_server, nip=OFFICE_NIP)
    result = office_identity.check_office_pair(crt=other.crt, key=other.key, password=None, nip=OFFICE_NIP,
                                               at=sandbox_server.state.now())
    with store.write() as db:
        office_identity.save_office_pair(db, result=result, environment="test", nip=OFFICE_NIP, actor="admin",
                                         ip=None, at=NOW)
    with store.connect() as db:
        assert office.office_credential(db, environment="test").serial == other.serial
        assert office.office_credential(db, environment="sandbox").id == office_identity_stored
        assert {c.ksef_environment for c in office.office_credentials(db)} == {"test", "sandbox"}


# -- the Office page ---------------------------------------------------------------------------------------


@pytest.fixture
def office_page(app, web, sandbox_server, sandbox_office):
    app.config["KLUCZNIK_CLOCK"] = sandbox_server.state.now
    app.config["KSEF_CLIENT_OPTIONS"] = {
        "retries": RetryPolicy(attempts=3, backoff=0.0, rate_limit_attempts=2, max_retry_after=1),
        "sleep": lambda seconds: None,
        "clock": sandbox_server.state.now,
        "timeout": (2.0, 5.0),
    }
    return web


def _text(response) -> str:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser").get_text(" ", strip=True)


def test_office_page_upload_checks_like_method_3_then_stores_and_checks_the_connection(
    office_page, store, sandbox_server, office_certificate
):
    offline = issue_ksef_certificate(sandbox_server, nip=OFFICE_NIP, certificate_type="Offline")
    wrong = office_page.post("/office/certificate", files={"crt": (offline.crt, "offline.crt"),
                                                          "key": (offline.key, "offline.key")})
    assert wrong.status_code == 422
    assert 'data-code="wrong_slot"' in wrong.get_data(as_text=True)
    mismatch = office_page.post("/office/certificate", files={"crt": (office_certificate.crt, "a.crt"),
                                                             "key": (offline.key, "b.key")})
    assert mismatch.status_code == 422 and 'data-code="key_mismatch"' in mismatch.get_data(as_text=True)
    with store.connect() as db:
        assert office.office_credentials(db) == []  # bad input stores nothing

    ok = office_page.post("/office/certificate", files={"crt": (office_certificate.crt, "auth.crt"),
                                                       "key": (office_certificate.key, "auth.key")})
    assert ok.status_code == 200, _text(ok)
    page = BeautifulSoup(ok.get_data(as_text=True), "html.parser")
    row = page.select_one("#office-identity tr[data-environment=sandbox]")
    assert row is not None and office_certificate.serial in row.get_text()
    assert "SANDBOX" in row.get_text()

    checked = office_page.post("/office/check", htmx=True)
    assert checked.status_code == 200 and "Połączenie działa" in _text(checked)


def test_office_page_changing_the_environment_asks_first(office_page, store, office_identity_stored):
    data = {"name": "Biuro Rachunkowe Test", "nip": OFFICE_NIP, "ksef_environment": "prod", "sandbox_url": ""}
    asked = office_page.post("/office", data)
    assert asked.status_code == 200 and "Zmienić środowisko KSeF z SANDBOX na PRD" in _text(asked)
    with store.connect() as db:
        assert office.get_office(db).ksef_environment == "sandbox"  # nothing changed yet
    done = office_page.post("/office", {**data, "confirm_environment": "prod"})
    assert done.status_code == 200 and "Zapisano." in _text(done)
    page = BeautifulSoup(done.get_data(as_text=True), "html.parser")
    row = page.select_one("#office-identity tr[data-environment=sandbox]")
    assert "nieużywany: inne środowisko" in row.get_text()
    assert page.select_one("form[action='/office/check']") is None  # nothing to check in PRD
    with store.connect() as db:
        assert office.get_office(db).ksef_environment == "prod"
        audit = db.execute("SELECT details FROM audit_log WHERE action = 'office.update' ORDER BY id DESC").fetchone()
    assert '"previous_environment": "sandbox"' in audit[0]


def test_office_obtains_its_certificate_with_a_signed_file(office_page, store, sandbox_server):
    from sandbox import ca
    from sandbox import signer

    prepared = office_page.post("/office/enroll")
    assert prepared.status_code == 200 and 'href="/office/enroll/AuthTokenRequest.xml"' in prepared.get_data(as_text=True)
    download = office_page.get("/office/enroll/AuthTokenRequest.xml")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == f"attachment; filename=AuthTokenRequest-{OFFICE_NIP}.xml"
    unsigned = download.get_data()
    assert f"<Nip>{OFFICE_NIP}</Nip>".encode() in unsigned

    other_certificate, other_key = ca.qualified_identity(nip="7792433527")
    wrong = signer.sign(unsigned.replace(OFFICE_NIP.encode(), b"7792433527"), certificate=other_certificate,
                        private_key=other_key, style="enveloped")
    refused = office_page.post("/office/enroll/upload", files={"signed": (wrong, "a.xml")})
    assert refused.status_code == 422
    with store.connect() as db:
        assert office.office_credentials(db) == []

    certificate, key = ca.qualified_identity(nip=OFFICE_NIP)
    signed = signer.sign(unsigned, certificate=certificate, private_key=key, style="enveloped")
    done = office_page.post("/office/enroll/upload", files={"signed": (signed, "AuthTokenRequest.xml")})
    assert done.status_code == 200, _text(done)
    assert 'data-enroll="done"' in done.get_data(as_text=True)
    with store.connect() as db:
        credential = office.office_credential(db, environment="sandbox")
        state = db.execute("SELECT value FROM settings WHERE key = 'office.enrollment.sandbox'").fetchone()[0]
    assert credential is not None and credential.origin == "generated"
    assert "PRIVATE KEY" not in state  # the key lives with the certificate only
    issued = sandbox_server.state.certificates[credential.serial]
    assert issued.certificate_type == "Authentication" and issued.subject.value == OFFICE_NIP
    checked = office_page.post("/office/check", htmx=True)
    assert checked.status_code == 200 and "Połączenie działa" in _text(checked)
