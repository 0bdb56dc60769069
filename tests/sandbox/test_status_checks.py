"""Live checks against the sandbox: a method-2 client's certificates log in and read their KSeF status (a revoked
Offline certificate, a revoked Authentication certificate), the Offline certificate's KOD II signature, and a
method-1 client's grant (the office logs in through an injected login; a withdrawn grant)."""

from __future__ import annotations

import pytest

from klucznik.records import clients
from klucznik.status import checks
from klucznik.status.results import latest_checks
from klucznik.status.results import record_outcomes
from sandbox.state import Identity
from tests.fixtures.sandbox import OFFICE_NIP
from tests.support.status import enroll_in_sandbox


@pytest.fixture
def method2(store, client_company, sandbox_server, sandbox_office):
    at = sandbox_server.state.now()
    serials = enroll_in_sandbox(sandbox_server, store, client_company.id, client_company.nip, at=at)
    return store, client_company, sandbox_server, serials


def _check(store, server, client_id, **kwargs):
    return checks.check_client(store.connect, client_id, ksef=server.client(), at=server.state.now(),
                               poll_interval=0.0, **kwargs)


def test_method_2_logs_in_with_the_stored_certificate_and_reads_ksef_statuses(method2) -> None:
    store, company, server, serials = method2
    outcome = _check(store, server, company.id)
    assert outcome.ok, outcome
    assert {s: i["status"] for s, i in outcome.certificates.items()} == {
        serials["Authentication"]: "Active", serials["Offline"]: "Active"}
    assert outcome.certificates[serials["Offline"]]["offline_signature"] is True
    assert outcome.limits["can_request"] is True
    # it logged in with the stored Authentication certificate and ended the session afterwards
    assert server.state.certificate(serials["Authentication"]).last_use is not None
    assert server.exchanges("/auth/sessions/current")[-1].status == 204
    with store.write() as db:
        record_outcomes(db, [outcome])
    with store.connect() as db:
        assert latest_checks(db, [company.id])[company.id].ok


def test_a_revoked_offline_certificate_is_reported_with_what_to_do(method2) -> None:
    store, company, server, serials = method2
    server.state.revoke_certificate(Identity("Nip", company.nip), serials["Offline"])
    outcome = _check(store, server, company.id)
    assert not outcome.ok and outcome.error_code == "certificate_not_active"
    assert outcome.certificates[serials["Offline"]]["status"] == "Revoked"
    assert "status Revoked" in outcome.message.pl and serials["Offline"] in outcome.message.pl


def test_a_revoked_authentication_certificate_fails_the_login(method2) -> None:
    store, company, server, serials = method2
    server.state.revoke_certificate(Identity("Nip", company.nip), serials["Authentication"])
    outcome = _check(store, server, company.id)
    assert not outcome.ok and outcome.ksef_code is not None and outcome.message is not None
    assert outcome.certificates[serials["Offline"]]["offline_signature"] is True


def test_an_unreachable_ksef_is_an_outcome_not_an_exception(method2) -> None:
    store, company, server, _ = method2
    server.inject("POST /auth/challenge", "error", status=503, times=None)
    outcome = _check(store, server, company.id)
    assert not outcome.ok and outcome.http_status == 503 and "chwilowe problemy" in outcome.message.pl


def test_a_key_that_does_not_match_fails_the_kod2_test(method2) -> None:
    store, company, server, serials = method2
    from cryptography.hazmat.primitives import serialization

    from klucznik.authorize.enroll import new_key

    other = new_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    with store.write() as db:
        db.execute("UPDATE credentials SET private_key = ? WHERE slot = 'offline'", [other])
    outcome = _check(store, server, company.id)
    assert not outcome.ok and outcome.error_code == "kod2_failed"
    assert outcome.certificates[serials["Offline"]]["offline_signature"] is False


def test_kod2_signature_is_accepted_by_the_sandbox_qr_verifier(method2) -> None:
    import base64

    import requests

    from klucznik import certs

    store, company, server, serials = method2
    with store.connect() as db:
        offline = checks.stored_credentials(db, company.id)["offline"]
    text = checks.kod2_test_string(qr_url=f"{server.root}/qr", nip=company.nip, serial=offline.serial)
    key = certs.load_private_key(offline.private_key).private_key
    signature = base64.urlsafe_b64encode(checks.sign_kod2(key, text)).rstrip(b"=").decode()
    verdict = requests.get(f"http://{text}/{signature}", headers={"Accept": "application/json"}, timeout=5).json()
    assert {c["check"]: c["ok"] for c in verdict["checks"]}["signature"] is True


def _office_login(server):
    def login(ksef, context_nip):
        server.login(context_nip, nip=OFFICE_NIP, client=ksef)
    return login


def test_method_1_reads_the_office_grant_and_notices_it_withdrawn(store, client_company, sandbox_server,
                                                                  sandbox_office) -> None:
    with store.write() as db:
        clients.set_auth_method(db, client_company.id, "grant", at=sandbox_server.state.now())
    missing_login = _check(store, sandbox_server, client_company.id)
    assert (missing_login.ok, missing_login.error_code) == (False, "no_office_login")
    sandbox_server.seed_permissions(context_nip=client_company.nip, identifier_type="Nip", identifier=OFFICE_NIP,
                                    permissions=["InvoiceRead", "InvoiceWrite"])
    granted = _check(store, sandbox_server, client_company.id, office_login=_office_login(sandbox_server))
    assert (granted.ok, granted.grant_state) == (True, "granted"), granted
    sandbox_server.state.revoke_test_permissions(client_company.nip, Identity("Nip", OFFICE_NIP))
    withdrawn = _check(store, sandbox_server, client_company.id, office_login=_office_login(sandbox_server))
    assert (withdrawn.ok, withdrawn.grant_state) == (False, "missing"), withdrawn


def test_method_1_check_logs_in_with_the_office_certificate_of_the_office_page(
    store, client_company, sandbox_server, sandbox_office, office_identity_stored
) -> None:
    """The login the portal and `klucznik check-clients` use: the office's own stored certificate, signed
    into the client's context, then the grants query — no test double in between."""
    from klucznik.authorize import office as office_identity

    with store.write() as db:
        clients.set_auth_method(db, client_company.id, "grant", at=sandbox_server.state.now())
    login = office_identity.login_in_context(store.connect, clock=sandbox_server.state.now, poll_interval=0.0)
    refused = _check(store, sandbox_server, client_company.id, office_login=login)
    assert (refused.ok, refused.grant_state) == (False, "missing"), refused
    sandbox_server.seed_permissions(context_nip=client_company.nip, identifier_type="Nip", identifier=OFFICE_NIP,
                                    permissions=["InvoiceRead", "InvoiceWrite"])
    granted = _check(store, sandbox_server, client_company.id, office_login=login)
    assert (granted.ok, granted.grant_state) == (True, "granted"), granted
