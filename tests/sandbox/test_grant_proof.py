"""Method 1 proven against the real sandbox: after the grant the office logs in in the client's context and reads
the grants it received; who the signer is for KSeF, read before the grant; a client with the office's own NIP;
"Odbierz uprawnienia" with a confirmation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bs4 import BeautifulSoup

from klucznik.authorize import grant_check
from klucznik.authorize.flow import advance
from klucznik.authorize.requests import WizardError
from klucznik.authorize.signed_xml import check_upload
from klucznik.authorize.signed_xml import issue_request
from klucznik.authorize.signed_xml import submit
from klucznik.ksef.transport import RetryPolicy
from klucznik.records import clients
from sandbox import ca
from sandbox import signer
from tests.fixtures.sandbox import OFFICE_NIP
from tests.support.defaults import NOW

PESEL = "88102341294"
OTHER_NIP = "7792433527"


def _method_1(store, server, company, *, nip=None, pesel=None):
    """Walk method 1 up to its end: issue, sign (seal of ``nip`` or person ``pesel``), check, submit, follow."""
    ksef = server.client()
    at = server.state.now()
    request = issue_request(store, client_id=company.id, method="grant", ksef=ksef, actor="admin", at=at)
    certificate, key = ca.qualified_identity(nip=nip if (nip or pesel) else company.nip, pesel=pesel)
    signed = signer.sign(request.unsigned_xml, certificate=certificate, private_key=key, style="enveloped")
    assert check_upload(store, request_id=request.id, data=signed, actor="admin", at=at).ok
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    for i in range(20):
        progress = advance(store, request_id=request.id, ksef=ksef, actor="admin", at=at + timedelta(seconds=i))
        if progress.done:
            return progress
    raise AssertionError("method 1 never finished")


def _office_grants(server, company):
    return {g.scope for g in server.state.grants.values()
            if g.active and g.context_nip == company.nip and g.subject_nip == OFFICE_NIP}


def test_after_the_grant_the_office_proves_it_with_both_calls(
    store, client_company, sandbox_server, sandbox_office, office_identity_stored
):
    progress = _method_1(store, sandbox_server, client_company)
    assert progress.ok, progress
    assert progress.request.followup["signer_rights"]["can_grant"] == "yes"  # the company's own seal: owner
    assert progress.request.followup["signer_rights"]["owner"] is True
    with store.connect() as db:
        check = grant_check.latest_check(db, client_company.id)
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY id")]
    assert check is not None and check.ok and check.login_ok and check.query_ok
    assert set(check.scopes) == {"InvoiceRead", "InvoiceWrite"}
    assert all(p["start_date"] and p["id"] for p in check.permissions)
    assert "Uprawnienia potwierdzone w KSeF" in check.text.pl
    assert actions.index("ksef.permissions.signer") < actions.index("ksef.permissions.grant")
    assert actions[-1] == "ksef.permissions.verify"
    # the office logged in in the client's context (proof 1), then queried in its own context (proof 2)
    office_auths = [a for a in sandbox_server.state.auths.values() if a.certificate_serial]
    assert [a.context_nip for a in office_auths] == [client_company.nip, OFFICE_NIP]
    assert all(a.revoked for a in office_auths)  # both sessions ended
    assert sandbox_server.exchanges("/permissions/query/entities/grants")


def test_without_the_office_certificate_the_grant_is_not_shown_as_proven(
    store, client_company, sandbox_server, sandbox_office
):
    progress = _method_1(store, sandbox_server, client_company)
    assert progress.ok  # KSeF completed the grant
    with store.connect() as db:
        check = grant_check.latest_check(db, client_company.id)
    assert check is not None and not check.ok and not check.login_ok
    assert "Wgraj certyfikat uwierzytelniający biura" in check.text.pl


def test_a_check_before_any_grant_says_ksef_sees_no_permissions(
    store, client_company, sandbox_server, sandbox_office, office_identity_stored
):
    check = grant_check.verify_grant(store, client_id=client_company.id, ksef=sandbox_server.client(), actor="admin",
                                     ip=None, at=sandbox_server.state.now())
    assert not check.ok and not check.login_ok
    assert "KSeF nie widzi uprawnień nadanych biuru" in check.text.pl


def test_a_client_with_the_office_nip_gets_a_clear_message(store, sandbox_server, sandbox_office):
    with store.write() as db:
        own = clients.create_client(db, clients.validate(nip=OFFICE_NIP, name="Biuro jako klient", email=""),
                                    actor="admin", at=NOW)
    with pytest.raises(WizardError) as refused:
        issue_request(store, client_id=own.id, method="grant", ksef=sandbox_server.client(), actor="admin",
                      at=sandbox_server.state.now())
    assert refused.value.code == "self_grant" and "NIP samego biura" in refused.value.text.pl
    assert sandbox_server.exchanges("/auth/challenge") == []
    check = grant_check.verify_grant(store, client_id=own.id, ksef=sandbox_server.client(), actor="admin", ip=None,
                                     at=sandbox_server.state.now())
    assert not check.ok and "NIP samego biura" in check.text.pl


def test_a_signer_who_cannot_grant_is_stopped_before_the_grant(
    store, client_company, sandbox_server, sandbox_office
):
    sandbox_server.seed_permissions(context_nip=client_company.nip, identifier_type="Nip", identifier=OTHER_NIP,
                                    permissions=["InvoiceRead"])
    progress = _method_1(store, sandbox_server, client_company, nip=OTHER_NIP)
    assert progress.done and not progress.ok
    rights = progress.request.followup["signer_rights"]
    assert rights["can_grant"] == "no" and rights["permissions"] == ["InvoiceRead"]
    assert progress.request.followup["error"]["code"] == "signer_cannot_grant"
    assert "nie ma prawa nadawania uprawnień" in progress.explanation.text.pl
    assert sandbox_server.exchanges("/permissions/entities/grants") == []  # nothing was sent
    assert _office_grants(sandbox_server, client_company) == set()


def test_a_person_may_be_the_owner_and_ksef_decides(store, client_company, sandbox_server, sandbox_office,
                                                    office_identity_stored):
    sandbox_server.seed_owner(nip=client_company.nip, pesel=PESEL)
    progress = _method_1(store, sandbox_server, client_company, pesel=PESEL)
    assert progress.ok
    assert progress.request.followup["signer_rights"]["can_grant"] == "unknown"
    with store.connect() as db:
        assert grant_check.latest_check(db, client_company.id).ok


def test_revoke_removes_the_grant_and_the_check_says_so(
    store, client_company, sandbox_server, sandbox_office, office_identity_stored
):
    assert _method_1(store, sandbox_server, client_company).ok
    assert _office_grants(sandbox_server, client_company) == {"InvoiceRead", "InvoiceWrite"}
    after = grant_check.revoke_grant(store, client_id=client_company.id, ksef=sandbox_server.client(),
                                     actor="admin", ip=None, at=sandbox_server.state.now(), poll_interval=0.0)
    assert _office_grants(sandbox_server, client_company) == set()
    assert not after.ok and not after.login_ok
    with store.connect() as db:
        assert db.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'ksef.permissions.revoke'").fetchone()[0] == 1


def test_revoke_without_the_client_session_says_what_to_do(
    store, client_company, sandbox_server, sandbox_office, office_identity_stored
):
    assert _method_1(store, sandbox_server, client_company).ok
    with pytest.raises(grant_check.GrantError) as refused:
        grant_check.revoke_grant(store, client_id=client_company.id, ksef=sandbox_server.client(), actor="admin",
                                 ip=None, at=sandbox_server.state.now() + timedelta(days=8))
    assert refused.value.code == "no_client_session" and "Aplikacji Podatnika" in refused.value.text.pl
    assert _office_grants(sandbox_server, client_company) == {"InvoiceRead", "InvoiceWrite"}


def test_grant_status_page_and_revoke_with_a_confirmation(
    app, web, store, client_company, sandbox_server, sandbox_office, office_identity_stored
):
    app.config["KLUCZNIK_CLOCK"] = sandbox_server.state.now
    app.config["KSEF_CLIENT_OPTIONS"] = {
        "retries": RetryPolicy(attempts=3, backoff=0.0, rate_limit_attempts=2, max_retry_after=1),
        "sleep": lambda seconds: None, "clock": sandbox_server.state.now, "timeout": (2.0, 5.0),
    }
    assert _method_1(store, sandbox_server, client_company).ok
    view = web.get(f"/clients/{client_company.id}")
    assert f'hx-get="/clients/{client_company.id}/grant"' in view.get_data(as_text=True)
    status = web.get(f"/clients/{client_company.id}/grant", htmx=True)
    soup = BeautifulSoup(status.get_data(as_text=True), "html.parser")
    assert soup.select_one("#grant-status")["data-authorized"] == "true"
    assert {tr["data-scope"] for tr in soup.select("tr[data-scope]")} == {"InvoiceRead", "InvoiceWrite"}
    assert "przeglądanie faktur" in soup.get_text()

    asked = web.post(f"/clients/{client_company.id}/grant/revoke", htmx=True)
    assert asked.status_code == 200 and "Odebrać uprawnienia biura" in asked.get_data(as_text=True)
    assert _office_grants(sandbox_server, client_company) == {"InvoiceRead", "InvoiceWrite"}  # not yet
    done = web.post(f"/clients/{client_company.id}/grant/revoke", {"confirm": "yes"}, htmx=True)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert _office_grants(sandbox_server, client_company) == set()
    soup = BeautifulSoup(done.get_data(as_text=True), "html.parser")
    assert soup.select_one("#grant-status")["data-authorized"] == "false"
