"""The KSeF login file: building it, signing it, and the check of valid files and of every §6 bad input."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import load_pem_x509_certificate
from lxml import etree

from klucznik import xades
from klucznik.errors import ValidationError
from klucznik.xades.messages import problem
from klucznik.xades.names import ALG_ENVELOPED
from klucznik.xades.names import NS_AUTH_20
from klucznik.xades.names import NS_AUTH_21
from klucznik.xades.names import XPATH_NOT_SIGNATURE
from klucznik.xades.request import XSD_PATH
from klucznik.xades.request import schema_errors
from klucznik.xades.signer import signer_from_certificate
from sandbox import signer
from tests.fixtures.signing import AT
from tests.fixtures.signing import CHALLENGE
from tests.fixtures.signing import EXPIRES_AT
from tests.fixtures.signing import NIP
from tests.fixtures.signing import OTHER_CHALLENGE
from tests.fixtures.signing import OTHER_NIP
from tests.fixtures.signing import PESEL

DATA = Path(__file__).resolve().parent.parent / "data" / "certs"
OFFICIAL = Path(__file__).resolve().parent.parent / "data" / "official"
#: SHA-256 of the official schemat_auth_v2-1.xsd (KSeF documentation), which the product ships unchanged.
OFFICIAL_XSD_SHA256 = "d48477808e342892f62ef8bc7f0b134812f0536b3bb9cc8433d4fff2a926c44c"


def codes(result: xades.CheckResult) -> list[str]:
    return [p.code for p in result.problems]


def only(result: xades.CheckResult, code: str) -> xades.Problem:
    assert not result.ok
    assert codes(result) == [code], result.problems
    return result.problems[0]


# --- building ------------------------------------------------------------------------------------------------


def test_built_request_is_byte_identical_to_the_official_nip_example():
    official = (OFFICIAL / "context-identifier-nip.xml").read_bytes()
    built = xades.build_auth_token_request(challenge="20250604-CR-461EA5B000-537A6BA15D-D7", nip="5265877635")
    assert built.rstrip(b"\n") == official.rstrip(b"\n")


def test_built_request_validates_against_the_official_2_1_schema_file():
    schema = etree.XMLSchema(etree.parse(str(XSD_PATH)))
    root = etree.fromstring(xades.build_auth_token_request(challenge=CHALLENGE, nip=NIP))
    assert etree.QName(root).namespace == NS_AUTH_20  # what KSeF's own clients send
    assert not schema.validate(root)  # the 2.1 schema has another namespace: a 2.0 file is not valid as is
    for el in root.iter():
        el.tag = f"{{{NS_AUTH_21}}}{etree.QName(el).localname}"
    assert schema.validate(root), schema.error_log
    assert (
        schema_errors(etree.fromstring(xades.build_auth_token_request(challenge=CHALLENGE, nip=NIP)))
        == []
    )


def test_schema_check_agrees_with_the_official_examples():
    for name in (
        "context-identifier-nip.xml",
        "context-identifier-internal-id.xml",
        "subject-identifier-type-certificate-subject.xml",
        "subject-identifier-type-certificate-fingerprint.xml",
    ):
        assert schema_errors(etree.parse(str(OFFICIAL / name)).getroot()) == [], name
    # the published XSD pattern for NipVatUe ends with a literal "$": the official example fails it (known bug)
    assert schema_errors(etree.parse(str(OFFICIAL / "context-identifier-nip-vat-ue.xml")).getroot())


def test_schema_check_refuses_a_wrong_element_order():
    bad = xades.build_auth_token_request(challenge=CHALLENGE, nip=NIP).replace(
        b"<SubjectIdentifierType>certificateSubject</SubjectIdentifierType>\n", b""
    )
    assert schema_errors(etree.fromstring(bad))


@pytest.mark.parametrize(
    "challenge",
    [
        "",
        "20250604-CR-461EA5B000-537A6BA15D-d7",
        "x" * 36,
        "20250604-CR-461EA5B000-537A6BA15D-D7</Challenge><x>",
    ],
)
def test_build_refuses_a_malformed_challenge(challenge):
    with pytest.raises(ValidationError) as info:
        xades.build_auth_token_request(challenge=challenge, nip=NIP)
    assert info.value.code == "challenge_invalid"


def test_build_normalises_and_checks_the_nip():
    built = xades.build_auth_token_request(challenge=CHALLENGE, nip="PL 526-104-08-28")
    assert b"<Nip>5261040828</Nip>" in built
    with pytest.raises(ValidationError):
        xades.build_auth_token_request(challenge=CHALLENGE, nip="5261040829")


# --- valid files -----------------------------------------------------------------------------------------------


def test_enveloped_seal_signature_passes_and_names_the_company(xades_kit):
    result = xades_kit.check(xades_kit.sign("enveloped"))
    assert result.ok, result.problems
    assert result.problems == ()
    assert result.signer == xades.Signer(kind="seal", nip=NIP, name="Przykładowa Spółka z o.o.")
    assert (result.challenge, result.nip, result.subject_type) == (CHALLENGE, NIP, "certificateSubject")
    assert result.style == "enveloped"
    assert result.certificate == xades_kit.seal.certificate
    assert result.signing_time == AT


def test_rsa_seal_signature_passes(xades_kit):
    assert xades_kit.check(xades_kit.sign("enveloped", identity=xades_kit.seal_rsa)).ok


def test_enveloping_signature_passes(xades_kit):
    signed = xades_kit.sign("enveloping")
    assert etree.QName(etree.fromstring(signed)).localname == "Signature"
    result = xades_kit.check(signed)
    assert result.ok, result.problems
    assert result.style == "enveloping"
    assert result.challenge == CHALLENGE


def test_enveloping_base64_signature_passes(xades_kit):
    signed = xades_kit.sign_with(xades.SigningOptions(style="enveloping", enveloping_base64=True))
    assert b"AuthTokenRequest" not in signed  # the request is only inside the base64 text
    result = xades_kit.check(signed)
    assert result.ok, result.problems
    assert result.nip == NIP


def test_person_signature_shows_name_and_masked_pesel(xades_kit):
    result = xades_kit.check(xades_kit.sign("enveloped", identity=xades_kit.person))
    assert result.ok, result.problems
    assert result.signer.kind == "person"
    assert result.signer.name == "Zenon Żółkiewski"
    assert result.signer.pesel == PESEL
    assert result.signer.pesel_masked == "*******1294"
    assert result.signer.as_dict() == {
        "kind": "person",
        "pesel_masked": "*******1294",
        "name": "Zenon Żółkiewski",
    }


@pytest.mark.parametrize("role_format", ["EPSignature", "PodpisZP"])
def test_profil_zaufany_signature_passes_and_names_the_person_from_the_claimed_role(xades_kit, role_format):
    signed = xades_kit.sign("profil-zaufany", role_format=role_format)
    assert XPATH_NOT_SIGNATURE.encode() in signed
    assert ALG_ENVELOPED.encode() not in signed
    result = xades_kit.check(signed)
    assert result.ok, result.problems
    # the certificate is the Ministry's seal; the person comes from the signed claimed role only
    assert result.certificate == xades_kit.ministry.certificate
    assert result.signer == xades.Signer(
        kind="trusted_profile", pesel=PESEL, pesel_masked="*******1294", name="Zenon Żółkiewski"
    )


def test_profil_zaufany_claimed_role_is_signed(xades_kit):
    signed = xades_kit.sign("profil-zaufany")
    forged = signed.replace(PESEL.encode(), b"99010112345")
    assert forged != signed
    assert only(xades_kit.check(forged), "bad_signature")


def test_filter2_signature_passes(xades_kit):
    assert xades_kit.check(xades_kit.sign_with(xades.SigningOptions(data_transform="filter2"))).ok


def test_sha1_digests_are_accepted_like_ksef_does(xades_kit):
    signed = xades_kit.sign_with(xades.SigningOptions(digest="http://www.w3.org/2000/09/xmldsig#sha1"))
    assert xades_kit.check(signed).ok


def test_ecdsa_signature_value_is_r_concat_s(xades_kit):
    signed = xades_kit.sign("enveloped")
    value = re.search(rb"<ds:SignatureValue[^>]*>([^<]+)<", signed).group(1)
    assert len(base64.b64decode(b"".join(value.split()))) == 64  # P-256: 32 + 32 bytes, not DER


def test_real_ksef_test_certificate_can_sign_and_be_checked(xades_kit):
    cert = load_pem_x509_certificate((DATA / "mf-test-seal-authentication.crt").read_bytes())
    key = load_pem_private_key((DATA / "mf-test-seal-authentication.key").read_bytes(), b"test!@#123TESTaaaa")
    signed = xades.sign_auth_token_request(
        xades_kit.request(nip="6852332948"), certificate=cert, private_key=key, signing_time=AT
    )
    result = xades_kit.check(signed, nip="6852332948")
    assert result.ok, result.problems
    assert result.signer.kind == "seal" and result.signer.nip == "6852332948"


def test_no_comparison_when_nothing_was_issued(xades_kit):
    signed = xades_kit.sign("enveloped", xml=xades_kit.request(challenge=OTHER_CHALLENGE, nip=OTHER_NIP))
    result = xades.check_signed_request(signed, challenge=None, nip=None, at=AT)
    assert result.ok, result.problems
    assert (result.challenge, result.nip) == (OTHER_CHALLENGE, OTHER_NIP)


def test_crlf_line_endings_still_pass(xades_kit):
    signed = xades_kit.sign("enveloped")
    assert xades_kit.check(signed.replace(b"\n", b"\r\n")).ok


def test_utf8_bom_is_stripped_and_not_forwarded(xades_kit):
    signed = xades_kit.sign("enveloped")
    result = xades_kit.check(b"\xef\xbb\xbf" + signed)
    assert result.ok, result.problems
    assert result.payload == signed


def test_payload_is_the_upload_unchanged(xades_kit):
    signed = xades_kit.sign("profil-zaufany")
    assert xades_kit.check(signed).payload == signed


def test_comment_inside_challenge_does_not_confuse_the_comparison(xades_kit):
    signed = xades_kit.sign("enveloped")
    commented = signed.replace(b"<Challenge>", b"<Challenge><!--x-->", 1)
    result = xades_kit.check(commented)
    assert result.ok, result.problems  # comments are outside exclusive c14n: the signature stays valid
    assert result.challenge == CHALLENGE
    assert b"<!--" not in result.signed_content


def test_check_result_json_shape(xades_kit):
    data = xades_kit.check(xades_kit.sign("enveloped", identity=xades_kit.person)).as_dict()
    assert data == {
        "ok": True,
        "signer": {"kind": "person", "pesel_masked": "*******1294", "name": "Zenon Żółkiewski"},
        "problems": [],
    }


# --- every refusal, one by one -------------------------------------------------------------------------------------


def test_1_unsigned_file(xades_kit):
    p = only(xades_kit.check(xades_kit.request()), "not_signed")
    assert p.message_pl.startswith("Plik nie zawiera podpisu.")
    assert "signed file" in p.message_en


def test_2_detached_signature(xades_kit):
    enveloping = xades_kit.sign("enveloping").decode()
    detached = re.sub(r'URI="#Object-[0-9a-f]+"', 'URI="AuthTokenRequest.xml"', enveloping)
    detached = re.sub(r"<ds:Object Id=\"Object-.*?</ds:Object>", "", detached, flags=re.S)
    p = only(xades_kit.check(detached.encode()), "detached_signature")
    assert "podpis zewnętrzny" in p.message_pl
    assert "detached" in p.message_en


def test_3_validly_signed_other_challenge(xades_kit):
    signed = xades_kit.sign("enveloped", xml=xades_kit.request(challenge=OTHER_CHALLENGE))
    p = only(xades_kit.check(signed), "challenge_mismatch")
    assert p.message_pl == (
        "Ten plik dotyczy innej próby logowania. Pobierz plik ponownie z tej strony, podpisz go i wgraj."
    )


def test_4_validly_signed_other_nip(xades_kit):
    signed = xades_kit.sign("enveloped", xml=xades_kit.request(nip=OTHER_NIP))
    p = only(xades_kit.check(signed), "nip_mismatch")
    assert (
        p.message_pl == "Podpisany plik dotyczy innej firmy (NIP 779-243-35-27) niż wybrana (526-104-08-28)."
    )
    assert p.message_en == (
        "The signed file is for a different company (NIP 779-243-35-27) than the one selected "
        "(526-104-08-28)."
    )


def test_5_challenge_older_than_ten_minutes(xades_kit):
    signed = xades_kit.sign("enveloped")
    assert xades_kit.check(signed, at=EXPIRES_AT.replace(second=0) - (EXPIRES_AT - AT) / 100).ok
    p = only(xades_kit.check(signed, at=EXPIRES_AT), "challenge_expired")
    assert p.message_pl.startswith("Minęło ponad 10 minut")


@pytest.mark.parametrize("style", ["enveloped", "enveloping", "profil-zaufany"])
def test_6_content_changed_after_signing(xades_kit, style):
    signed = xades_kit.sign(style)
    edited = signed.replace(b"1A2B3C4D5E", b"1A2B3C4D5F")
    assert edited != signed
    p = only(
        xades_kit.check(edited, challenge=CHALLENGE.replace("1A2B3C4D5E", "1A2B3C4D5F")), "bad_signature"
    )
    assert p.message_pl.startswith("Treść pliku zmieniono po podpisaniu")


def test_7_opened_and_resaved(xades_kit):
    signed = xades_kit.sign("enveloped")
    root = etree.fromstring(signed, etree.XMLParser(remove_blank_text=True))
    resaved = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    p = only(xades_kit.check(resaved), "bad_signature")
    assert p.message_pl.startswith("Plik został zmieniony po podpisaniu (np. otwarty i zapisany w edytorze).")
    assert "opened and saved" in p.message_en


def test_7_changed_prefix_is_refused(xades_kit):
    signed = xades_kit.sign("enveloped")
    prefixed = signed.replace(b'<AuthTokenRequest xmlns="', b'<a:AuthTokenRequest xmlns:a="').replace(
        b"</AuthTokenRequest>", b"</a:AuthTokenRequest>"
    )
    prefixed = re.sub(
        rb"<(/?)(Challenge|ContextIdentifier|Nip|SubjectIdentifierType)>", rb"<\1a:\2>", prefixed
    )
    assert only(xades_kit.check(prefixed), "bad_signature")


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b"PK\x03\x04\x14\x00\x06\x00",
        b"just some text",
        b"",
        b"   \n",
    ],
)
def test_8_not_xml(xades_kit, data):
    p = only(xades_kit.check(data), "not_xml")
    assert (
        p.message_pl == "To nie jest plik XML. Podpisz plik AuthTokenRequest.xml w formacie XAdES (nie PDF)."
    )


def test_9_unsupported_encodings(xades_kit):
    signed = xades_kit.sign("profil-zaufany")  # the person's name (with Polish letters) is in the text
    assert "Żółkiewski".encode() in signed
    utf16 = signed.decode("utf-8").replace("UTF-8", "UTF-16").encode("utf-16")
    cp1250 = signed.decode("utf-8").replace("UTF-8", "windows-1250").encode("cp1250")
    invalid = signed.replace("Żółkiewski".encode(), "Żółkiewski".encode("cp1250"))
    for data in (utf16, cp1250, invalid):
        p = only(xades_kit.check(data), "not_xml")
        assert p.message_pl.startswith("Plik ma nieobsługiwane kodowanie znaków.")


DTD_ATTACKS = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<AuthTokenRequest xmlns="http://ksef.mf.gov.pl/auth/token/2.0"><Challenge>&x;</Challenge>'
    b"</AuthTokenRequest>",
    "billion_laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b']><AuthTokenRequest xmlns="http://ksef.mf.gov.pl/auth/token/2.0">&lol9;</AuthTokenRequest>',
    "plain_doctype": b'<?xml version="1.0"?><!DOCTYPE AuthTokenRequest>'
    b'<AuthTokenRequest xmlns="http://ksef.mf.gov.pl/auth/token/2.0"/>',
}


@pytest.mark.parametrize("name", sorted(DTD_ATTACKS))
def test_11_12_dtd_and_entities(xades_kit, name):
    p = only(xades_kit.check(DTD_ATTACKS[name]), "dtd_forbidden")
    assert p.message_pl == "Plik zawiera niedozwoloną deklarację DTD."


def test_11_dtd_inside_a_validly_signed_file(xades_kit):
    signed = xades_kit.sign("enveloped")
    with_dtd = signed.replace(b"?>\n", b'?>\n<!DOCTYPE AuthTokenRequest [<!ENTITY e "x">]>\n', 1)
    assert only(xades_kit.check(with_dtd), "dtd_forbidden")


def test_13_too_large(xades_kit):
    signed = xades_kit.sign("enveloped")
    huge = signed.replace(
        b"</AuthTokenRequest>", b"<!--" + b"x" * xades.MAX_BYTES + b"--></AuthTokenRequest>"
    )
    p = only(xades_kit.check(huge), "too_large")
    assert p.message_pl == "Plik jest za duży (maks. 1 MB)."
    assert p.message_en == "The file is too large (max 1 MB)."


def test_13_deep_nesting_is_refused_without_crashing(xades_kit):
    deep = b"<a>" * 5000 + b"</a>" * 5000
    assert not xades_kit.check(deep).ok


@pytest.mark.parametrize(
    "root",
    [
        b'<Faktura xmlns="http://crd.gov.pl/wzor/2025/06/25/13775/"><Naglowek/></Faktura>',
        b'<InitSessionSignedRequest xmlns="http://ksef.mf.gov.pl/schema/gtw/svc/online/auth/request/2021/10/01/0001"/>',
        b'<AuthTokenRequest xmlns="http://example.com/not-ksef"><Challenge/></AuthTokenRequest>',
        b"<AuthTokenRequest/>",
    ],
)
def test_14_wrong_root(xades_kit, root):
    p = only(xades_kit.check(root), "wrong_root")
    assert p.message_pl == "To nie jest plik logowania do KSeF wygenerowany przez ten portal."


def test_14_signed_file_of_another_kind(xades_kit):
    invoice = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Faktura xmlns="http://crd.gov.pl/wzor/2025/06/25/13775/"/>'
    )
    assert only(xades_kit.check(xades_kit.sign("enveloped", xml=invoice)), "wrong_root")


def test_request_the_portal_never_generates_is_refused(xades_kit):
    fingerprint = xades_kit.request().replace(b"certificateSubject", b"certificateFingerprint")
    assert only(xades_kit.check(xades_kit.sign("enveloped", xml=fingerprint)), "wrong_root")


def test_schema_invalid_but_validly_signed(xades_kit):
    unsigned = xades_kit.request().replace(
        b"  <SubjectIdentifierType>certificateSubject</SubjectIdentifierType>\n", b""
    )
    p = only(xades_kit.check(xades_kit.sign("enveloped", xml=unsigned)), "schema_invalid")
    assert "schematem KSeF" in p.message_pl


def test_every_code_has_both_messages():
    for code in xades.PROBLEM_CODES:
        p = problem(code, n=1, x="1", y="2")
        assert p.code == code and p.message_pl and p.message_en and p.message_pl != p.message_en


def test_several_comparison_problems_are_reported_together(xades_kit):
    signed = xades_kit.sign("enveloped", xml=xades_kit.request(challenge=OTHER_CHALLENGE, nip=OTHER_NIP))
    result = xades_kit.check(signed, at=EXPIRES_AT)
    assert codes(result) == ["challenge_mismatch", "nip_mismatch", "challenge_expired"]
    assert result.signer is not None  # who signed is still shown


def test_sandbox_signer_refuses_unknown_style_and_pz_without_pesel(xades_kit):
    with pytest.raises(xades.XadesError):
        signer.sign(
            xades_kit.request(),
            certificate=xades_kit.seal.certificate,
            private_key=xades_kit.seal.private_key,
            style="detached",
        )
    with pytest.raises(xades.XadesError):  # a seal has no PESEL to put into the claimed role
        signer.sign(
            xades_kit.request(),
            certificate=xades_kit.seal.certificate,
            private_key=xades_kit.seal.private_key,
            style="profil-zaufany",
        )


def test_sandbox_signer_reads_the_person_from_a_personal_certificate(xades_kit):
    signed = signer.sign(
        xades_kit.request(),
        certificate=xades_kit.person.certificate,
        private_key=xades_kit.person.private_key,
        style="profil-zaufany",
        signing_time=AT,
    )
    result = xades_kit.check(signed)
    assert result.ok and result.signer.kind == "trusted_profile" and result.signer.pesel == PESEL


def _cert_with(*pairs):
    from datetime import UTC
    from datetime import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )


def test_signer_from_certificate_subjects():
    from cryptography.x509.oid import NameOID as N

    seal_serial = _cert_with(
        (N.COUNTRY_NAME, "PL"),
        (N.ORGANIZATION_NAME, "Firma"),
        (N.SERIAL_NUMBER, "VATPL-5261040828"),
        (N.COMMON_NAME, "Firma"),
    )
    assert signer_from_certificate(seal_serial) == xades.Signer(kind="seal", nip=NIP, name="Firma")
    person_nip = _cert_with(
        (N.GIVEN_NAME, "Jan"),
        (N.SURNAME, "Kowalski"),
        (N.SERIAL_NUMBER, "TINPL-5261040828"),
        (N.COMMON_NAME, "Jan Kowalski"),
    )
    assert signer_from_certificate(person_nip) == xades.Signer(
        kind="person", nip=NIP, name="Jan Kowalski"
    )
    person_pesel = _cert_with(
        (N.GIVEN_NAME, "Jan"), (N.SURNAME, "Kowalski"), (N.SERIAL_NUMBER, "PESEL-88102341294")
    )
    signer = signer_from_certificate(person_pesel)
    assert (signer.kind, signer.pesel_masked, signer.name) == ("person", "*******1294", "Jan Kowalski")
    unknown = _cert_with((N.COMMON_NAME, "Ktoś"))
    assert signer_from_certificate(unknown) == xades.Signer(kind="person", name="Ktoś")
    # the real KSeF TEST samples
    from cryptography.x509 import load_pem_x509_certificate

    ksef_person = load_pem_x509_certificate((DATA / "mf-test-authentication.crt").read_bytes())
    assert signer_from_certificate(ksef_person) == xades.Signer(
        kind="person", nip="5795955811", name="Clyde Alchfrin"
    )
    ksef_seal = load_pem_x509_certificate((DATA / "mf-test-seal-authentication.crt").read_bytes())
    assert signer_from_certificate(ksef_seal).kind == "seal"


# --- interoperability with an independent implementation (signxml) ---------------------------------------------


def _pem(identity):
    from cryptography.hazmat.primitives import serialization

    key = identity.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key, identity.certificate.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("rsa", [False, True])
def test_our_signature_verifies_in_signxml(xades_kit, rsa):
    from signxml.xades import XAdESSignatureConfiguration
    from signxml.xades import XAdESVerifier

    identity = xades_kit.seal_rsa if rsa else xades_kit.seal
    signed = xades.sign_auth_token_request(
        xades_kit.request(),
        certificate=identity.certificate,
        private_key=identity.private_key,
        signing_time=AT,
    )
    _, cert_pem = _pem(identity)
    results = XAdESVerifier().verify(
        signed,
        x509_cert=cert_pem,
        expect_config=XAdESSignatureConfiguration(expect_references=True, verification_time=AT),
    )
    # signxml checks the data digest, the SignedProperties digest and the SigningCertificate digest
    assert etree.QName(results[0].signed_xml).localname == "AuthTokenRequest"
    assert len(results) == 2


def test_a_signxml_xades_signature_passes_our_check(xades_kit):
    from signxml import methods
    from signxml.xades import XAdESSigner

    key_pem, cert_pem = _pem(xades_kit.seal_rsa)
    root = XAdESSigner(method=methods.enveloped).sign(
        etree.fromstring(xades_kit.request()), key=key_pem, cert=cert_pem
    )
    signed = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    assert b"xml-c14n11" in signed  # signxml's default canonicalization, and a reference to the certificate
    result = xades_kit.check(signed)
    assert result.ok, result.problems
    assert result.signer.nip == NIP


def test_the_shipped_schema_is_the_official_file_unchanged():
    assert hashlib.sha256(XSD_PATH.read_bytes()).hexdigest() == OFFICIAL_XSD_SHA256
    shared = Path(__file__).resolve().parents[3] / "shared" / "ksef" / "official" / "schemat_auth_v2-1.xsd"
    if shared.is_file():  # beside the checkout on the developers' machines: compare with the source too
        assert XSD_PATH.read_bytes() == shared.read_bytes()
