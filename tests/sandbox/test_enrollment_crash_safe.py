"""Method 2 against the real sandbox: limits first, the go-ahead, keys stored before any request, faults at every
step (5xx, 429, dropped connections), the proof login, and a certificate never left without its key."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.serialization import PublicFormat

from klucznik.authorize.enroll import confirm
from klucznik.authorize.flow import advance
from klucznik.authorize.requests import WizardError
from klucznik.records import clients
from klucznik.records import enrollments
from sandbox.state import Identity
from tests.fixtures.sandbox import OFFICE_NIP
from tests.support.method2 import every_issued_certificate_has_its_key
from tests.support.method2 import go
from tests.support.method2 import public_der
from tests.support.method2 import run
from tests.support.method2 import to_review

PESEL = "88102341294"


@pytest.fixture
def setup(store, client_company, sandbox_server, sandbox_office):
    return store, client_company, sandbox_server


def test_limits_first_nothing_requested_before_the_go_ahead(setup):
    store, company, server = setup
    request, at = to_review(store, server, company)
    review = request.followup["review"]
    assert request.awaiting_user and request.status == "authenticated"
    assert review["certificate_remaining"] == 100 and review["enrollment_remaining"] == 300
    assert review["existing"] == [] and review["person"] is False
    assert server.exchanges("/certificates/enrollments") == []
    # polling while waiting sends nothing
    advance(store, request_id=request.id, ksef=server.client(), actor="admin", at=at)
    assert server.exchanges("/certificates/enrollments") == []

    done = go(store, server, request, at)
    assert done.ok, done
    with store.connect() as db:
        rows = enrollments.for_request(db, request.id)
        creds = db.execute("SELECT id, slot, certificate, private_key, ksef_environment FROM credentials "
                           "WHERE status = 'active' ORDER BY slot").fetchall()
        token_status = db.execute("SELECT status FROM ksef_tokens").fetchall()
        assert clients.get_client(db, company.id).auth_method == "portal_certs"
    assert [r.status for r in rows] == ["stored", "stored"]
    assert {r.credential_id for r in rows} == {c[0] for c in creds}
    for _, _, der, key, environment in creds:  # each certificate with its own key, of this environment
        certificate = x509.load_der_x509_certificate(bytes(der))
        assert public_der(bytes(key)) == certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        assert environment == "sandbox"
    assert done.request.followup["proof"]["ok"] is True  # logged in with the new Authentication certificate
    assert token_status == [("ended",)]  # the client's session was ended
    client_auths = [a for a in server.state.auths.values() if a.certificate_serial is None]
    assert all(a.revoked for a in client_auths)
    assert every_issued_certificate_has_its_key(store, server, company.nip) == 2


def test_existing_certificates_and_a_person_are_flagged_before_enrolling(setup):
    store, company, server = setup
    server.seed_owner(nip=company.nip, pesel=PESEL)
    first, at = to_review(store, server, company, pesel=PESEL)
    assert first.followup["review"]["person"] is True
    assert first.followup["review"]["pesel_masked"].endswith("1294")
    assert go(store, server, first, at).ok
    second, at = to_review(store, server, company, pesel=PESEL)
    existing = second.followup["review"]["existing"]
    assert {c["type"] for c in existing} == {"Authentication", "Offline"}
    assert second.awaiting_user


def test_rsa_keys_on_request(setup):
    store, company, server = setup
    request, at = to_review(store, server, company)
    assert go(store, server, request, at, key_type="rsa").ok
    with store.connect() as db:
        ders = [bytes(r[0]) for r in db.execute("SELECT certificate FROM credentials WHERE status = 'active'")]
    for der in ders:
        key = x509.load_der_x509_certificate(der).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048


def test_one_signature_also_grants_the_office(setup):
    store, company, server = setup
    request, at = to_review(store, server, company)
    done = go(store, server, request, at, also_grant=True)
    assert done.ok and done.request.followup["grant"]["ok"] is True
    assert {g.scope for g in server.state.grants.values()
            if g.active and g.context_nip == company.nip and g.subject_nip == OFFICE_NIP} == {"InvoiceRead", "InvoiceWrite"}
    with store.connect() as db:
        assert clients.get_client(db, company.id).auth_method == "portal_certs"


def test_no_certificates_left_stops_with_a_clear_message(setup):
    store, company, server = setup
    server.state.set_limits(Identity("Nip", company.nip), enrollments=300, certificates=1)
    request, _ = to_review(store, server, company)
    assert request.status == "failed"
    assert "wyczerpany limit" in request.explanation().text.pl and "certyfikatów 1 z 1" in request.explanation().text.pl
    assert server.exchanges("/certificates/enrollments") == []


def test_confirm_twice_is_refused(setup):
    store, company, server = setup
    request, at = to_review(store, server, company)
    confirm(store, request_id=request.id, actor="admin", at=at)
    with pytest.raises(WizardError):
        confirm(store, request_id=request.id, actor="admin", at=at)


FAULT_STEPS = [
    "GET /certificates/limits",
    "POST /certificates/query",
    "GET /certificates/enrollments/data",
    "POST /certificates/enrollments",
    "GET /certificates/enrollments/{referenceNumber}",
    "POST /certificates/retrieve",
    "DELETE /auth/sessions/current",
    "POST /auth/challenge",
    "POST /auth/xades-signature",
    "GET /auth/{referenceNumber}",
    "POST /auth/token/redeem",
]


@pytest.mark.parametrize("kind", ["error", "rate_limit", "drop"])
@pytest.mark.parametrize("endpoint", FAULT_STEPS)
def test_faults_at_every_step_resume_and_never_lose_a_key(setup, endpoint, kind):
    store, company, server = setup
    before_review = endpoint in ("GET /certificates/limits", "POST /certificates/query")
    if not before_review:
        request, at = to_review(store, server, company)
        confirm(store, request_id=request.id, actor="admin", at=at)
    options = {"status": 503} if kind == "error" else {}
    server.inject(endpoint, kind, times=4, **options)  # more than the client's own retries
    if before_review:
        request, at = to_review(store, server, company)
        if request.awaiting_user:
            confirm(store, request_id=request.id, actor="admin", at=at)
    done = run(store, server, request.id, at, rounds=40)
    assert [kind] * 4 == [k for e, k in server.state.faults.hits if e == endpoint]  # the fault struck 4 times
    assert done.ok, done
    assert done.request.followup["proof"]["ok"] is True
    with store.connect() as db:
        assert db.execute("SELECT COUNT(*) FROM credentials WHERE status = 'active'").fetchone()[0] == 2
    assert every_issued_certificate_has_its_key(store, server, company.nip) >= 2
