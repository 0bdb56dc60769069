"""klucznik.certificates: the real TEST samples, every key format, every problem code, set-level rules."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from klucznik import certs as c
from klucznik.certs.model import SANDBOX_ISSUER_MARK
from klucznik.certs.model import SLOT_TYPES
from klucznik.errors import ValidationError
from klucznik.ids import Identity
from tests.support.certificates import AT
from tests.support.certificates import COMPANY_NIP
from tests.support.certificates import OPENSSL_FORMATS
from tests.support.certificates import OTHER_NIP
from tests.support.certificates import PASSWORD
from tests.support.certificates import PESEL
from tests.support.certificates import ca
from tests.support.certificates import cert_der
from tests.support.certificates import cert_pem
from tests.support.certificates import certificate
from tests.support.certificates import ec_key
from tests.support.certificates import good_pair
from tests.support.certificates import key_pem
from tests.support.certificates import openssl
from tests.support.certificates import pkcs12_file
from tests.support.certificates import reencode
from tests.support.certificates import rsa_key
from tests.support.certificates import sample
from tests.support.certificates import traditional_args


def codes(result) -> list[str]:
    """The problem codes of a check result, in order."""
    problems = result.all_problems if isinstance(result, c.SetCheck) else result.problems
    return [p.code for p in problems]


def pair(slot="online", *, crt, key, password=PASSWORD, nip=COMPANY_NIP, at=AT):
    """check_pair with the test defaults."""
    return c.check_pair(slot=slot, crt=crt, key=key, password=password, at=at, nip=nip)


# --- the real KSeF TEST samples -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["person", "seal"])
def test_real_test_sample_is_accepted_in_the_online_slot(name):
    s = sample(name)
    result = pair(crt=s.crt, key=s.key, password=s.password, nip=s.nip)
    assert result.ok, result.problems
    assert result.problems == ()
    info = result.certificate
    assert info.ksef_type == "Authentication"
    assert info.serial == s.serial
    assert info.identity == Identity("NIP", s.nip, s.nip)
    assert info.issuer_common_name == "TEST CCK KSeF" and info.ksef_issuer
    assert info.key_algorithm == "EC P-256"
    assert result.key.encrypted
    assert result.key.data == s.key


def test_person_sample_identity_comes_from_tinpl_serial_number_and_seal_from_vatpl():
    person = c.load_certificate(sample("person").crt)
    seal = c.load_certificate(sample("seal").crt)
    assert "serialNumber=TINPL-5795955811" in person.subject
    assert "organizationIdentifier=VATPL-6852332948" in seal.subject
    assert person.identity.value == "5795955811" and seal.identity.value == "6852332948"


def test_real_sample_in_offline_slot_is_wrong_slot_and_names_the_online_section():
    s = sample("seal")
    result = pair("offline", crt=s.crt, key=s.key, password=s.password, nip=s.nip)
    assert codes(result) == ["wrong_slot"]
    assert "sekcji „Certyfikat uwierzytelniania (online)”" in result.problems[0].message_pl


def test_real_sample_wrong_and_missing_password():
    s = sample("person")
    assert codes(pair(crt=s.crt, key=s.key, password="qwertyuiop@12345", nip=s.nip)) == ["wrong_password"]
    assert codes(pair(crt=s.crt, key=s.key, password=None, nip=s.nip)) == ["password_required"]
    assert codes(pair(crt=s.crt, key=s.key, password="", nip=s.nip)) == ["password_required"]


def test_wrong_password_whose_decryption_happens_to_pass_the_padding_check_is_still_wrong_password():
    # About one wrong password in 200 decrypts AES-CBC to bytes with valid-looking padding; cryptography
    # then fails with a DER parse error instead of "Incorrect password". This password was found once for
    # the real sample key (its salt and IV are fixed in the file), so the case is hit every run.
    s = sample("seal")
    with pytest.raises(ValueError, match="Could not deserialize key data"):
        serialization.load_pem_private_key(s.key, password=b"Qwertyuiop@122")
    assert codes(pair(crt=s.crt, key=s.key, password="Qwertyuiop@122", nip=s.nip)) == ["wrong_password"]


def test_real_sample_validity_boundaries():
    s = sample("person")
    info = c.load_certificate(s.crt)
    assert codes(pair(crt=s.crt, key=s.key, password=s.password, nip=s.nip, at=info.not_after)) == [
        "expires_soon"
    ]
    after = info.not_after + timedelta(seconds=1)
    assert codes(pair(crt=s.crt, key=s.key, password=s.password, nip=s.nip, at=after)) == ["expired"]
    before = info.not_before - timedelta(seconds=1)
    result = pair(crt=s.crt, key=s.key, password=s.password, nip=s.nip, at=before)
    assert codes(result) == ["not_yet_valid"] and result.ok
    assert "21.01.2026" in result.problems[0].message_pl


def test_the_two_samples_do_not_share_a_key():
    person, seal = sample("person"), sample("seal")
    result = pair(crt=person.crt, key=seal.key, password=seal.password, nip=person.nip)
    assert codes(result) == ["key_mismatch"]


# --- certificate formats ---------------------------------------------------------------------------


def test_der_certificate_has_the_same_fingerprint_as_its_pem():
    s = sample("seal")
    pem = c.load_certificate(s.crt)
    der = c.load_certificate(cert_der(pem.certificate))
    assert der.fingerprint == pem.fingerprint and der.der == pem.der


@pytest.mark.parametrize("order", ["leaf-first", "ca-first"])
def test_pem_chain_uses_the_leaf_with_a_note(order):
    key = ec_key("online")
    leaf = certificate(key=key)
    ca_cert, _ = ca()
    blocks = [cert_pem(leaf), cert_pem(ca_cert)]
    crt = b"".join(blocks if order == "leaf-first" else blocks[::-1])
    result = pair(crt=crt, key=key_pem(key))
    assert result.ok and result.problems == ()
    assert result.certificate.serial == f"{leaf.serial_number:016X}"
    assert len(result.notes) == 1 and "2 certyfikaty" in result.notes[0].message_pl


@pytest.mark.parametrize("variant", ["crlf", "utf8-bom", "utf16", "trailing-junk"])
def test_pem_text_variants_are_accepted(variant):
    crt, key = good_pair()
    if variant == "crlf":
        crt, key = crt.replace(b"\n", b"\r\n"), key.replace(b"\n", b"\r\n")
    elif variant == "utf8-bom":
        crt = b"\xef\xbb\xbf" + crt
    elif variant == "utf16":
        crt = crt.decode().encode("utf-16")
    else:
        crt = b"Certyfikat KSeF\n" + crt + b"\n\n  \n"
    assert pair(crt=crt, key=key).ok


def test_certificate_file_with_the_key_inside_is_accepted_with_a_note():
    crt, key = good_pair()
    result = pair(crt=crt + key, key=key)
    assert result.ok
    assert any("klucz prywatny" in n.message_pl for n in result.notes)


# --- key formats (re-encoded with the openssl command line) -----------------------------------------


@pytest.mark.parametrize("name", sorted(OPENSSL_FORMATS))
def test_every_pkcs8_format_from_openssl_is_accepted(name):
    args, encrypted = OPENSSL_FORMATS[name]
    key = ec_key("online")
    crt = cert_pem(certificate(key=key))
    encoded = reencode(key, args)
    result = pair(crt=crt, key=encoded, password=PASSWORD if encrypted else None)
    assert result.ok, result.problems
    assert result.key.encrypted is encrypted
    assert result.key.data == encoded
    if encrypted:
        assert codes(pair(crt=crt, key=encoded, password="wrong")) == ["wrong_password"]
        assert codes(pair(crt=crt, key=encoded, password=None)) == ["password_required"]


@pytest.mark.parametrize("kind", ["ec", "rsa"])
@pytest.mark.parametrize(("encrypted", "der"), [(False, False), (True, False), (False, True)])
def test_traditional_sec1_and_pkcs1_keys_are_accepted(kind, encrypted, der):
    key = ec_key("online") if kind == "ec" else rsa_key(2048)
    crt = cert_pem(certificate(key=key))
    encoded = reencode(key, traditional_args(kind, encrypted=encrypted, der=der))
    if encrypted:
        assert b"Proc-Type: 4,ENCRYPTED" in encoded
    result = pair(crt=crt, key=encoded, password=PASSWORD if encrypted else None)
    assert result.ok, result.problems
    assert result.key.algorithm == ("EC P-256" if kind == "ec" else "RSA 2048")
    if encrypted:
        assert codes(pair(crt=crt, key=encoded, password="wrong")) == ["wrong_password"]


def test_plain_key_with_a_password_typed_is_accepted_with_a_note():
    key = ec_key("online")
    result = pair(
        crt=cert_pem(certificate(key=key)), key=key_pem(key, password=None), password="niepotrzebne"
    )
    assert result.ok and not result.key.encrypted
    assert [n.field for n in result.notes] == ["password"]


def test_key_encrypted_with_a_cipher_we_cannot_read_is_unsupported_with_a_conversion_hint():
    key = ec_key("online")
    encoded = reencode(key, ("pkcs8", "-topk8", "-v2", "camellia256", "-passout", "env:KLUCZNIK_TEST_PW"))
    result = pair(crt=cert_pem(certificate(key=key)), key=encoded)
    assert codes(result) == ["unsupported_key"]
    assert "openssl pkcs8 -topk8 -v2 aes-256-cbc" in result.problems[0].message_pl
    assert c.is_key_encrypted(encoded)


# --- key algorithms --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_factory", "accepted", "label"),
    [
        (lambda: rsa_key(1024), False, "RSA 1024"),
        (lambda: rsa_key(2048), True, "RSA 2048"),
        (lambda: rsa_key(4096), True, "RSA 4096"),
        (lambda: ec_key("p384", "secp384r1"), False, "EC P-384"),
        (lambda: ec_key("p256"), True, "EC P-256"),
    ],
)
def test_key_algorithms(key_factory, accepted, label):
    key = key_factory()
    result = pair(crt=cert_pem(certificate(key=key)), key=key_pem(key))
    assert result.certificate.key_algorithm == label
    if accepted:
        assert result.ok, result.problems
    else:
        assert codes(result) == ["unsupported_key"]
        assert label in result.problems[0].message_pl
        assert codes(c.check_key(key_pem(key), slot="online", password=PASSWORD)) == ["unsupported_key"]


def test_ed25519_key_is_unsupported():
    key = ed25519.Ed25519PrivateKey.generate()
    result = c.check_key(key_pem(key, password=None), slot="online")
    assert codes(result) == ["unsupported_key"] and "Ed25519" in result.problems[0].message_en


# --- KSeF type and slot -------------------------------------------------------------------------------


def test_offline_certificate_is_accepted_in_the_offline_slot_only():
    crt, key = good_pair(slot="offline")
    assert pair("offline", crt=crt, key=key).ok
    result = pair("online", crt=crt, key=key)
    assert codes(result) == ["wrong_slot"]
    assert result.problems[0].message_pl.startswith("To jest certyfikat offline — wgraj go w sekcji")


@pytest.mark.parametrize("ksef_type", [None, "none", "both"])
def test_certificate_without_a_ksef_key_usage_is_not_ksef_type(ksef_type):
    crt, key = good_pair(ksef_type=ksef_type, suffix="Firma")
    result = pair(crt=crt, key=key)
    assert codes(result) == ["not_ksef_type"]
    assert result.certificate.ksef_type is None


@pytest.mark.parametrize(("suffix", "slot"), [("(offline)", "offline"), ("(uwierzytelnienie)", "online")])
def test_both_usages_are_resolved_by_the_taxpayer_application_name_suffix(suffix, slot):
    crt, key = good_pair(slot=slot, ksef_type="both", suffix=suffix)
    result = pair(slot, crt=crt, key=key)
    assert result.ok and result.certificate.ksef_type == SLOT_TYPES[slot]


# --- validity and issuer --------------------------------------------------------------------------------


def test_expired_not_yet_valid_and_expiring_soon():
    crt, key = good_pair(not_after=AT - timedelta(days=1))
    assert codes(pair(crt=crt, key=key)) == ["expired"]
    crt, key = good_pair(not_before=AT + timedelta(days=3))
    result = pair(crt=crt, key=key)
    assert codes(result) == ["not_yet_valid"] and result.ok
    crt, key = good_pair(not_after=AT + timedelta(days=30))
    result = pair(crt=crt, key=key)
    assert codes(result) == ["expires_soon"] and result.ok and "30 dni" in result.problems[0].message_pl
    crt, key = good_pair(not_after=AT + timedelta(days=31))
    assert codes(pair(crt=crt, key=key)) == []


def test_foreign_issuer_is_an_error_offline_and_a_warning_online():
    crt, key = good_pair(slot="offline", issuer="Inna Firma CA")
    result = pair("offline", crt=crt, key=key)
    assert codes(result) == ["not_ksef_issuer"] and not result.ok
    crt, key = good_pair(slot="online", issuer="Inna Firma CA")
    result = pair("online", crt=crt, key=key)
    assert codes(result) == ["not_ksef_issuer"] and result.ok
    assert result.problems[0].severity == "warning"


@pytest.mark.parametrize(
    "issuer", ["CCK KSeF", "TEST CCK KSeF", "Klucznik Sandbox KSeF CA (not the Ministry)"]
)
def test_ksef_and_sandbox_issuers_are_recognised(issuer):
    crt, key = good_pair(slot="offline", issuer=issuer)
    assert pair("offline", crt=crt, key=key).ok


def test_self_signed_certificate_is_not_from_ksef():
    crt, key = good_pair(slot="offline", self_signed=True)
    assert codes(pair("offline", crt=crt, key=key)) == ["not_ksef_issuer"]


# --- identity and NIP ------------------------------------------------------------------------------------


def test_pesel_identity_is_a_masked_warning():
    crt, key = good_pair(pesel=PESEL)
    result = pair(crt=crt, key=key)
    assert codes(result) == ["identity_person"] and result.ok
    identity = result.certificate.identity
    assert identity.type == "PESEL" and identity.shown == "*******2345"
    assert identity.as_dict() == {"type": "PESEL", "value": "*******2345"}
    assert PESEL not in result.problems[0].message_pl and PESEL not in result.problems[0].message_en


def test_nip_mismatch_and_certificate_without_identity():
    crt, key = good_pair(nip=OTHER_NIP)
    result = pair(crt=crt, key=key)
    assert codes(result) == ["nip_mismatch"]
    assert (
        "685-233-29-48" in result.problems[0].message_pl and "526-104-08-28" in result.problems[0].message_pl
    )
    crt, key = good_pair(nip=None)
    assert codes(pair(crt=crt, key=key)) == ["nip_mismatch"]
    assert codes(pair(crt=crt, key=key, nip=None)) == []


@pytest.mark.parametrize("value", ["", "123", "5261040829", "0000000000"])
def test_invalid_nip(value):
    nip, problems = c.check_nip(value)
    assert nip is None and [p.code for p in problems] == ["nip_invalid"] and problems[0].field == "nip"


def test_nip_with_dashes_and_prefix_is_normalised():
    assert c.check_nip("PL 526-104-08-28") == (COMPANY_NIP, ())


# --- wrong files ------------------------------------------------------------------------------------------


def test_key_and_certificate_swapped_within_a_pair():
    crt, key = good_pair()
    result = pair(crt=key, key=crt)
    assert codes(result) == ["files_swapped"] and result.problems[0].field == "crt"


def test_key_alone_in_the_certificate_field_and_certificate_in_the_key_field():
    crt, key = good_pair()
    result = c.check_certificate(key, slot="online", at=AT)
    assert codes(result) == ["not_a_certificate"] and "klucz prywatny" in result.problems[0].message_pl
    der_key = reencode(ec_key("online"), OPENSSL_FORMATS["pkcs8-der-plain"][0])
    assert codes(c.check_certificate(der_key, slot="online", at=AT)) == ["not_a_certificate"]
    result = c.check_key(crt, slot="online")
    assert codes(result) == ["not_a_private_key"] and "certyfikat" in result.problems[0].message_pl
    assert codes(c.check_key(cert_der(c.load_certificate(crt).certificate), slot="online")) == [
        "not_a_private_key"
    ]


def test_key_mismatch():
    crt, _ = good_pair()
    other = key_pem(ec_key("other"))
    result = pair(crt=crt, key=other)
    assert codes(result) == ["key_mismatch"] and result.problems[0].field == "key"


def test_csr_and_public_key_are_named():
    key = ec_key("online")
    csr = openssl("req", "-new", "-key", "/dev/stdin", "-subj", "/CN=Test", data=key_pem(key, password=None))
    result = c.check_certificate(csr, slot="online", at=AT)
    assert codes(result) == ["not_a_certificate"] and "CSR" in result.problems[0].message_pl
    public = openssl("pkey", "-pubout", data=key_pem(key, password=None))
    assert codes(c.check_key(public, slot="online")) == ["not_a_private_key"]


@pytest.mark.parametrize("field", ["crt", "key"])
def test_pkcs12_file_is_explained(field):
    crt, key = good_pair()
    p12 = pkcs12_file(c.load_certificate(crt).certificate, ec_key("online"))
    result = pair(crt=p12 if field == "crt" else crt, key=p12 if field == "key" else key)
    assert "pkcs12_file" in codes(result)
    problem = next(p for p in result.problems if p.code == "pkcs12_file")
    assert problem.field == field and "openssl pkcs12" in problem.message_pl


@pytest.mark.parametrize("content", [b"", b" \n\r\n "])
def test_empty_files(content):
    crt, key = good_pair()
    assert codes(pair(crt=content, key=key)) == ["empty_file"]
    assert codes(pair(crt=crt, key=content)) == ["empty_file"]
    assert codes(c.check_certificate(None, slot="offline", at=AT)) == ["empty_file"]


def test_size_limit_is_64_kib_inclusive():
    crt, key = good_pair()
    at_limit = crt + b" " * (c.MAX_FILE_SIZE - len(crt))
    assert len(at_limit) == c.MAX_FILE_SIZE
    assert pair(crt=at_limit, key=key).ok
    over = at_limit + b" "
    assert codes(pair(crt=over, key=key)) == ["file_too_large"]
    assert codes(pair(crt=crt, key=key + b" " * c.MAX_FILE_SIZE)) == ["file_too_large"]


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(300),
        b"\x01",
        b"\x89PNG\r\n\x1a\n" + os.urandom(100),
        b"-----BEGIN CERTIFICATE-----\nnie base64\n-----END CERTIFICATE-----\n",
    ],
)
def test_binary_garbage(content):
    assert codes(c.check_certificate(content, slot="online", at=AT)) == ["not_a_certificate"]
    assert codes(c.check_key(content, slot="online")) == ["not_a_private_key"]


def test_png_is_named_in_the_message():
    result = c.check_certificate(b"\x89PNG\r\n\x1a\n" + bytes(100), slot="online", at=AT)
    assert "PNG" in result.problems[0].message_pl and "PNG" in result.problems[0].message_en


def test_load_functions_raise_validation_errors_with_the_code():
    with pytest.raises(ValidationError) as caught:
        c.load_certificate(b"")
    assert caught.value.code == "empty_file" and caught.value.field == "crt"
    with pytest.raises(ValidationError) as caught:
        c.load_private_key(sample("seal").key, password="zle")
    assert caught.value.code == "wrong_password" and caught.value.field == "password"


# --- the whole form ------------------------------------------------------------------------------------------


def full_set(**changes):
    """Inputs of a valid form (both pairs for COMPANY_NIP), with ``changes`` per slot."""
    online = c.PairInput(*good_pair(slot="online"), password=PASSWORD)
    offline = c.PairInput(*good_pair(slot="offline"), password=PASSWORD)
    return {"online": changes.get("online", online), "offline": changes.get("offline", offline)}


def test_valid_full_set():
    result = c.check_set(**full_set(), nip="526-104-08-28", at=AT)
    assert result.ok and result.all_problems == () and result.nip == COMPANY_NIP
    assert result.pair("online").certificate.ksef_type == "Authentication"
    assert result.pair("offline").certificate.ksef_type == "Offline"


def test_sections_swapped_are_named_once_per_section():
    inputs = full_set()
    result = c.check_set(online=inputs["offline"], offline=inputs["online"], nip=COMPANY_NIP, at=AT)
    assert codes(result) == ["files_swapped", "files_swapped"]
    assert [p.slot for p in result.all_problems] == ["online", "offline"]


def test_keys_swapped_between_sections():
    inputs = full_set()
    online = c.PairInput(inputs["online"].crt, inputs["offline"].key, PASSWORD)
    offline = c.PairInput(inputs["offline"].crt, inputs["online"].key, PASSWORD)
    result = c.check_set(online=online, offline=offline, nip=COMPANY_NIP, at=AT)
    assert codes(result) == ["files_swapped", "files_swapped"]
    assert {p.field for p in result.all_problems} == {"key"}


def test_pairs_of_different_subjects_are_refused():
    offline = c.PairInput(*good_pair(slot="offline", pesel=PESEL), password=PASSWORD)
    result = c.check_set(**full_set(offline=offline), nip=COMPANY_NIP, at=AT)
    assert codes(result) == ["identity_person", "nip_mismatch"] and not result.ok


def test_invalid_nip_in_the_set_blocks_it():
    result = c.check_set(**full_set(), nip="1234567890", at=AT)
    assert codes(result) == ["nip_invalid"] and not result.ok


def test_missing_files_block_the_set():
    result = c.check_set(online=full_set()["online"], offline=c.PairInput(), nip=COMPANY_NIP, at=AT)
    assert not result.ok and codes(result) == ["empty_file", "empty_file"]


def test_every_problem_is_well_formed():
    crt, key = good_pair(
        nip=OTHER_NIP, not_after=AT - timedelta(days=1), issuer="Obcy CA", ksef_type="Offline"
    )
    result = pair(crt=crt, key=key_pem(ec_key("x")))
    assert set(codes(result)) == {"wrong_slot", "expired", "not_ksef_issuer", "nip_mismatch", "key_mismatch"}
    for problem in result.problems:
        assert problem.code in c.CODES
        assert problem.field in {"crt", "key", "password", "nip"}
        assert problem.severity in {"error", "warning"}
        assert problem.message_pl and problem.message_en and problem.message_pl != problem.message_en


def test_unknown_slot_is_a_programming_error():
    with pytest.raises(ValueError):
        c.check_key(b"x", slot="both")


# --- interoperability with the project's sandbox KSeF CA ------------------------------------------------------


def test_certificates_issued_by_the_sandbox_ksef_ca_pass_the_full_check():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from sandbox import ca as sandbox_ca

    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Przykładowa Spółka"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Przykładowa Spółka z o.o."),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, COMPANY_NIP),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        ]
    )
    inputs = {}
    for slot, ksef_type in (("online", "Authentication"), ("offline", "Offline")):
        key = ec_key(f"sandbox-{slot}")
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        cert = sandbox_ca.issue_ksef_certificate(
            csr, certificate_type=ksef_type, valid_from=AT - timedelta(days=1)
        )
        inputs[slot] = c.PairInput(cert_pem(cert), key_pem(key), PASSWORD)
    assert SANDBOX_ISSUER_MARK in sandbox_ca.sandbox_ca_certificate().subject.rfc4514_string()
    result = c.check_set(**inputs, nip=COMPANY_NIP, at=AT)
    assert result.ok and result.all_problems == ()
    assert result.online.certificate.ksef_issuer and result.online.certificate.identity.value == COMPANY_NIP


def test_an_optional_slot_left_empty_is_absent_and_the_set_can_pass():
    result = c.check_set(online=full_set()["online"], offline=c.PairInput(), nip=COMPANY_NIP, at=AT,
                         optional=("offline",))
    assert result.ok and result.absent == ("offline",) and result.given == ("online",)
    assert codes(result) == []


def test_a_started_optional_slot_must_be_complete():
    offline = c.PairInput(crt=full_set()["offline"].crt)
    result = c.check_set(online=full_set()["online"], offline=offline, nip=COMPANY_NIP, at=AT, optional=("offline",))
    assert not result.ok and result.absent == () and codes(result) == ["empty_file"]


def test_at_least_one_slot_is_needed_even_when_both_are_optional():
    result = c.check_set(online=c.PairInput(), offline=c.PairInput(), nip=COMPANY_NIP, at=AT,
                         optional=("online", "offline"))
    assert not result.ok and result.absent == ("offline",)
