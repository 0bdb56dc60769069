"""Flow (2) in the sandbox: KSeF certificates enrolled from CSRs, issued for real, queried, revoked, used."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from klucznik import xades
from klucznik.certs.reading import is_ksef_issuer
from klucznik.certs.reading import ksef_type_of
from klucznik.ksef.environments import environment
from klucznik.ksef.errors import KsefError
from sandbox import signer
from sandbox.ca import KSEF_CA_NAME
from sandbox.ca import sandbox_ca_certificate

CLIENT = "5261040828"
PESEL = "90010112345"


def _csr(name: x509.Name, key=None) -> tuple[bytes, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    from cryptography.hazmat.primitives import serialization

    return csr.public_bytes(serialization.Encoding.DER), key


def _enroll(client, certificate_type: str, key=None):
    """Enroll with exactly the enrollment data; poll to the end; return (status, certificate, key)."""
    data = client.enrollment_data()
    der, key = _csr(data.x509_name(), key)
    accepted = client.enroll(
        name=f"Klucznik {certificate_type}", certificate_type=certificate_type, csr_der=der
    )
    first = client.enrollment_status(accepted.reference_number)
    assert first.status.code == 100
    final = client.enrollment_status(accepted.reference_number)
    if final.certificate_serial_number is None:
        return final, None, key
    (retrieved,) = client.retrieve([final.certificate_serial_number])
    return final, retrieved, key


def test_enrolled_certificates_follow_ksef_rules(sandbox_server):
    client = sandbox_server.login(CLIENT)
    for certificate_type, digital_signature in (("Authentication", True), ("Offline", False)):
        status, retrieved, key = _enroll(client, certificate_type)
        assert status.status.code == 200
        cert = x509.load_der_x509_certificate(retrieved.certificate_der)
        assert retrieved.serial_number == status.certificate_serial_number == f"{cert.serial_number:016X}"
        assert len(retrieved.serial_number) == 16
        assert retrieved.certificate_type == certificate_type
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature is digital_signature
        assert usage.content_commitment is (not digital_signature)
        years = cert.not_valid_after_utc.year - cert.not_valid_before_utc.year
        assert years == 2 and cert.not_valid_after_utc.month == cert.not_valid_before_utc.month
        assert KSEF_CA_NAME in cert.issuer.rfc4514_string()
        assert "Ministerstwo" not in cert.issuer.rfc4514_string()
        cert.verify_directly_issued_by(sandbox_ca_certificate())
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert cert.subject == client.enrollment_data().x509_name()
        assert is_ksef_issuer(cert.issuer)  # the portal accepts the sandbox as a KSeF issuer
        assert ksef_type_of(cert) == certificate_type


def test_dn_mismatch_gets_25003(sandbox_server):
    client = sandbox_server.login(CLIENT)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Ktoś Inny"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        ]
    )
    der, _ = _csr(name)
    with pytest.raises(KsefError) as caught:
        client.enroll(name="Klucznik Authentication", certificate_type="Authentication", csr_der=der)
    assert caught.value.codes == (25003,)
    assert "nie zgadzają" in caught.value.message_pl


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), 25010),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), 25010),
    ],
)
def test_wrong_key_gets_25010(sandbox_server, key, code):
    client = sandbox_server.login(CLIENT)
    der, _ = _csr(client.enrollment_data().x509_name(), key())
    with pytest.raises(KsefError) as caught:
        client.enroll(name="Klucznik Authentication", certificate_type="Authentication", csr_der=der)
    assert caught.value.codes == (code,)


def test_damaged_csr_gets_25004(sandbox_server):
    client = sandbox_server.login(CLIENT)
    der, _ = _csr(client.enrollment_data().x509_name())
    damaged = der[:-8] + bytes(8)
    with pytest.raises(KsefError) as caught:
        client.enroll(name="Klucznik Authentication", certificate_type="Authentication", csr_der=damaged)
    assert caught.value.codes == (25004,)


def test_limits_are_counted_and_enforced(sandbox_server):
    sandbox_server.seed_owner(nip=CLIENT, pesel=PESEL)
    client = sandbox_server.login(CLIENT, pesel=PESEL)
    limits = client.limits()
    assert (limits.enrollment_limit, limits.certificate_limit) == (12, 6)  # a PESEL's defaults
    _enroll(client, "Authentication")
    after = client.limits()
    assert after.enrollment_remaining == 11 and after.certificate_remaining == 5
    from sandbox.state import Identity

    sandbox_server.state.set_limits(Identity("Pesel", PESEL), enrollments=12, certificates=1)
    assert client.limits().can_request is False
    der, _ = _csr(client.enrollment_data().x509_name())
    with pytest.raises(KsefError) as full:
        client.enroll(name="Klucznik Offline", certificate_type="Offline", csr_der=der)
    assert full.value.codes == (25007,)
    sandbox_server.state.set_limits(Identity("Pesel", PESEL), enrollments=1, certificates=6)
    with pytest.raises(KsefError) as used:
        client.enroll(name="Klucznik Offline", certificate_type="Offline", csr_der=der)
    assert used.value.codes == (25006,)


def test_a_key_certified_for_another_subject_is_rejected(sandbox_server):
    first = sandbox_server.login(CLIENT)
    _, _, key = _enroll(first, "Authentication")
    other = sandbox_server.login("7762811692")
    status, retrieved, _ = _enroll(other, "Authentication", key)
    assert status.status.code == 400 and retrieved is None
    assert "innego podmiot" in status.status.details[0] or "inny podmiot" in status.status.details[0]


def test_query_and_revoke(sandbox_server):
    client = sandbox_server.login(CLIENT)
    auth_status, _, _ = _enroll(client, "Authentication")
    offline_status, _, _ = _enroll(client, "Offline")
    everything = client.query_certificates()
    assert {c.serial_number for c in everything.certificates} == {
        auth_status.certificate_serial_number,
        offline_status.certificate_serial_number,
    }
    assert all(
        c.subject_identifier_type == "Nip" and c.subject_identifier_value == CLIENT
        for c in everything.certificates
    )
    offline = client.query_certificates(certificate_type="Offline")
    assert [c.serial_number for c in offline.certificates] == [offline_status.certificate_serial_number]
    client.revoke_certificate(offline_status.certificate_serial_number, reason="Superseded")
    revoked = client.query_certificates(status="Revoked")
    assert [c.serial_number for c in revoked.certificates] == [offline_status.certificate_serial_number]
    with pytest.raises(KsefError) as again:
        client.revoke_certificate(offline_status.certificate_serial_number)
    assert again.value.codes == (25009,)
    with pytest.raises(KsefError) as unknown:
        client.revoke_certificate("0123456789ABCDEF")
    assert unknown.value.codes == (25008,)


def _login_with(sandbox_server, cert, key):
    client = sandbox_server.client()
    challenge = client.challenge()
    xml = xades.build_auth_token_request(challenge=challenge.challenge, nip=CLIENT)
    init = client.submit_xades(signer.sign(xml, certificate=cert, private_key=key, style="enveloped"))
    while True:
        status = client.auth_status(init.reference_number, init.authentication_token.token)
        if not status.status.in_progress:
            return status


def test_issued_authentication_certificate_logs_in_until_revoked(sandbox_server):
    client = sandbox_server.login(CLIENT)
    _, retrieved, key = _enroll(client, "Authentication")
    cert = x509.load_der_x509_certificate(retrieved.certificate_der)
    status = _login_with(sandbox_server, cert, key)
    assert status.status.code == 200 and status.authentication_method == "InternalCertificate"
    assert client.query_certificates().certificates[0].last_use_date is not None
    client.revoke_certificate(retrieved.serial_number)
    status = _login_with(sandbox_server, cert, key)
    assert status.status.code == 460 and status.status.details == ("Certyfikat odwołany",)


def test_offline_certificate_cannot_log_in(sandbox_server):
    client = sandbox_server.login(CLIENT)
    _, retrieved, key = _enroll(client, "Offline")
    status = _login_with(sandbox_server, x509.load_der_x509_certificate(retrieved.certificate_der), key)
    assert status.status.code == 460


# -- KOD II --------------------------------------------------------------------------------------


def _kod2_url(sandbox_server, serial: str, key, *, context: str = CLIENT, seller: str = CLIENT) -> str:
    qr = environment("sandbox", sandbox_server.root).qr_url
    invoice_hash = base64.urlsafe_b64encode(hashlib.sha256(b"<Faktura/>").digest()).rstrip(b"=").decode()
    url = f"{qr}/certificate/Nip/{context}/{seller}/{serial}/{invoice_hash}"
    to_sign = url.split("://", 1)[1].encode()
    r, s = decode_dss_signature(key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # IEEE P1363 R||S
    return f"{url}/{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _verdict(url: str) -> dict:
    response = requests.get(url, timeout=5, headers={"Accept": "application/json"})
    assert response.status_code == 200 and urlsplit(url).path.startswith("/qr/certificate/")
    return response.json()


def test_kod2_verification(sandbox_server):
    client = sandbox_server.login(CLIENT)
    _, offline, key = _enroll(client, "Offline")
    good = _kod2_url(sandbox_server, offline.serial_number, key)
    assert _verdict(good)["valid"] is True
    tampered = good.replace(f"/{CLIENT}/{CLIENT}/", f"/{CLIENT}/7762811692/")
    failed = {c["check"] for c in _verdict(tampered)["checks"] if not c["ok"]}
    assert {"signature", "seller"} <= failed
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert _verdict(_kod2_url(sandbox_server, offline.serial_number, other_key))["valid"] is False
    client.revoke_certificate(offline.serial_number)
    revoked = _verdict(good)
    assert revoked["valid"] is False
    assert [c["check"] for c in revoked["checks"] if not c["ok"]] == ["certificate_status"]


def test_kod2_refuses_an_authentication_certificate_and_unknown_serials(sandbox_server):
    client = sandbox_server.login(CLIENT)
    _, auth, key = _enroll(client, "Authentication")
    verdict = _verdict(_kod2_url(sandbox_server, auth.serial_number, key))
    assert [c["check"] for c in verdict["checks"] if not c["ok"]] == ["certificate_type"]
    unknown = _verdict(_kod2_url(sandbox_server, "0123456789ABCDEF", key))
    assert unknown["valid"] is False and unknown["checks"][0]["check"] == "certificate_exists"


def test_kod2_needs_invoice_write_in_the_context(sandbox_server):
    stranger = sandbox_server.login("7762811692")
    _, offline, key = _enroll(stranger, "Offline")
    verdict = _verdict(_kod2_url(sandbox_server, offline.serial_number, key))
    assert [c["check"] for c in verdict["checks"] if not c["ok"]] == ["permission"]
