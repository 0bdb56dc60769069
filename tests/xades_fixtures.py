"""Test identities for signed KSeF login files: a self-made "qualified" CA with a seal, a person and a
Profil Zaufany-like Ministry seal, plus helpers that sign AuthTokenRequest files with the real signer.

Everything is generated with cryptography's CertificateBuilder at session start (no files, no network);
the CA is named as a test CA and never as a real trust service provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from klucznik import xades
from sandbox import signer

CHALLENGE = "20261124-CR-1A2B3C4D5E-6F708192A3-4B"
OTHER_CHALLENGE = "20261124-CR-FFFFFFFFFF-0000000000-01"
NIP = "5261040828"
OTHER_NIP = "7792433527"
PESEL = "88102341294"
ISSUED_AT = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
EXPIRES_AT = ISSUED_AT + timedelta(minutes=10)
AT = ISSUED_AT + timedelta(minutes=3)


@dataclass(frozen=True)
class Identity:
    """A certificate with its private key."""

    certificate: x509.Certificate
    private_key: object


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _issue(subject: x509.Name, key, issuer: Identity | None, *, ca: bool = False) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2028, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer.private_key if issuer else key, hashes.SHA256())


def make_ca() -> Identity:
    """A test "qualified" CA (clearly named as a test)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(
        (NameOID.COUNTRY_NAME, "PL"),
        (NameOID.ORGANIZATION_NAME, "Klucznik Test QTSP"),
        (NameOID.COMMON_NAME, "Klucznik Test Qualified CA"),
    )
    return Identity(_issue(name, key, None, ca=True), key)


def make_seal(ca: Identity, *, nip: str = NIP, rsa_key: bool = False) -> Identity:
    """A qualified-seal-like certificate: organizationIdentifier VATPL-<nip>, no given name or surname."""
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = _name(
        (NameOID.COUNTRY_NAME, "PL"),
        (NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
        (NameOID.ORGANIZATION_NAME, "Przykładowa Spółka z o.o."),
        (NameOID.COMMON_NAME, "Pieczęć Przykładowa"),
    )
    return Identity(_issue(name, key, ca), key)


def make_person(
    ca: Identity, *, pesel: str = PESEL, given: str = "Zenon", surname: str = "Żółkiewski"
) -> Identity:
    """A personal qualified-signature-like certificate: serialNumber PNOPL-<pesel>."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(
        (NameOID.COUNTRY_NAME, "PL"),
        (NameOID.GIVEN_NAME, given),
        (NameOID.SURNAME, surname),
        (NameOID.SERIAL_NUMBER, f"PNOPL-{pesel}"),
        (NameOID.COMMON_NAME, f"{given} {surname}"),
    )
    return Identity(_issue(name, key, ca), key)


def make_ministry_seal(ca: Identity) -> Identity:
    """The shape of the seal that signs every Profil Zaufany file (RSA, like the real one)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(
        (NameOID.COUNTRY_NAME, "PL"),
        (NameOID.ORGANIZATION_IDENTIFIER, "VATPL-5252955037"),
        (NameOID.ORGANIZATION_NAME, "Test Ministry"),
        (NameOID.COMMON_NAME, "Test - pieczęć podpisu zaufanego"),
    )
    return Identity(_issue(name, key, ca), key)


@dataclass(frozen=True)
class XadesKit:
    """The identities and a one-call signer for tests."""

    ca: Identity
    seal: Identity
    seal_rsa: Identity
    person: Identity
    ministry: Identity
    person_data: signer.Person

    def request(self, *, challenge: str = CHALLENGE, nip: str = NIP) -> bytes:
        """The unsigned file the portal hands out."""
        return xades.build_auth_token_request(challenge=challenge, nip=nip)

    def sign(
        self,
        style: str = "enveloped",
        *,
        xml: bytes | None = None,
        identity: Identity | None = None,
        **kwargs,
    ) -> bytes:
        """Sign with the sandbox signer (profil-zaufany: the Ministry-like seal plus the person's claimed role)."""
        xml = xml if xml is not None else self.request()
        if style == "profil-zaufany":
            identity = identity or self.ministry
            kwargs.setdefault("person", self.person_data)
        identity = identity or self.seal
        return signer.sign(
            xml,
            certificate=identity.certificate,
            private_key=identity.private_key,
            style=style,
            signing_time=AT,
            **kwargs,
        )

    def sign_with(
        self, options: xades.SigningOptions, *, xml: bytes | None = None, identity: Identity | None = None
    ) -> bytes:
        """Sign with explicit options (hostile variants built by the real signer)."""
        identity = identity or self.seal
        return xades.sign_xades(
            xml if xml is not None else self.request(),
            certificate=identity.certificate,
            private_key=identity.private_key,
            options=options,
            signing_time=AT,
        )

    def check(self, data: bytes, **kwargs) -> xades.CheckResult:
        """The check as the wizard runs it (pinned time and the issued challenge, NIP and expiry)."""
        kwargs.setdefault("challenge", CHALLENGE)
        kwargs.setdefault("nip", NIP)
        kwargs.setdefault("at", AT)
        kwargs.setdefault("challenge_expires_at", EXPIRES_AT)
        return xades.check_signed_request(data, **kwargs)


@pytest.fixture(scope="session")
def xades_kit() -> XadesKit:
    """Session-wide test identities (key generation is the slow part)."""
    ca = make_ca()
    return XadesKit(
        ca=ca,
        seal=make_seal(ca),
        seal_rsa=make_seal(ca, rsa_key=True),
        person=make_person(ca),
        ministry=make_ministry_seal(ca),
        person_data=signer.Person(given_name="Zenon", surname="Żółkiewski", pesel=PESEL),
    )
