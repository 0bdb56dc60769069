"""The one family of certificate and key builders of the tests (and the benchmarks).

Certificates are built with ``cryptography``'s ``CertificateBuilder`` under local CAs: one named like the
KSeF TEST CA (``CN=TEST CCK KSeF``), so every rule of :mod:`klucznik.certs` can be exercised with a
certificate that differs from a valid one in exactly one property, and one clearly named test "qualified"
CA for the identities that sign login files (a company seal, a person, a Profil Zaufany-like Ministry
seal). Key re-encodings use the ``openssl`` command line, the tool accountants' IT staff actually use, so
the formats are real. Keys and CAs are cached: key generation is the slow part.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

DATA = Path(__file__).resolve().parents[1] / "data" / "certs"
AT = datetime(2026, 6, 1, tzinfo=UTC)
"""The pinned validation time of the certificate tests (both real TEST samples are valid then)."""

COMPANY_NIP = "5261040828"
OTHER_NIP = "6852332948"
PESEL = "85010112345"
PASSWORD = "Hasło-testowe-1!"


@dataclass(frozen=True)
class Sample:
    """One real KSeF TEST certificate with its encrypted key (copied from /work/shared/ksef/samples)."""

    crt: bytes
    key: bytes
    password: str
    nip: str
    serial: str


def sample(name: str) -> Sample:
    """``"person"`` (TINPL- NIP in serialNumber) or ``"seal"`` (VATPL- in organizationIdentifier)."""
    if name == "person":
        return Sample(
            (DATA / "mf-test-authentication.crt").read_bytes(),
            (DATA / "mf-test-authentication.key").read_bytes(),
            "Qwertyuiop@12345",
            "5795955811",
            "01C311C507F83E0C",
        )
    return Sample(
        (DATA / "mf-test-seal-authentication.crt").read_bytes(),
        (DATA / "mf-test-seal-authentication.key").read_bytes(),
        "test!@#123TESTaaaa",
        "6852332948",
        "01F42D54DA3E29C5",
    )


@functools.cache
def ec_key(label: str = "a", curve: str = "secp256r1") -> ec.EllipticCurvePrivateKey:
    """A cached EC key (``label`` distinguishes independent keys on the same curve)."""
    curves = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1()}
    return ec.generate_private_key(curves[curve])


@functools.cache
def rsa_key(bits: int = 2048, label: str = "a") -> rsa.RSAPrivateKey:
    """A cached RSA key of ``bits`` bits."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ca(
    common_name: str = "TEST CCK KSeF", organization: str = "Ministerstwo Finansów (test double)"
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA whose subject imitates the KSeF TEST CA (or any other ``common_name``)."""
    key = ec_key(f"ca-{common_name}")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Krajowa Administracja Skarbowa"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = issue(
        name,
        key=key,
        issuer=None,
        ksef_type=None,
        not_before=datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime(2040, 1, 1, tzinfo=UTC),
        is_ca=True,
    )
    return cert, key


def issue(
    subject_name: x509.Name,
    *,
    key,
    issuer: tuple[x509.Certificate, object] | None,
    ksef_type: str | None = "Authentication",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial: int | None = None,
    is_ca: bool = False,
) -> x509.Certificate:
    """The one certificate builder: ``subject_name`` with ``key``, signed by ``issuer`` (``None``: self-signed).

    Valid around :data:`AT` unless told otherwise; ``ksef_type`` picks the keyUsage (see :func:`certificate`).
    """
    issuer_name, signing_key = (subject_name, key) if issuer is None else (issuer[0].subject, issuer[1])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number() >> 96)
        .not_valid_before(not_before or AT - timedelta(days=100))
        .not_valid_after(not_after or AT + timedelta(days=630))
    )
    if is_ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    usage = _key_usage(ksef_type)
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(signing_key, hashes.SHA256())


def subject(
    *,
    nip: str | None = COMPANY_NIP,
    pesel: str | None = None,
    organization: bool = True,
    suffix: str = "(uwierzytelnienie)",
) -> x509.Name:
    """A KSeF-style subject: an organisation (organizationIdentifier VATPL-NIP) or a person (PNOPL-PESEL)."""
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "PL")]
    if pesel is not None:
        attributes += [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"PNOPL-{pesel}"),
            x509.NameAttribute(NameOID.GIVEN_NAME, "Jan"),
            x509.NameAttribute(NameOID.SURNAME, "Kowalski"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Jan Kowalski {suffix}"),
        ]
    elif organization and nip is not None:
        attributes += [
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Przykładowa Spółka z o.o."),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Przykładowa Spółka {suffix}"),
        ]
    else:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, f"Bez identyfikatora {suffix}"))
    return x509.Name(attributes)


def certificate(
    *,
    key=None,
    ksef_type: str | None = "Authentication",
    nip: str | None = COMPANY_NIP,
    pesel: str | None = None,
    issuer: str = "TEST CCK KSeF",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial: int | None = None,
    self_signed: bool = False,
    suffix: str | None = None,
) -> x509.Certificate:
    """A KSeF-like end-entity certificate valid around :data:`AT`, differing from a good one as asked.

    ``ksef_type``: ``"Authentication"`` (digitalSignature), ``"Offline"`` (nonRepudiation), ``"both"``,
    ``"none"`` (a keyUsage with neither) or ``None`` (no keyUsage extension at all).
    """
    key = key or ec_key()
    if suffix is None:
        suffix = "(offline)" if ksef_type == "Offline" else "(uwierzytelnienie)"
    return issue(
        subject(nip=nip, pesel=pesel, suffix=suffix),
        key=key,
        issuer=None if self_signed else ca(issuer),
        ksef_type=ksef_type,
        not_before=not_before,
        not_after=not_after,
        serial=serial,
    )


def _key_usage(ksef_type: str | None) -> x509.KeyUsage | None:
    """The keyUsage extension of a KSeF certificate type."""
    if ksef_type is None:
        return None
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    flags = dict.fromkeys(names, False)
    if ksef_type in ("Authentication", "both"):
        flags["digital_signature"] = True
    if ksef_type in ("Offline", "both"):
        flags["content_commitment"] = True
    if ksef_type == "none":
        flags["key_encipherment"] = True
    return x509.KeyUsage(**flags)


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM bytes of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_der(cert: x509.Certificate) -> bytes:
    """DER bytes of a certificate."""
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key, password: str | None = PASSWORD) -> bytes:
    """PKCS#8 PEM, encrypted with ``password`` (cryptography's best available encryption) or plain."""
    encryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def key_like_taxpayer_app(key, password: str = PASSWORD, *, iterations: int = 100_000) -> bytes:
    """PKCS#8 PBES2, PBKDF2-HMAC-SHA256 ``iterations``, AES-256-CBC: the taxpayer application's format."""
    return openssl(
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-v2prf",
        "hmacWithSHA256",
        "-iter",
        str(iterations),
        "-passout",
        "env:KLUCZNIK_TEST_PW",
        data=key_pem(key, password=None),
        password=password,
    )


def openssl(*args: str, data: bytes, password: str | None = PASSWORD) -> bytes:
    """Run ``openssl ARGS`` with ``data`` on stdin (password via ``-passout``/``-passin`` env), return stdout."""
    env = {"KLUCZNIK_TEST_PW": password or ""}
    result = subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, env=env)
    return result.stdout


OPENSSL_FORMATS: dict[str, tuple[tuple[str, ...], bool]] = {
    # name: (openssl arguments reading a plain PEM key on stdin, encrypted?)
    "pkcs8-pbes2-aes256-sha256": (
        (
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-v2prf",
            "hmacWithSHA256",
            "-passout",
            "env:KLUCZNIK_TEST_PW",
        ),
        True,
    ),
    "pkcs8-pbes2-aes256-sha512": (
        (
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-v2prf",
            "hmacWithSHA512",
            "-passout",
            "env:KLUCZNIK_TEST_PW",
        ),
        True,
    ),
    "pkcs8-pbes2-aes128-sha1": (
        (
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-128-cbc",
            "-v2prf",
            "hmacWithSHA1",
            "-passout",
            "env:KLUCZNIK_TEST_PW",
        ),
        True,
    ),
    "pkcs8-pbes2-des3": (("pkcs8", "-topk8", "-v2", "des3", "-passout", "env:KLUCZNIK_TEST_PW"), True),
    "pkcs8-scrypt": (("pkcs8", "-topk8", "-scrypt", "-passout", "env:KLUCZNIK_TEST_PW"), True),
    "pkcs8-pbes1-sha1-3des": (
        ("pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-passout", "env:KLUCZNIK_TEST_PW"),
        True,
    ),
    "pkcs8-plain": (("pkcs8", "-topk8", "-nocrypt"), False),
    "pkcs8-der-plain": (("pkcs8", "-topk8", "-nocrypt", "-outform", "DER"), False),
    "pkcs8-der-encrypted": (
        ("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-outform", "DER", "-passout", "env:KLUCZNIK_TEST_PW"),
        True,
    ),
}


def traditional_args(kind: str, *, encrypted: bool, der: bool = False) -> tuple[str, ...]:
    """``openssl ec|rsa`` arguments: SEC1/PKCS#1, legacy encrypted PEM (``Proc-Type: 4,ENCRYPTED``) or DER."""
    args: tuple[str, ...] = (kind,)
    if encrypted:
        args += ("-aes256", "-passout", "env:KLUCZNIK_TEST_PW")
    if der:
        args += ("-outform", "DER")
    if kind == "rsa":
        args += ("-traditional",)
    return args


def reencode(key, args: tuple[str, ...]) -> bytes:
    """The plain PEM of ``key`` re-encoded by ``openssl ARGS``."""
    return openssl(*args, data=key_pem(key, password=None))


def pkcs12_file(cert: x509.Certificate, key, password: str = PASSWORD) -> bytes:
    """A PKCS#12 (.p12) bundle of ``cert`` and ``key`` made by the ``openssl pkcs12 -export`` command."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        crt_path, key_path = Path(folder) / "c.crt", Path(folder) / "k.key"
        crt_path.write_bytes(cert_pem(cert))
        key_path.write_bytes(key_pem(key, password=None))
        return openssl(
            "pkcs12",
            "-export",
            "-in",
            str(crt_path),
            "-inkey",
            str(key_path),
            "-passout",
            "env:KLUCZNIK_TEST_PW",
            data=b"",
        )


def good_pair(*, slot: str = "online", key=None, nip: str = COMPANY_NIP, **overrides) -> tuple[bytes, bytes]:
    """``(crt PEM, key PEM encrypted with PASSWORD)`` for ``slot`` (overrides go to :func:`certificate`)."""
    key = key or ec_key(slot)
    ksef_type = overrides.pop("ksef_type", "Authentication" if slot == "online" else "Offline")
    cert = certificate(key=key, ksef_type=ksef_type, nip=nip, **overrides)
    return cert_pem(cert), key_pem(key)


# -- signing identities (a test "qualified" CA) ---------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A certificate with its private key."""

    certificate: x509.Certificate
    private_key: object


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


@functools.cache
def qualified_ca() -> Identity:
    """A test "qualified" CA (clearly named as a test, never as a real trust service provider)."""
    cert, key = ca("Klucznik Test Qualified CA", organization="Klucznik Test QTSP")
    return Identity(cert, key)


def _signing_identity(name: x509.Name, key) -> Identity:
    """A signing certificate (digitalSignature + nonRepudiation, as qualified ones are) from :func:`qualified_ca`."""
    issuer = qualified_ca()
    cert = issue(name, key=key, issuer=(issuer.certificate, issuer.private_key), ksef_type="both")
    return Identity(cert, key)


def seal(*, nip: str = COMPANY_NIP, key=None) -> Identity:
    """A qualified-seal-like certificate: organizationIdentifier VATPL-<nip>, no given name or surname."""
    name = _name(
        (NameOID.COUNTRY_NAME, "PL"),
        (NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
        (NameOID.ORGANIZATION_NAME, "Przykładowa Spółka z o.o."),
        (NameOID.COMMON_NAME, "Pieczęć Przykładowa"),
    )
    return _signing_identity(name, key or ec_key(f"seal-{nip}"))


def person(*, pesel: str = PESEL, given: str = "Zenon", surname: str = "Żółkiewski", key=None) -> Identity:
    """A personal qualified-signature-like certificate: serialNumber PNOPL-<pesel>."""
    name = _name(
        (NameOID.COUNTRY_NAME, "PL"),
        (NameOID.GIVEN_NAME, given),
        (NameOID.SURNAME, surname),
        (NameOID.SERIAL_NUMBER, f"PNOPL-{pesel}"),
        (NameOID.COMMON_NAME, f"{given} {surname}"),
    )
    return _signing_identity(name, key or ec_key(f"person-{pesel}"))


def ministry_seal() -> Identity:
    """The shape of the seal that signs every Profil Zaufany file (RSA, like the real one)."""
    name = _name(
        (NameOID.COUNTRY_NAME, "PL"),
        (NameOID.ORGANIZATION_IDENTIFIER, "VATPL-5252955037"),
        (NameOID.ORGANIZATION_NAME, "Test Ministry"),
        (NameOID.COMMON_NAME, "Test - pieczęć podpisu zaufanego"),
    )
    return _signing_identity(name, rsa_key(label="ministry"))
