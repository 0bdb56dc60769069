"""The wizard's domain steps against the real sandbox (loopback): challenge → signed file → KSeF → tokens → grant
or certificates, with failures (expired challenge, refused signer, invalid certificate, a 503)."""

from __future__ import annotations

import threading
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from klucznik import xades
from klucznik.authorize.enroll import confirm
from klucznik.authorize.flow import advance
from klucznik.authorize.requests import WizardError
from klucznik.authorize.requests import get_request
from klucznik.authorize.session import active_tokens
from klucznik.authorize.signed_xml import check_upload
from klucznik.authorize.signed_xml import issue_request
from klucznik.authorize.signed_xml import submit
from klucznik.ksef.errors import KsefError
from klucznik.ksef.statuses import AUTH_STATUS_CODES
from klucznik.ksef.statuses import explain_auth_status
from klucznik.records import clients
from klucznik.records import office
from sandbox import ca
from sandbox import signer
from tests.fixtures.sandbox import OFFICE_NIP
from tests.support.defaults import NOW

PESEL = "88102341294"


@pytest.fixture
def setup(store, client_company, sandbox_server, sandbox_office):
    """An office configured for the sandbox, the client company, and a KSeF client with recorded sleeps."""
    return store, client_company, sandbox_server


def _issue(setup, method="grant"):
    store, company, server = setup
    ksef = server.client()
    at = server.state.now()
    request = issue_request(
        store, client_id=company.id, method=method, ksef=ksef, actor="admin", at=at
    )
    return request, ksef, at


def _sign(request, *, nip=None, pesel=None, style="enveloped", identity=None):
    certificate, key = identity or ca.qualified_identity(nip=nip, pesel=pesel)
    return signer.sign(request.unsigned_xml, certificate=certificate, private_key=key, style=style)


def _run(setup, request, ksef, at, *, limit=20):
    store, _, _ = setup
    progress = None
    for i in range(limit):
        progress = advance(
            store, request_id=request.id, ksef=ksef, actor="admin", at=at + timedelta(seconds=i)
        )
        if progress.done:
            return progress
        if progress.request.awaiting_user:  # method 2 shows the limits first: go ahead with the defaults
            confirm(store, request_id=request.id, actor="admin", at=at + timedelta(seconds=i))
    raise AssertionError(f"not finished: {progress}")


def test_issue_stores_the_unsigned_file_and_its_expiry(setup):
    store, company, server = setup
    request, _, at = _issue(setup)
    assert request.status == "issued"
    assert request.expires_at == request.challenge_timestamp + timedelta(minutes=10)
    assert request.unsigned_xml == xades.build_auth_token_request(
        challenge=request.challenge, nip=company.nip
    )
    assert request.challenge in server.state.challenges
    with store.connect() as db:
        ops = list(db.execute("SELECT operation, ok FROM ksef_operations").fetchall())
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log").fetchall()]
    assert ("auth.challenge", 1) in ops
    assert "ksef.auth.challenge" in actions


@pytest.mark.parametrize("style", ["enveloped", "enveloping", "profil-zaufany"])
def test_method_1_whole_flow_grants_the_office(setup, style):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    if style == "profil-zaufany":
        server.seed_owner(nip=company.nip, pesel=PESEL)
        signed = _sign(request, pesel=PESEL, style=style)
    else:
        signed = _sign(request, nip=company.nip, style=style)
    result = check_upload(store, request_id=request.id, data=signed, actor="admin", at=at)
    assert result.ok, result.problems
    submitted = submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    assert submitted.status == "submitted" and submitted.reference_number
    # KSeF received the uploaded bytes unchanged
    assert server.exchanges("/auth/xades-signature")[-1].body == signed
    progress = _run(setup, request, ksef, at)
    assert progress.ok, progress
    with store.connect() as db:
        tokens = active_tokens(db, company.id)
        row = db.execute("SELECT context_nip, status FROM ksef_tokens").fetchall()
        assert clients.get_client(db, company.id).auth_method == "grant"
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
    assert tokens is not None and row == [(company.nip, "active")]
    assert {
        "ksef.auth.upload",
        "ksef.auth.submit",
        "ksef.auth.success",
        "ksef.permissions.grant",
        "ksef.permissions.granted",
    } <= set(actions)
    grants = [
        g
        for g in server.state.grants.values()
        if g.context_nip == company.nip and g.subject_nip == OFFICE_NIP
    ]
    assert {g.scope for g in grants} == {"InvoiceRead", "InvoiceWrite"}


def test_method_2_enrolls_and_stores_two_generated_certificates(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup, method="portal_certs")
    assert check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    ).ok
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    progress = _run(setup, request, ksef, at)
    assert progress.ok, progress
    with store.connect() as db:
        creds = db.execute(
            "SELECT slot, origin, ksef_type, status, certificate, private_key, key_password "
            "FROM credentials WHERE client_id = ? ORDER BY slot",
            [company.id],
        ).fetchall()
        assert clients.get_client(db, company.id).auth_method == "portal_certs"
        followup = get_request(db, request.id).followup
    assert [(c[0], c[1], c[2], c[3]) for c in creds] == [
        ("offline", "generated", "Offline", "active"),
        ("online", "generated", "Authentication", "active"),
    ]
    for c in creds:
        cert = x509.load_der_x509_certificate(c[4])
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value.endswith(
            company.nip
        )
        assert b"PRIVATE KEY" in c[5] and c[6] is None
    assert all("key" not in e for e in followup["enrollments"].values())  # keys moved into credentials only

    # a second run supersedes (never deletes) the first pair
    request2, ksef2, at2 = _issue(setup, method="portal_certs")
    check_upload(
        store, request_id=request2.id, data=_sign(request2, nip=company.nip), actor="admin", at=at2
    )
    submit(store, request_id=request2.id, ksef=ksef2, actor="admin", at=at2)
    assert _run(setup, request2, ksef2, at2).ok
    with store.connect() as db:
        statuses = sorted(
            r[0]
            for r in db.execute("SELECT status FROM credentials WHERE client_id = ?", [company.id]).fetchall()
        )
    assert statuses == ["active", "active", "superseded", "superseded"]


def test_expired_challenge_is_refused_before_sending(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    signed = _sign(request, nip=company.nip)
    late = request.expires_at + timedelta(seconds=1)
    result = check_upload(store, request_id=request.id, data=signed, actor="admin", at=late)
    assert [p.code for p in result.problems] == ["challenge_expired"]
    # checked in time, but the confirm button pressed too late
    assert check_upload(store, request_id=request.id, data=signed, actor="admin", at=at).ok
    with pytest.raises(WizardError) as info:
        submit(store, request_id=request.id, ksef=ksef, actor="admin", at=late)
    assert info.value.code == "challenge_expired"
    assert info.value.message_pl.startswith("Minęło ponad 10 minut")
    assert server.exchanges("/auth/xades-signature") == []
    with store.connect() as db:
        assert get_request(db, request.id).status == "expired"


def test_challenge_expired_at_ksef_is_explained(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    assert check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    ).ok
    server.advance(minutes=11)  # KSeF's clock ran past the challenge although ours did not
    with pytest.raises(KsefError) as info:
        submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    assert 21111 in info.value.codes
    with store.connect() as db:
        failed = get_request(db, request.id)
        op = db.execute(
            "SELECT ok, http_status, ksef_code FROM ksef_operations WHERE operation = ?",
            ["auth.xades_signature"],
        ).fetchone()
    assert failed.status == "failed" and failed.status_code == 21111
    assert op == (0, 400, 21111)


def test_signer_without_permissions_is_refused_by_ksef_with_status_415(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    signed = _sign(request, pesel=PESEL)  # a person who is not linked to the company
    assert check_upload(store, request_id=request.id, data=signed, actor="admin", at=at).ok
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    progress = _run(setup, request, ksef, at)
    assert not progress.ok and progress.request.status == "failed"
    assert progress.explanation.code == 415
    assert progress.explanation.message_pl.startswith("Podpisujący nie ma w KSeF uprawnień do tej firmy.")
    with store.connect() as db:
        assert active_tokens(db, company.id) is None


def _expired_seal(nip: str):
    root_cert, root_key = ca.qualified_ca().certificate, ca.qualified_ca().private_key
    key = ca.qualified_identity(nip=nip)[1]
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Firma"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Pieczęć wygasła"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2021, 1, 1, tzinfo=UTC))
        .sign(root_key, hashes.SHA256())
    )
    return cert, key


def test_expired_certificate_is_refused_by_ksef_with_status_460(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    signed = _sign(request, identity=_expired_seal(company.nip))
    assert check_upload(store, request_id=request.id, data=signed, actor="admin", at=at).ok
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    progress = _run(setup, request, ksef, at)
    assert progress.request.status == "failed"
    assert progress.explanation.code == 460
    assert progress.explanation.message_en.startswith(
        "The signing certificate is not valid (Nieważny certyfikat)"
    )


def test_503_once_keeps_the_file_for_another_try(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    signed = _sign(request, nip=company.nip)
    assert check_upload(store, request_id=request.id, data=signed, actor="admin", at=at).ok
    server.inject("POST /auth/xades-signature", "error", status=503, times=1)
    with pytest.raises(KsefError) as info:
        submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    assert info.value.http_status == 503
    with store.connect() as db:
        assert get_request(db, request.id).status == "checked"
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    assert _run(setup, request, ksef, at).ok
    bodies = [e.body for e in server.exchanges("/auth/xades-signature")]
    assert bodies == [signed, signed]


def test_polling_503_is_a_passing_notice(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    )
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    server.inject("GET /auth/{referenceNumber}", "error", status=503, times=10)
    progress = advance(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    assert not progress.done and progress.notice is not None and progress.request.status == "submitted"
    server.clear_faults()
    assert _run(setup, request, ksef, at).ok


def _submitted(setup):
    store, company, _ = setup
    request, ksef, at = _issue(setup)
    signed = _sign(request, nip=company.nip)
    assert check_upload(store, request_id=request.id, data=signed, actor="admin", at=at).ok
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    return request, ksef, at


def test_login_only_stops_at_ksef_answer_on_the_login(setup):
    store, _, server = setup
    request, ksef, at = _submitted(setup)
    statuses = [advance(store, request_id=request.id, ksef=ksef, actor="link:1", at=at, login_only=True)
                .request.status for _ in range(4)]
    assert statuses == ["submitted", "authenticated", "authenticated", "authenticated"]
    assert server.exchanges("/permissions/entities/grants") == []  # the grant is the office's to start
    assert _run(setup, request, ksef, at).ok  # and the office's page takes it from there


def test_two_rounds_at_once_redeem_the_login_once(setup):
    """The client's link page and the office's page follow one attempt: only one of them asks KSeF at a time
    (a second redeem would be refused, and that refusal would end the attempt that had just succeeded)."""
    store, _, server = setup
    request, ksef, at = _submitted(setup)
    assert advance(store, request_id=request.id, ksef=ksef, actor="admin", at=at).request.status == "submitted"
    server.inject("POST /auth/token/redeem", "slow", delay=1.0)
    first = []
    thread = threading.Thread(target=lambda: first.append(
        advance(store, request_id=request.id, ksef=ksef, actor="admin", at=at, login_only=True)))
    thread.start()
    while not server.exchanges("/auth/token/redeem"):  # the first round is waiting for its tokens
        time.sleep(0.01)
    second = advance(store, request_id=request.id, ksef=server.client(), actor="link:1", at=at)
    thread.join()
    assert second.request.status == "submitted" and second.notice is None  # as stored, KSeF not asked
    assert first[0].request.status == "authenticated"
    assert len(server.exchanges("/auth/token/redeem")) == 1
    assert _run(setup, request, ksef, at).ok


def test_bad_upload_is_not_stored_and_cannot_be_submitted(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    result = check_upload(
        store, request_id=request.id, data=request.unsigned_xml, actor="admin", at=at
    )
    assert [p.code for p in result.problems] == ["not_signed"]
    with pytest.raises(WizardError):
        submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    with store.connect() as db:
        assert get_request(db, request.id).signed_xml is None


def test_every_auth_status_code_is_explained_in_both_languages():
    seen = set()
    for code in (100, 200, 415, 425, 450, 460, 470, 480, 500, 550):
        e = explain_auth_status(code, "opis", ("szczegół",))
        assert e.message_pl and e.message_en and e.message_pl != e.message_en
        assert e.final == (code != 100) and e.ok == (code == 200)
        seen.add(e.message_pl)
    assert len(seen) == 10
    assert set(AUTH_STATUS_CODES) == {100, 200, 415, 425, 450, 460, 470, 480, 500, 550}
    assert explain_auth_status(999).final


def test_a_second_submit_cannot_send_the_file_twice(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    )
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    with pytest.raises(WizardError) as info:
        submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    assert info.value.code == "wrong_state"
    assert len(server.exchanges("/auth/xades-signature")) == 1
    assert _run(setup, request, ksef, at).ok  # the first send is not disturbed


def test_a_bad_file_after_a_good_one_leaves_nothing_to_send(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    assert check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    ).ok
    assert not check_upload(store, request_id=request.id, data=b"%PDF-1.4", actor="admin", at=at).ok
    with store.connect() as db:
        reset = get_request(db, request.id)
    assert (reset.status, reset.signed_xml, reset.signer) == ("issued", None, None)
    with pytest.raises(WizardError):
        submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)


def test_a_send_interrupted_by_a_stopped_portal_can_be_retried(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    )
    with store.write() as db:  # what a crash between the claim and KSeF's answer leaves behind
        db.execute("UPDATE auth_requests SET status = 'sending' WHERE id = ?", [request.id])
    early = advance(
        store, request_id=request.id, ksef=ksef, actor="admin", at=at + timedelta(seconds=30)
    )
    assert early.request.status == "sending"
    later = advance(
        store, request_id=request.id, ksef=ksef, actor="admin", at=at + timedelta(minutes=3)
    )
    assert later.request.status == "checked"


def test_refused_submission_is_explained_in_plain_words(setup):
    store, company, server = setup
    request, ksef, at = _issue(setup)
    check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    )
    server.advance(minutes=11)
    with pytest.raises(KsefError):
        submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    with store.connect() as db:
        explanation = get_request(db, request.id).explanation()
    assert explanation.code == 21111 and explanation.final and not explanation.ok
    assert "wyzwanie" in explanation.message_pl.lower() or "wyzwani" in explanation.message_pl.lower()
    assert explanation.message_pl != explanation.message_en


def test_missing_office_nip_stops_method_1_with_a_reason(setup):
    store, company, server = setup
    with store.write() as db:
        office.save_office(
            db,
            office.OfficeProfile(name="Biuro", nip="", ksef_environment="sandbox", sandbox_url=server.url),
            actor="admin", at=NOW
        )
    request, ksef, at = _issue(setup)
    check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    )
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    progress = _run(setup, request, ksef, at)
    assert progress.request.status == "failed"
    assert progress.explanation.message_pl.startswith("Uzupełnij NIP biura")
    with store.connect() as db:
        assert active_tokens(db, company.id) is not None  # the login itself succeeded and is kept


def test_certificate_limit_stops_method_2_before_any_request(setup):
    from sandbox.state import Identity

    store, company, server = setup
    server.state.set_limits(Identity("Nip", company.nip), enrollments=1, certificates=1)
    request, ksef, at = _issue(setup, method="portal_certs")
    check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    )
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    progress = _run(setup, request, ksef, at)
    assert progress.request.status == "failed"
    assert "limit" in progress.explanation.message_en
    assert server.exchanges("/certificates/enrollments") == []


def test_generated_authentication_certificate_logs_in_to_ksef(setup):
    """Method 2's stored credential works: the portal signs its own login file with it and KSeF accepts it."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    store, company, server = setup
    request, ksef, at = _issue(setup, method="portal_certs")
    check_upload(
        store, request_id=request.id, data=_sign(request, nip=company.nip), actor="admin", at=at
    )
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    assert _run(setup, request, ksef, at).ok
    with store.connect() as db:
        der, key_pem = db.execute(
            "SELECT certificate, private_key FROM credentials WHERE client_id = ? AND slot = 'online' "
            "AND status = 'active'",
            [company.id],
        ).fetchone()
    certificate = x509.load_der_x509_certificate(der)
    key = load_pem_private_key(key_pem, None)
    client = server.client()
    challenge = client.challenge()
    xml = xades.build_auth_token_request(challenge=challenge.challenge, nip=company.nip)
    signed = xades.sign_auth_token_request(xml, certificate=certificate, private_key=key)
    assert xades.check_signed_request(
        signed, challenge=challenge.challenge, nip=company.nip, at=challenge.timestamp
    ).ok
    init = client.submit_xades(signed)
    status = client.wait_for_auth(init, interval=0.0)
    assert status.status.code == 200
    assert status.method_info.code == "xades.internal-certificate"
