"""The client and the sandbox on KSeF API 2.7: new enum values kept, 403 without a timestamp, technical
warnings (``X-System-Warning``) read, logged and shown, and ``PUT /testdata/certificates/{serialNumber}``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from klucznik import xades
from klucznik.ksef.errors import KsefError
from klucznik.ksef.errors import error_from_response
from klucznik.ksef.models import AuthStatus
from klucznik.ksef.warnings import parse
from sandbox import signer
from tests.sandbox.test_office_identity import office_page  # noqa: F401 - the office page fixture
from tests.sandbox.test_wizard_pages import sign
from tests.sandbox.test_wizard_pages import text
from tests.sandbox.test_wizard_pages import wiz  # noqa: F401 - the wizard fixture

CLIENT = "5261040828"
SIG_001 = "[sig-001]: Podpis nie spelnia wymagan profilu XAdES, zostanie odrzucony na DEMO i PRD"


# -- enums and error shapes ---------------------------------------------------------------------------


def test_collective_identifier_manage_is_kept_as_it_comes(sandbox_server):
    client = sandbox_server.login(CLIENT)
    client.testdata.grant(
        context_nip=CLIENT,
        identifier_type="Nip",
        identifier="7762811692",
        permissions=["CollectiveIdentifierManage", "InvoiceRead"],
    )
    office = sandbox_server.login(CLIENT, nip="7762811692")
    scopes = {p.permission_scope for p in office.query_personal_grants().permissions}
    assert scopes == {"CollectiveIdentifierManage", "InvoiceRead"}


def test_an_unknown_method_and_no_deprecated_field_are_tolerated():
    status = AuthStatus.from_json(
        {
            "startDate": "2026-12-01T09:00:00Z",
            "authenticationMethodInfo": {
                "category": "SomethingNew",
                "code": "future.method",
                "displayName": "Nowa metoda",
            },
            "status": {"code": 200, "description": "Uwierzytelnianie zakończone sukcesem"},
        }
    )
    assert status.authentication_method == "SomethingNew" and status.method_info.code == "future.method"


def test_forbidden_without_timestamp_trace_or_instance():
    response = requests.Response()
    response.status_code = 403
    response._content = json.dumps(
        {
            "title": "Forbidden",
            "status": 403,
            "detail": "Ta operacja nie jest dostępna dla użytej metody uwierzytelnienia.",
            "reasonCode": "auth-method-not-allowed",
            "security": {"authenticationMethodCategory": "Token"},
        }
    ).encode()
    response.headers["Content-Type"] = "application/problem+json"
    error = error_from_response(response)
    assert error.http_status == 403 and error.reason_code == "auth-method-not-allowed"
    assert error.trace_id is None and "podpisem kwalifikowanym" in error.message_pl


def test_a_403_from_the_sandbox_reads_the_same(sandbox_server):
    sandbox_server.seed_permissions(
        context_nip=CLIENT, identifier_type="Nip", identifier="7762811692", permissions=["InvoiceRead"]
    )
    client = sandbox_server.login(CLIENT, nip="7762811692")
    with pytest.raises(KsefError) as caught:
        client.grant_entity(nip="5252955037", full_name="Biuro", description="Biuro rachunkowe")
    assert caught.value.http_status == 403 and caught.value.reason_code == "missing-permissions"


# -- X-System-Warning ------------------------------------------------------------------------------


def test_warnings_are_read_with_their_codes():
    (one,) = parse(SIG_001, operation="POST /v2/auth/xades-signature")
    assert one.code == "sig-001" and one.message.startswith("Podpis nie spelnia")
    assert "ścisłego profilu XAdES" in one.text.pl and "[sig-001]" in one.text.en
    two = parse("[a-1]: first | [b-2]: second")
    assert [(w.code, w.message) for w in two] == [("a-1", "first"), ("b-2", "second")]
    assert "ostrzeżenie techniczne" in two[0].text.pl
    assert [(w.code, w.message) for w in parse("just words")] == [("unknown", "just words")]
    assert parse("") == () and parse(None) == ()


def test_the_client_collects_warnings_once(sandbox_server):
    client = sandbox_server.login(CLIENT)
    sandbox_server.warn("GET /certificates/limits", SIG_001)
    client.limits()
    client.limits()
    sandbox_server.warn("GET /certificates/limits", None)
    client.limits()
    taken = client.take_warnings()
    assert [(w.code, w.operation) for w in taken] == [("sig-001", "GET /v2/certificates/limits")] * 2
    assert client.take_warnings() == [] and len(client.warnings) == 2
    # as on TEST, a request's X-Test-System-Warning comes back
    client.session.headers["X-Test-System-Warning"] = "[test-1]: wymuszone"
    client.limits()
    assert [w.code for w in client.take_warnings()] == ["test-1"]


def test_a_warning_is_logged_and_shown_through_the_wizard(wiz):  # noqa: F811
    wiz.server.warn("POST /auth/xades-signature", SIG_001)
    attempt = wiz.new_attempt()
    assert wiz.upload(attempt, sign(wiz.download(attempt), nip=wiz.company.nip)).status_code == 200
    sent = wiz.submit(attempt)
    body = sent.get_data(as_text=True)
    assert 'id="ksef-warnings" hx-swap-oob="true"' in body
    assert "Ostrzeżenie KSeF" in text(sent) and "[sig-001]" in text(sent)
    assert "ścisłego profilu XAdES" in text(sent)
    final = wiz.follow(attempt)  # the attempt still succeeds, and the notice stays
    assert "[sig-001]" in text(final)
    page = wiz.web.get(wiz.url(attempt))
    assert page.get_data(as_text=True).count("data-ksef-warning") == 1
    with wiz.store.connect() as db:
        rows = db.execute(
            "SELECT client_id, ok, description, details FROM ksef_operations WHERE operation = 'system_warning'"
        ).fetchall()
        status = db.execute("SELECT status FROM auth_requests WHERE id = ?", [attempt.id]).fetchone()
    assert status == ("done",)
    ((client_id, ok, description, details),) = rows  # logged once, not at every poll
    assert client_id == wiz.company.id and ok == 1 and description.startswith("Podpis nie spelnia")
    assert json.loads(details) == {"code": "sig-001", "operation": "POST /v2/auth/xades-signature"}
    # a later attempt without warnings shows none
    wiz.server.warn("POST /auth/xades-signature", None)
    wiz.clock.offset += timedelta(seconds=5)
    later = wiz.new_attempt()
    assert "data-ksef-warning" not in wiz.web.get(wiz.url(later)).get_data(as_text=True)


# -- PUT /testdata/certificates/{serialNumber} -------------------------------------------------------


def _enroll_authentication(client):
    data = client.enrollment_data()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(data.x509_name()).sign(key, hashes.SHA256())
    accepted = client.enroll(
        name="Klucznik uwierzytelnienie",
        certificate_type="Authentication",
        csr_der=csr.public_bytes(serialization.Encoding.DER),
    )
    client.enrollment_status(accepted.reference_number)
    serial = client.enrollment_status(accepted.reference_number).certificate_serial_number
    (retrieved,) = client.retrieve([serial])
    return serial, x509.load_der_x509_certificate(retrieved.certificate_der), key


def test_a_certificate_shortened_in_the_sandbox_expires(sandbox_server):
    client = sandbox_server.login(CLIENT)
    serial, certificate, key = _enroll_authentication(client)
    now = sandbox_server.state.now()
    soon = (now + timedelta(days=5)).replace(microsecond=0)
    client.testdata.shorten_certificate(serial, valid_to=soon)
    (info,) = client.query_certificates(serial_number=serial).certificates
    assert info.valid_to == soon and info.status == "Active"
    assert certificate.not_valid_after_utc > soon  # the file the owner holds does not change
    # never later than the current end
    with pytest.raises(KsefError) as caught:
        client.testdata.shorten_certificate(serial, valid_to=soon + timedelta(days=1))
    assert caught.value.codes == (21405,)
    with pytest.raises(KsefError) as caught:
        client.testdata.shorten_certificate("0123456789ABCDEF", valid_to=soon)
    assert caught.value.codes == (25008,)
    # past its new end, KSeF shows it Expired and refuses a login with it
    sandbox_server.advance(days=6)
    (info,) = client.query_certificates(serial_number=serial).certificates
    assert info.status == "Expired"
    fresh = sandbox_server.client()
    challenge = fresh.challenge()
    signed = signer.sign(
        xades.build_auth_token_request(challenge=challenge.challenge, nip=CLIENT),
        certificate=certificate,
        private_key=key,
        style="enveloped",
    )
    with pytest.raises(KsefError) as caught:
        fresh.authenticate(signed, interval=0.0)
    assert caught.value.codes == (460,)


def test_a_warning_met_by_the_office_connection_check_is_logged(
    office_page,  # noqa: F811 - the imported fixture
    store,
    sandbox_server,
    office_identity_stored,
):
    sandbox_server.warn("POST /auth/xades-signature", SIG_001)
    assert office_page.post("/office/check", htmx=True).status_code == 200
    with store.connect() as db:
        rows = db.execute(
            "SELECT client_id, details FROM ksef_operations WHERE operation = 'system_warning'"
        ).fetchall()
    assert [(c, json.loads(d)["code"]) for c, d in rows] == [(None, "sig-001")]
