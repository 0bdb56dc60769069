"""The sandbox's two certificate authorities: one plays the KSeF CA, the other a qualified trust service.

Both are clearly sandboxes, never the Ministry of Finance nor a real trust service provider:

* ``Klucznik Sandbox KSeF CA`` issues KSeF certificates (``Authentication`` / ``Offline``) from CSRs, the
  way KSeF does: the subject exactly as requested, keyUsage per type, a 16-hex-digit serial, two years.
  ``klucznik.certificates`` recognises it as a KSeF issuer by its CN.
* ``Klucznik Sandbox Qualified CA`` issues "qualified" signing certificates for the test signer: a seal for
  a NIP (``organizationIdentifier=VATPL-<nip>``) or a person for a PESEL (``serialNumber=PNOPL-<pesel>``),
  with the subject patterns KSeF reads identities from.

The CA keys (and the test identities' keys) are derived deterministically from fixed labels, so every
process — the sandbox server, ``klucznik sandbox sign``, the tests — shares the same authorities without a
key file. That is only acceptable because nothing here is secret: it is a sandbox.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.oid import ObjectIdentifier

KSEF_CA_NAME = "Klucznik Sandbox KSeF CA"
QUALIFIED_CA_NAME = "Klucznik Sandbox Qualified CA"
SANDBOX_ORG = "Klucznik (sandbox, not the Ministry of Finance)"
QUALIFIED_ORG = "Klucznik (sandbox, not a qualified trust service provider)"

_CA_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
_CA_NOT_AFTER = datetime(2060, 1, 1, tzinfo=UTC)
# QCStatements with QcCompliance (ETSI EN 319 412-5), as qualified certificates carry it.
_QC_STATEMENTS_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.3")
_QC_COMPLIANCE_DER = bytes.fromhex("300a3008060604008e460101")

_lock = threading.Lock()


def _derived_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key derived from ``label`` (same in every process; sandbox only)."""
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    scalar = (
        int.from_bytes(hashlib.sha256(b"klucznik-sandbox:" + label.encode()).digest(), "big") % (order - 1)
        + 1
    )
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _ca_name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Authority:
    """A CA certificate and its key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def issued(self, certificate: x509.Certificate) -> bool:
        """True when this CA signed ``certificate``."""
        if certificate.issuer != self.certificate.subject:
            return False
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def _build_ca(common_name: str, organization: str, serial: int) -> Authority:
    key = _derived_key(f"ca:{common_name}")
    name = _ca_name(common_name, organization)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_CA_NOT_BEFORE)
        .not_valid_after(_CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


@functools.cache
def ksef_ca() -> Authority:
    """The sandbox's KSeF CA (issues Authentication and Offline certificates)."""
    return _build_ca(KSEF_CA_NAME, SANDBOX_ORG, 0x4B5345460001)


@functools.cache
def qualified_ca() -> Authority:
    """The sandbox's stand-in for a qualified trust service (issues the test signer's certificates)."""
    return _build_ca(QUALIFIED_CA_NAME, QUALIFIED_ORG, 0x51434100001)


def sandbox_ca_certificate() -> x509.Certificate:
    """The sandbox KSeF CA certificate (the issuer of every certificate the sandbox enrolls)."""
    return ksef_ca().certificate


def _key_usage(*, digital_signature: bool, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def new_serial() -> int:
    """A positive 64-bit serial that prints as 16 uppercase hex digits, as KSeF's do."""
    return secrets.randbits(63) | (1 << 56)


def serial_hex(serial: int) -> str:
    """The serial as KSeF writes it (16 uppercase hex digits)."""
    return f"{serial:016X}"


def issue_ksef_certificate(
    csr: x509.CertificateSigningRequest,
    *,
    certificate_type: str,
    valid_from: datetime,
    serial: int | None = None,
) -> x509.Certificate:
    """Issue a KSeF certificate for ``csr``: its subject and key, keyUsage per type, valid two years."""
    ca = ksef_ca()
    authentication = certificate_type == "Authentication"
    public_key = csr.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(serial or new_serial())
        .not_valid_before(valid_from)
        .not_valid_after(_add_years(valid_from, 2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=authentication, non_repudiation=not authentication), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()), critical=False
        )
        .sign(ca.private_key, hashes.SHA256())
    )


def _identity_subject(*, nip: str | None, pesel: str | None, name: str | None) -> x509.Name:
    if nip:
        company = name or f"Firma Testowa {nip}"
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, company),
                x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
                x509.NameAttribute(NameOID.COMMON_NAME, company),
            ]
        )
    given, _, surname = (name or "Jan Testowy").partition(" ")
    surname = surname or "Testowy"
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.GIVEN_NAME, given),
            x509.NameAttribute(NameOID.SURNAME, surname),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"PNOPL-{pesel}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{given} {surname}"),
        ]
    )


@functools.cache
def _qualified_identity(nip: str | None, pesel: str | None, name: str | None):
    ca = qualified_ca()
    key = _derived_key(f"identity:{nip or ''}:{pesel or ''}:{name or ''}")
    subject = _identity_subject(nip=nip, pesel=pesel, name=name)
    label = hashlib.sha256(subject.public_bytes()).digest()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(label[:8], "big") >> 1 | 1)
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, non_repudiation=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()), critical=False
        )
        .add_extension(x509.UnrecognizedExtension(_QC_STATEMENTS_OID, _QC_COMPLIANCE_DER), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )
    return cert, key


def qualified_identity(*, nip: str | None = None, pesel: str | None = None, name: str | None = None):
    """A sandbox "qualified" signing certificate and key: a seal for ``nip`` or a person for ``pesel``.

    The same arguments always give the same key (and an equivalent certificate) in every process.
    """
    if bool(nip) == bool(pesel):
        raise ValueError("give exactly one of nip= or pesel=")
    with _lock:
        return _qualified_identity(nip, pesel, name)


def encryption_certificates(now: datetime) -> list[tuple[x509.Certificate, str]]:
    """Stand-ins for the Ministry's public-key certificates: (certificate, usage) pairs, RSA 2048."""
    return [
        (_encryption_certificate(usage), usage) for usage in ("KsefTokenEncryption", "SymmetricKeyEncryption")
    ]


@functools.cache
def _encryption_certificate(usage: str) -> x509.Certificate:
    from cryptography.hazmat.primitives.asymmetric import rsa

    ca = ksef_ca()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SANDBOX_ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Klucznik Sandbox {usage}"),
        ]
    )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(new_serial())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365 * 10))
        .sign(ca.private_key, hashes.SHA256())
    )
