"""The sandbox's authentication rules, walked with the real client and real XAdES signatures."""

from __future__ import annotations

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from klucznik import xades
from klucznik.ksef.errors import KsefError
from sandbox import signer
from tests.fixtures.sandbox import SKIP_REQUEST_HEADER

CLIENT = "5261040828"
OFFICE = "7762811692"
PESEL = "90010112345"


def _submit(sandbox_server, client, signed: bytes):
    init = client.submit_xades(signed)
    first = client.auth_status(init.reference_number, init.authentication_token.token)
    second = client.auth_status(init.reference_number, init.authentication_token.token)
    return init, first, second


def test_company_seal_authenticates_in_its_own_context(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    assert len(challenge.challenge) == 36 and "-CR-" in challenge.challenge
    signed = sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    init, first, second = _submit(sandbox_server, client, signed)
    assert first.status.code == 100  # asynchronous: "in progress" first
    assert second.status.code == 200
    assert second.authentication_method == "QualifiedSeal"
    assert second.method_info.code == "xades.qualified-seal"
    tokens = client.redeem(init.authentication_token.token)
    assert tokens.refresh_token.valid_until > tokens.access_token.valid_until


@pytest.mark.parametrize("style", ["enveloped", "enveloping", "profil-zaufany"])
def test_person_linked_by_testdata_person_authenticates(sandbox_server, style):
    client = sandbox_server.client()
    client.testdata.person(nip=CLIENT, pesel=PESEL, description="Właściciel JDG")
    challenge = client.challenge()
    signed = sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, pesel=PESEL, style=style)
    init, _, status = _submit(sandbox_server, client, signed)
    assert status.status.code == 200
    expected = "TrustedProfile" if style == "profil-zaufany" else "QualifiedSignature"
    assert status.authentication_method == expected


def test_person_without_link_gets_415(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    signed = sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, pesel=PESEL)
    init, _, status = _submit(sandbox_server, client, signed)
    assert status.status.code == 415
    assert status.status.details == ("Brak przypisanych uprawnień",)
    error = status.error()
    assert error.codes == (415,) and "uprawnie" in error.message_pl
    with pytest.raises(KsefError) as caught:
        client.redeem(init.authentication_token.token)
    assert caught.value.codes == (21301,)


def test_testdata_permissions_let_a_person_in_and_revoke_takes_them_away(sandbox_server):
    client = sandbox_server.client()
    client.testdata.grant(
        context_nip=CLIENT,
        identifier_type="Pesel",
        identifier=PESEL,
        permissions=["InvoiceRead", "CredentialsManage"],
    )
    challenge = client.challenge()
    _, _, status = _submit(
        sandbox_server,
        client,
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, pesel=PESEL),
    )
    assert status.status.code == 200
    client.testdata.revoke(context_nip=CLIENT, identifier_type="Pesel", identifier=PESEL)
    challenge = client.challenge()
    _, _, status = _submit(
        sandbox_server,
        client,
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, pesel=PESEL),
    )
    assert status.status.code == 415


def test_wrong_signature_gets_9105(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    signed = sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    tampered = signed.replace(f"<Nip>{CLIENT}</Nip>".encode(), f"<Nip>{OFFICE}</Nip>".encode())
    assert tampered != signed
    with pytest.raises(KsefError) as caught:
        client.submit_xades(tampered)
    assert caught.value.http_status == 400
    assert caught.value.codes == (9105,)
    assert "podpis" in caught.value.message_pl.lower()


def test_unsigned_document_gets_9102(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    unsigned = xades.build_auth_token_request(challenge=challenge.challenge, nip=CLIENT)
    with pytest.raises(KsefError) as caught:
        client.submit_xades(unsigned)
    assert caught.value.codes == (9102,)


def test_not_xml_gets_21001(sandbox_server):
    with pytest.raises(KsefError) as caught:
        sandbox_server.client().submit_xades(b"%PDF-1.7 not xml")
    assert caught.value.codes == (21001,)


def test_unknown_challenge_gets_21111(sandbox_server):
    client = sandbox_server.client()
    client.challenge()
    signed = sandbox_server.signed_request(
        "20250514-CR-226FB7B000-3ACF9BE4C0-10", context_nip=CLIENT, nip=CLIENT
    )
    with pytest.raises(KsefError) as caught:
        client.submit_xades(signed)
    assert caught.value.codes == (21111,)
    assert "10 minut" in caught.value.message_pl


def test_challenge_expires_after_ten_minutes(sandbox_server):
    client = sandbox_server.client()
    fresh = client.challenge()
    stale = client.challenge()
    sandbox_server.advance(minutes=9, seconds=59)
    client.submit_xades(sandbox_server.signed_request(fresh.challenge, context_nip=CLIENT, nip=CLIENT))
    sandbox_server.advance(seconds=1)
    with pytest.raises(KsefError) as caught:
        client.submit_xades(sandbox_server.signed_request(stale.challenge, context_nip=CLIENT, nip=CLIENT))
    assert caught.value.codes == (21111,)


def test_challenge_works_once(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    signed = sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    client.submit_xades(signed)
    with pytest.raises(KsefError) as caught:
        client.submit_xades(signed)
    assert caught.value.codes == (21111,)


def test_redeem_works_once_and_not_before_success(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    init = client.submit_xades(
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    )
    with pytest.raises(KsefError) as early:
        client.redeem(init.authentication_token.token)
    assert early.value.codes == (21301,)
    assert any("(100)" in d for d in early.value.details)
    client.wait_for_auth(init, interval=0)
    client.redeem(init.authentication_token.token)
    with pytest.raises(KsefError) as again:
        client.redeem(init.authentication_token.token)
    assert again.value.codes == (21301,)
    assert any("zostały już pobrane" in d for d in again.value.details)


def test_refresh_gives_a_new_access_token(sandbox_server):
    client = sandbox_server.login(CLIENT)
    old = client.tokens.access
    new = client.refresh(client.tokens.refresh_token.token)
    assert new.token != old.token
    assert client.sessions().items[0].is_current


def test_revoked_session_stops_refreshing_and_shows_425(sandbox_server):
    client = sandbox_server.login(CLIENT)
    holder = client.tokens
    reference = client.sessions().items[0].reference_number
    client.revoke_current()
    assert client.tokens is None
    with pytest.raises(KsefError) as caught:
        client.refresh(holder.refresh_token.token)
    assert caught.value.codes == (21301,)
    other = sandbox_server.login(CLIENT)
    sessions = {s.reference_number: s for s in other.sessions().items}
    assert sessions[reference].status.code == 425
    assert not sessions[reference].is_current


def test_sessions_are_paged_with_a_continuation_token(sandbox_server):
    for _ in range(11):
        client = sandbox_server.login(CLIENT)
    first = client.sessions(page_size=10)
    assert len(first.items) == 10 and first.continuation_token
    second = client.sessions(page_size=10, continuation_token=first.continuation_token)
    assert len(second.items) == 1 and second.continuation_token is None
    with pytest.raises(KsefError) as caught:
        client.sessions(continuation_token="not base64!")
    assert caught.value.codes == (21418,)


def test_missing_or_wrong_token_gets_problem_details_401(sandbox_server):
    response = requests.get(
        f"{sandbox_server.url}/auth/sessions", headers={SKIP_REQUEST_HEADER: "1"}, timeout=5
    )
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["title"] == "Unauthorized"
    client = sandbox_server.login(CLIENT)
    with pytest.raises(KsefError) as caught:  # an access token is not an authentication token
        client.auth_status(client.sessions().items[0].reference_number, client.tokens.access_token())
    assert caught.value.http_status == 401


def test_both_error_formats(sandbox_server):
    legacy = sandbox_server.client(problem_details=False)
    with pytest.raises(KsefError) as caught:
        legacy.submit_xades(b"<<<")
    assert caught.value.codes == (21001,)
    raw = requests.post(
        f"{sandbox_server.url}/auth/xades-signature",
        data=b"<<<",
        headers={"Content-Type": "application/xml"},
        timeout=5,
    )
    assert raw.headers["Content-Type"].startswith("application/json")
    assert raw.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21001
    problem = requests.post(
        f"{sandbox_server.url}/auth/xades-signature",
        data=b"<<<",
        timeout=5,
        headers={"Content-Type": "application/xml", "X-Error-Format": "problem-details"},
    )
    assert problem.headers["Content-Type"].startswith("application/problem+json")
    assert problem.json()["errors"][0]["code"] == 21001


def _self_signed_seal(nip: str):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Firma Samopodpisana"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Firma Samopodpisana"),
        ]
    )
    from datetime import UTC
    from datetime import datetime
    from datetime import timedelta

    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def test_self_signed_is_accepted_like_test_unless_the_chain_is_verified(sandbox_server):
    cert, key = _self_signed_seal(CLIENT)
    client = sandbox_server.client()
    challenge = client.challenge()
    xml = xades.build_auth_token_request(challenge=challenge.challenge, nip=CLIENT)
    _, _, status = _submit(
        sandbox_server, client, signer.sign(xml, certificate=cert, private_key=key, style="enveloped")
    )
    assert status.status.code == 200
    challenge = client.challenge()
    xml = xades.build_auth_token_request(challenge=challenge.challenge, nip=CLIENT)
    init = client.submit_xades(
        signer.sign(xml, certificate=cert, private_key=key, style="enveloped"), verify_certificate_chain=True
    )
    with pytest.raises(KsefError) as caught:
        client.wait_for_auth(init, interval=0)
    assert caught.value.codes == (460,)
    assert "Niezaufany łańcuch certyfikatów" in caught.value.details


def test_blocked_context_gets_480_and_deceased_person_470(sandbox_server):
    client = sandbox_server.client()
    requests.post(
        f"{sandbox_server.url}/testdata/context/block",
        timeout=5,
        json={"contextIdentifier": {"type": "Nip", "value": CLIENT}},
    ).raise_for_status()
    challenge = client.challenge()
    _, _, status = _submit(
        sandbox_server,
        client,
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT),
    )
    assert status.status.code == 480
    client.testdata.person(nip=OFFICE, pesel=PESEL, is_deceased=True)
    challenge = client.challenge()
    _, _, status = _submit(
        sandbox_server,
        client,
        sandbox_server.signed_request(challenge.challenge, context_nip=OFFICE, pesel=PESEL),
    )
    assert status.status.code == 470


def test_auth_status_is_gone_after_seven_days(sandbox_server):
    sandbox_server.set_delays(authentication_token_ttl=30 * 24 * 3600)
    client = sandbox_server.client()
    challenge = client.challenge()
    init = client.submit_xades(
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    )
    sandbox_server.advance(days=6, hours=23)
    assert client.auth_status(init.reference_number, init.authentication_token.token).status.code == 100
    sandbox_server.advance(hours=1, seconds=1)
    with pytest.raises(KsefError) as caught:
        client.auth_status(init.reference_number, init.authentication_token.token)
    assert caught.value.http_status == 410


def _request_with_policy(challenge: str, rule: str) -> bytes:
    element = "Ip4Mask" if "/" in rule else "Ip4Range" if "-" in rule else "Ip4Address"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<AuthTokenRequest xmlns="http://ksef.mf.gov.pl/auth/token/2.0">'
        f"<Challenge>{challenge}</Challenge><ContextIdentifier><Nip>{CLIENT}</Nip></ContextIdentifier>"
        "<SubjectIdentifierType>certificateSubject</SubjectIdentifierType>"
        f"<AuthorizationPolicy><AllowedIps><{element}>{rule}</{element}></AllowedIps></AuthorizationPolicy>"
        "</AuthTokenRequest>"
    ).encode()


@pytest.mark.parametrize(
    ("rule", "allowed"), [("127.0.0.0/8", True), ("127.0.0.1-127.0.0.9", True), ("10.0.0.1", False)]
)
def test_allowed_ips_of_the_signed_request_are_enforced(sandbox_server, rule, allowed):
    from sandbox import ca

    client = sandbox_server.client()
    challenge = client.challenge()
    certificate, key = ca.qualified_identity(nip=CLIENT)
    signed = signer.sign(
        _request_with_policy(challenge.challenge, rule),
        certificate=certificate,
        private_key=key,
        style="enveloped",
    )
    client.authenticate(signed, interval=0)
    if allowed:
        assert client.sessions().items
        return
    with pytest.raises(KsefError) as caught:
        client.sessions()
    assert caught.value.http_status == 403 and caught.value.reason_code == "ip-not-allowed"
    assert "adresu IP" in caught.value.message_pl


def test_test_system_warning_is_echoed_and_collected(sandbox_server):
    client = sandbox_server.client()
    client.session.headers["X-Test-System-Warning"] = "[sig-001]: Format podpisu niezgodny"
    client.challenge()
    assert client.warnings == ["[sig-001]: Format podpisu niezgodny"]


def test_certificate_without_a_known_identifier_gets_460(sandbox_server):
    from datetime import UTC
    from datetime import datetime
    from datetime import timedelta

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Ktoś Bez Identyfikatora"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    client = sandbox_server.client()
    challenge = client.challenge()
    xml = xades.build_auth_token_request(challenge=challenge.challenge, nip=CLIENT)
    _, _, status = _submit(
        sandbox_server, client, signer.sign(xml, certificate=cert, private_key=key, style="enveloped")
    )
    assert status.status.code == 460
    assert status.status.details == ("Niepoprawny certyfikat",)


def test_other_sessions_can_be_revoked_and_test_data_undone(sandbox_server):
    first = sandbox_server.login(CLIENT)
    second = sandbox_server.login(CLIENT)
    reference = first.sessions().items[1].reference_number  # newest first: [second, first]
    second.revoke_session(reference)
    assert {s.reference_number: s.status.code for s in second.sessions().items}[reference] == 425
    with pytest.raises(KsefError) as caught:
        second.revoke_session("20250514-AU-0000000000-0000000000-00")
    assert caught.value.codes == (21304,)

    second.testdata.person(nip=OFFICE, pesel=PESEL)
    second.testdata.remove_person(nip=OFFICE)
    with pytest.raises(KsefError) as gone:  # nothing to log in with any more
        sandbox_server.login(OFFICE, pesel=PESEL)
    assert gone.value.codes == (415,)

    block = {"contextIdentifier": {"type": "Nip", "value": CLIENT}}
    requests.post(f"{sandbox_server.url}/testdata/context/block", json=block, timeout=5).raise_for_status()
    requests.post(f"{sandbox_server.url}/testdata/context/unblock", json=block, timeout=5).raise_for_status()
    assert sandbox_server.login(CLIENT).tokens is not None


def test_certificate_limits_can_be_set_through_testdata(sandbox_server):
    client = sandbox_server.login(CLIENT)
    response = requests.post(
        f"{sandbox_server.url}/testdata/limits/subject/certificate",
        timeout=5,
        headers={"Authorization": f"Bearer {client.tokens.access_token()}"},
        json={"subjectIdentifierType": "Nip", "enrollment": {"maxEnrollments": 3}},
    )
    assert response.status_code == 200
    limits = client.limits()
    assert (limits.enrollment_limit, limits.certificate_limit) == (3, 100)
