"""Latarnia's availability (settable for tests and demos), the test signer (CLI and web page), the CA."""

from __future__ import annotations

import io

import requests
from click.testing import CliRunner
from cryptography import x509

import sandbox
from cli import main
from klucznik import xades
from sandbox import ca

CHALLENGE = "20250514-CR-226FB7B000-3ACF9BE4C0-10"
NIP = "5261040828"
PESEL = "90010112345"


def test_availability_is_available_then_failure_then_back(sandbox_server):
    client = sandbox_server.client()
    assert client.latarnia.status().available
    assert client.latarnia.messages() == ()
    sandbox_server.set_availability("FAILURE", title="Awaria KSeF", text="Niedostępność systemu.")
    status = client.latarnia.status()
    assert status.status == "FAILURE" and not status.available
    (message,) = status.messages
    assert (message.category, message.type, message.title) == ("FAILURE", "FAILURE_START", "Awaria KSeF")
    assert message.start is not None and message.end is None
    sandbox_server.set_availability("AVAILABLE")
    messages = client.latarnia.messages()
    assert [m.type for m in messages] == ["FAILURE_START", "FAILURE_END"]
    assert messages[0].event_id == messages[1].event_id


def test_availability_can_be_set_over_http(sandbox_server):
    response = requests.post(
        f"{sandbox_server.root}/_sandbox/availability", json={"status": "MAINTENANCE"}, timeout=5
    )
    assert response.status_code == 200
    status = sandbox_server.client().latarnia.status()
    assert status.status == "MAINTENANCE"
    assert status.messages[0].type == "MAINTENANCE_ANNOUNCEMENT"
    bad = requests.post(f"{sandbox_server.root}/_sandbox/availability", json={"status": "SUNNY"}, timeout=5)
    assert bad.status_code == 400


def test_latarnia_faults_are_retried_like_any_read(sandbox_server):
    sandbox_server.inject("GET /latarnia/status", "error", status=503, times=1)
    assert sandbox_server.client().latarnia.status().available
    assert len(sandbox_server.sleeps) == 1


def _check(data: bytes):
    from datetime import UTC
    from datetime import datetime

    return xades.check_signed_request(data, challenge=CHALLENGE, nip=NIP, at=datetime(2026, 6, 1, tzinfo=UTC))


def test_cli_signs_as_a_seal_and_as_a_person(tmp_path):
    source = tmp_path / "AuthTokenRequest.xml"
    source.write_bytes(xades.build_auth_token_request(challenge=CHALLENGE, nip=NIP))
    runner = CliRunner()
    for args, kind in (
        (["--nip", NIP, "--style", "enveloped"], "seal"),
        (["--pesel", PESEL, "--style", "enveloping"], "person"),
        (["--pesel", PESEL, "--style", "profil-zaufany"], "trusted_profile"),
    ):
        target = tmp_path / f"signed-{kind}.xml"
        result = runner.invoke(main, ["sandbox", "sign", *args, str(source), str(target)])
        assert result.exit_code == 0, result.output
        verdict = _check(target.read_bytes())
        assert verdict.ok, verdict.problems
        assert verdict.signer.kind == kind
        assert ca.qualified_ca().issued(verdict.certificate)


def test_cli_refuses_unclear_identities(tmp_path):
    source = tmp_path / "in.xml"
    source.write_bytes(xades.build_auth_token_request(challenge=CHALLENGE, nip=NIP))
    runner = CliRunner()
    both = runner.invoke(
        main, ["sandbox", "sign", "--nip", NIP, "--pesel", PESEL, str(source), str(tmp_path / "o")]
    )
    assert both.exit_code == 2 and "exactly one" in both.output
    pz = runner.invoke(main, ["sandbox", "sign", "--nip", NIP, "--style", "profil-zaufany", str(source), "-"])
    assert pz.exit_code == 2 and "--pesel" in pz.output


def test_signer_web_page_signs_an_upload():
    app = sandbox.create_app({"TESTING": True})
    web = app.test_client()
    page = web.get("/sign")
    assert page.status_code == 200 and b"<script" not in page.data and b"style=" not in page.data
    xml = xades.build_auth_token_request(challenge=CHALLENGE, nip=NIP)
    signed = web.post(
        "/sign",
        data={"file": (io.BytesIO(xml), "AuthTokenRequest.xml"), "pesel": PESEL, "style": "profil-zaufany"},
        content_type="multipart/form-data",
    )
    assert signed.status_code == 200
    assert "AuthTokenRequest.signed.xml" in signed.headers["Content-Disposition"]
    verdict = _check(signed.data)
    assert verdict.ok and verdict.signer.kind == "trusted_profile" and verdict.signer.pesel == PESEL


def test_signer_web_page_explains_missing_input():
    web = sandbox.create_app({"TESTING": True}).test_client()
    answer = web.post("/sign", data={"nip": NIP}, content_type="multipart/form-data")
    assert answer.status_code == 422
    assert "Wybierz plik XML" in answer.get_data(as_text=True)
    xml = xades.build_auth_token_request(challenge=CHALLENGE, nip=NIP)
    answer = web.post("/sign", data={"file": (io.BytesIO(xml), "a.xml")}, content_type="multipart/form-data")
    assert answer.status_code == 422 and "NIP" in answer.get_data(as_text=True)


def test_cas_are_named_as_sandboxes_and_identities_are_stable():
    for authority in (ca.ksef_ca(), ca.qualified_ca()):
        subject = authority.certificate.subject.rfc4514_string()
        assert "Klucznik" in subject and "sandbox" in subject.lower()
        assert "Ministerstwo Finansów" not in subject
    assert "Klucznik Sandbox KSeF CA" in ca.sandbox_ca_certificate().subject.rfc4514_string()
    cert, key = ca.qualified_identity(nip=NIP)
    again, _ = ca.qualified_identity(nip=NIP)
    assert again.public_key().public_numbers() == key.public_key().public_numbers()
    org_id = cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_IDENTIFIER)[0].value
    assert org_id == f"VATPL-{NIP}"
    person, _ = ca.qualified_identity(pesel=PESEL, name="Anna Nowak")
    assert person.subject.get_attributes_for_oid(x509.oid.NameOID.SERIAL_NUMBER)[0].value == f"PNOPL-{PESEL}"
    assert not ca.ksef_ca().issued(cert)


def test_ca_certificate_is_served_over_http(sandbox_server):
    pem = requests.get(f"{sandbox_server.root}/_sandbox/ca.pem", timeout=5)
    assert x509.load_pem_x509_certificate(pem.content) == ca.sandbox_ca_certificate()


def test_state_file_keeps_test_data_grants_and_certificates(tmp_path):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from sandbox.state import Identity
    from sandbox.state import Person

    path = tmp_path / "sandbox-state.json"
    first = sandbox.create_app({"TESTING": True, "SANDBOX_STATE_FILE": str(path)})
    web = first.test_client()
    assert (
        web.post(
            "/v2/testdata/person",
            json={"nip": NIP, "pesel": PESEL, "isBailiff": False, "description": "Właściciel"},
        ).status_code
        == 200
    )
    state = sandbox.state_of(first)
    state.grant_entity(
        NIP,
        subject_nip="7762811692",
        permissions=[{"type": "InvoiceRead"}],
        description="Dostęp biura",
        full_name="Biuro Rachunkowe Test",
    )
    state.operations[next(iter(state.operations))].polls = 5
    auth, _, _ = state.start_auth(
        context_nip=NIP,
        identity=Identity("Nip", NIP),
        method="QualifiedSeal",
        method_code="x",
        method_name="x",
        failure=None,
        subject_attributes={"commonName": "Firma", "countryName": "PL"},
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Firma"),
                    x509.NameAttribute(x509.oid.NameOID.COUNTRY_NAME, "PL"),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    enrollment = state.enroll(
        auth,
        name="Klucznik Offline",
        certificate_type="Offline",
        csr_der=csr.public_bytes(serialization.Encoding.DER),
        valid_from=None,
    )
    enrollment.polls = 5
    state.enrollment(Identity("Nip", NIP), enrollment.reference)
    assert web.post("/v2/testdata/person/remove", json={"nip": "1060000062"}).status_code == 200  # saves

    second = sandbox.state_of(sandbox.create_app({"TESTING": True, "SANDBOX_STATE_FILE": str(path)}))
    assert second.persons[(NIP, PESEL)] == Person(nip=NIP, pesel=PESEL, description="Właściciel")
    assert second.permissions_in(NIP, Identity("Nip", "7762811692")) == {"InvoiceRead"}
    (restored,) = second.certificates_of(Identity("Nip", NIP))
    assert restored.serial == enrollment.serial and restored.certificate_type == "Offline"
    assert second.limits_for(Identity("Nip", NIP))["enrollment"]["remaining"] == 299


#: SHA-256 of the official open-api-2.7.json (KSeF API 2.7.0) in the team's shared/ksef/official/.
OFFICIAL_OPENAPI_SHA256 = "90f54f34d4a89f7533fb2f1b6c30bd14c286f4e5136ed6ba7056d77df80e255b"


def test_the_shipped_openapi_document_is_the_official_one():
    import hashlib
    from pathlib import Path

    from sandbox.spec import SPEC_CANDIDATES

    (shipped,) = SPEC_CANDIDATES
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == OFFICIAL_OPENAPI_SHA256
    # Where the team's reference folder sits beside the checkout (developers' machines, CI), compare too.
    reference = Path(__file__).resolve().parents[3] / "shared" / "ksef" / "official" / "open-api-2.7.json"
    if reference.is_file():
        assert shipped.read_bytes() == reference.read_bytes()
