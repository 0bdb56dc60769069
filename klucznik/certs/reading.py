"""Reading an uploaded certificate or key: the leaf of a chain, a key decrypted once, and what they say.

Every key is decrypted at most once per check (the password KDF dominates the cost: 100,000 PBKDF2
iterations for keys from the taxpayer application). What cannot be read is a :class:`Problem` with a
message that names what the file is instead.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from klucznik import ids
from klucznik.certs.formats import CERT_LABELS
from klucznik.certs.formats import KEY_LABELS
from klucznik.certs.formats import OTHER_KEY_LABELS
from klucznik.certs.formats import PKCS7_LABELS
from klucznik.certs.formats import der_certificates
from klucznik.certs.formats import garbage_hint
from klucznik.certs.formats import is_pkcs12
from klucznik.certs.formats import key_algorithm
from klucznik.certs.formats import looks_like_der_key
from klucznik.certs.formats import normalise_text
from klucznik.certs.formats import pem_blocks
from klucznik.certs.formats import spki
from klucznik.certs.messages import certificate_in_key_field
from klucznik.certs.messages import key_in_certificate_field
from klucznik.certs.messages import limit_problem
from klucznik.certs.messages import not_a_certificate
from klucznik.certs.messages import not_a_private_key
from klucznik.certs.messages import pem_without_key
from klucznik.certs.messages import pkcs12_problem
from klucznik.certs.messages import problem
from klucznik.certs.messages import unsupported_encryption
from klucznik.certs.messages import unsupported_key_format
from klucznik.certs.model import KSEF_ISSUER_NAMES
from klucznik.certs.model import SANDBOX_ISSUER_MARK
from klucznik.certs.model import CertificateInfo
from klucznik.certs.model import KeyInfo
from klucznik.certs.model import Note
from klucznik.certs.model import Problem
from klucznik.errors import ValidationError
from klucznik.text import Text

_RFC4514_NAMES = {
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.X500_UNIQUE_IDENTIFIER: "uniqueIdentifier",
}


def read_certificate(
    data: bytes | None, *, slot: str | None, key: KeyInfo | None = None
) -> tuple[CertificateInfo | None, list[Problem], list[Note]]:
    """Load the certificate of a file, or say precisely why it is not one."""
    limit = limit_problem(data, field="crt", slot=slot)
    if limit is not None:
        return None, [limit], []
    text = normalise_text(data)
    if is_pkcs12(text):
        return None, [pkcs12_problem("crt", slot)], []
    blocks = pem_blocks(text)
    if blocks:
        return _certificate_from_pem(blocks, slot=slot, key=key)
    certs = der_certificates(text)
    if certs:
        return _summarise_chain(certs, slot=slot, key=key)
    if looks_like_der_key(text):
        return None, [key_in_certificate_field(slot)], []
    return None, [not_a_certificate(slot, garbage_hint(text))], []


def _certificate_from_pem(
    blocks: list[tuple[bytes, bytes]], *, slot: str | None, key: KeyInfo | None
) -> tuple[CertificateInfo | None, list[Problem], list[Note]]:
    """The certificate(s) among PEM blocks; a key or a CSR in the certificate field is named as such."""
    labels = {label for label, _ in blocks}
    certs: list[x509.Certificate] = []
    for label, block in blocks:
        if label in CERT_LABELS:
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                return (
                    None,
                    [
                        not_a_certificate(
                            slot, Text("uszkodzony blok certyfikatu (PEM)", "a damaged PEM certificate block")
                        )
                    ],
                    [],
                )
        elif label in PKCS7_LABELS:
            try:
                certs.extend(pkcs7.load_pem_pkcs7_certificates(block))
            except ValueError:
                continue
    if certs:
        info, problems, notes = _summarise_chain(certs, slot=slot, key=key)
        if labels & (KEY_LABELS | OTHER_KEY_LABELS):
            notes.append(
                Note(
                    "crt",
                    Text(
                        "Plik certyfikatu zawiera też klucz prywatny; klucz wgraj osobno w polu klucza (.key).",
                        "The certificate file also holds a private key; upload the key "
                        "separately in the key (.key) field.",
                    ),
                    slot,
                )
            )
        return info, problems, notes
    if labels & (KEY_LABELS | OTHER_KEY_LABELS):
        return None, [key_in_certificate_field(slot)], []
    if b"CERTIFICATE REQUEST" in labels or b"NEW CERTIFICATE REQUEST" in labels:
        return (
            None,
            [
                problem(
                    "not_a_certificate",
                    "crt",
                    slot,
                    Text(
                        "To jest wniosek certyfikacyjny (CSR), a nie certyfikat. Wgraj plik .crt pobrany z KSeF po "
                        "wydaniu certyfikatu.",
                        "This is a certificate signing request (CSR), not a certificate. Upload the .crt file downloaded "
                        "from KSeF once the certificate was issued.",
                    ),
                )
            ],
            [],
        )
    if b"PUBLIC KEY" in labels:
        return None, [not_a_certificate(slot, Text("klucz publiczny", "a public key"))], []
    return None, [not_a_certificate(slot, None)], []


def _summarise_chain(
    certs: list[x509.Certificate], *, slot: str | None, key: KeyInfo | None
) -> tuple[CertificateInfo, list[Problem], list[Note]]:
    """Pick the leaf of one or more certificates and summarise it (with a note for a chain)."""
    leaf = _pick_leaf(certs, key)
    notes: list[Note] = []
    if len(certs) > 1:
        name = ids.first_attribute(leaf.subject, NameOID.COMMON_NAME) or leaf.subject.rfc4514_string()
        notes.append(
            Note(
                "crt",
                Text(
                    f"Plik zawiera {len(certs)} certyfikaty (łańcuch); użyto certyfikatu końcowego: {name}.",
                    f"The file holds {len(certs)} certificates (a chain); the end-entity certificate was used: {name}.",
                ),
                slot,
            )
        )
    return summarise(leaf), [], notes


def _pick_leaf(certs: list[x509.Certificate], key: KeyInfo | None) -> x509.Certificate:
    """The certificate that matches the key, else the one that issued none of the others."""
    if key is not None:
        wanted = key.public_key_der()
        for cert in certs:
            if spki(cert.public_key()) == wanted:
                return cert
    issuers = {cert.issuer for cert in certs if cert.issuer != cert.subject}
    for cert in certs:
        if cert.subject not in issuers:
            return cert
    return certs[0]


def read_key(
    data: bytes | None, password: str | None, *, slot: str | None
) -> tuple[KeyInfo | None, list[Problem], list[Note]]:
    """Load the private key of a file (decrypting it at most once), or say precisely why not."""
    limit = limit_problem(data, field="key", slot=slot)
    if limit is not None:
        return None, [limit], []
    text = normalise_text(data)
    if is_pkcs12(text):
        return None, [pkcs12_problem("key", slot)], []
    blocks = pem_blocks(text)
    labels = {label for label, _ in blocks}
    if blocks and not labels & (KEY_LABELS | OTHER_KEY_LABELS):
        return None, [pem_without_key(labels, slot)], []
    if not blocks and der_certificates(text):
        return None, [certificate_in_key_field(slot)], []
    if labels & OTHER_KEY_LABELS and not labels & KEY_LABELS:
        return (
            None,
            [
                problem(
                    "unsupported_key",
                    "key",
                    slot,
                    Text(
                        "Ten klucz jest w formacie, którego KSeF nie używa (DSA lub OpenSSH). KSeF przyjmuje klucze EC P-256 "
                        "lub RSA 2048: wgraj plik .key zapisany przy wnioskowaniu o certyfikat.",
                        "This key is in a format KSeF does not use (DSA or OpenSSH). KSeF takes EC P-256 or RSA 2048 keys: "
                        "upload the .key file saved when the certificate was requested.",
                    ),
                )
            ],
            [],
        )
    candidates = _key_candidates(text)
    return _decrypt_key(data, candidates[0], password, slot=slot, notes=_key_notes(labels, slot))


def _decrypt_key(
    original: bytes,
    candidate: tuple[bytes, bool],
    password: str | None,
    *,
    slot: str | None,
    notes: list[Note],
) -> tuple[KeyInfo | None, list[Problem], list[Note]]:
    """Load one key block: first without a password (cheap), then with it when it is encrypted."""
    block, pem = candidate
    encrypted_label = pem and block.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    try:
        key = _load_key_bytes(block, None, pem=pem)
    except TypeError:
        key = None
    except UnsupportedAlgorithm:
        return None, [unsupported_key_format(slot)], notes
    except ValueError:
        if encrypted_label:
            return None, [unsupported_encryption(slot)], notes
        hint = None if pem else garbage_hint(block)
        return None, [not_a_private_key(slot, hint)], notes
    if key is not None:
        if password:
            notes = [
                *notes,
                Note(
                    "password",
                    Text(
                        "Ten klucz nie jest zabezpieczony hasłem; wpisane hasło nie było potrzebne.",
                        "This key is not password-protected; the password entered was not needed.",
                    ),
                    slot,
                ),
            ]
        return (
            KeyInfo(private_key=key, data=original, algorithm=key_algorithm(key), encrypted=False),
            [],
            notes,
        )
    if not password:
        return (
            None,
            [
                problem(
                    "password_required",
                    "password",
                    slot,
                    Text(
                        "Klucz prywatny jest zaszyfrowany: wpisz hasło ustawione przy wnioskowaniu o certyfikat w Aplikacji "
                        "Podatnika KSeF.",
                        "The private key is encrypted: enter the password set when the certificate was requested in the KSeF "
                        "taxpayer application.",
                    ),
                )
            ],
            notes,
        )
    try:
        key = _load_key_bytes(block, password.encode("utf-8"), pem=pem)
    except UnsupportedAlgorithm:
        return None, [unsupported_encryption(slot)], notes
    except ValueError as exc:
        if _names_unsupported_encryption(exc):
            return None, [unsupported_encryption(slot)], notes
        # A wrong password usually fails the CBC padding check ("Incorrect password"), but about one wrong
        # password in 200 decrypts to bytes whose padding happens to look valid; those fail later as a DER
        # parse error. The key already loaded as "encrypted, password needed", so either way the password
        # is what does not fit.
        return (
            None,
            [
                problem(
                    "wrong_password",
                    "password",
                    slot,
                    Text(
                        "Hasło nie pasuje do tego klucza. Sprawdź wielkość liter i układ klawiatury; to hasło ustawiono przy "
                        "wnioskowaniu o certyfikat i KSeF nie może go odzyskać.",
                        "The password does not open this key. Check upper/lower case and the keyboard layout; it was set when "
                        "the certificate was requested and KSeF cannot recover it.",
                    ),
                )
            ],
            notes,
        )
    return KeyInfo(private_key=key, data=original, algorithm=key_algorithm(key), encrypted=True), [], notes


def _names_unsupported_encryption(exc: ValueError) -> bool:
    """Whether ``cryptography`` refused the key's encryption scheme itself (not the password)."""
    # cryptography's messages for a scheme it cannot decrypt; its generic "Could not deserialize key data"
    # (which merely *mentions* unsupported algorithms) is what a wrong password can also produce.
    return (
        str(exc)
        .lower()
        .startswith(("unknown key encryption", "key encrypted with unknown cipher", "unsupported"))
    )


def _load_key_bytes(block: bytes, password: bytes | None, *, pem: bool) -> object:
    """``cryptography``'s PEM or DER private-key loader."""
    if pem:
        return serialization.load_pem_private_key(block, password=password)
    return serialization.load_der_private_key(block, password=password)


def _key_candidates(text: bytes) -> list[tuple[bytes, bool]]:
    """The key blocks of a file as ``(bytes, is_pem)``: PEM key blocks, or the whole file as DER."""
    blocks = [(block, True) for label, block in pem_blocks(text) if label in KEY_LABELS]
    return blocks or [(text, False)]


def _key_notes(labels: set[bytes], slot: str | None) -> list[Note]:
    """A note when the key file also carries certificates."""
    if labels & CERT_LABELS:
        return [
            Note(
                "key",
                Text(
                    "Plik klucza zawiera też certyfikat; certyfikat wgraj osobno w polu certyfikatu (.crt).",
                    "The key file also holds a certificate; upload the certificate separately in the certificate "
                    "(.crt) field.",
                ),
                slot,
            )
        ]
    return []


def summarise(cert: x509.Certificate) -> CertificateInfo:
    """Summarise a certificate: identity, KSeF type, serial, issuer, validity, key algorithm."""
    subject_names = _RFC4514_NAMES
    der = cert.public_bytes(serialization.Encoding.DER)
    issuer_cn = ids.first_attribute(cert.issuer, NameOID.COMMON_NAME)
    identity = ids.identity_of(cert.subject)
    subject_text = cert.subject.rfc4514_string(subject_names)
    if identity is not None and identity.type == "PESEL":
        subject_text = subject_text.replace(identity.value, identity.shown)
    return CertificateInfo(
        certificate=cert,
        der=der,
        subject=subject_text,
        common_name=ids.first_attribute(cert.subject, NameOID.COMMON_NAME),
        organization=ids.first_attribute(cert.subject, NameOID.ORGANIZATION_NAME),
        identity=identity,
        ksef_type=ksef_type_of(cert),
        serial=f"{cert.serial_number:016X}",
        issuer=cert.issuer.rfc4514_string(subject_names),
        issuer_common_name=issuer_cn,
        ksef_issuer=is_ksef_issuer(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_algorithm=key_algorithm(cert.public_key()),
        fingerprint=hashlib.sha256(der).hexdigest(),
    )


def ksef_type_of(cert: x509.Certificate) -> str | None:
    """``"Authentication"`` (digitalSignature), ``"Offline"`` (nonRepudiation) or ``None`` (neither / no keyUsage)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    signing, commitment = usage.digital_signature, usage.content_commitment
    if signing and not commitment:
        return "Authentication"
    if commitment and not signing:
        return "Offline"
    if signing and commitment:
        cn = (ids.first_attribute(cert.subject, NameOID.COMMON_NAME) or "").lower()
        if cn.endswith("(offline)"):
            return "Offline"
        if cn.endswith("(uwierzytelnienie)"):
            return "Authentication"
    return None


def is_ksef_issuer(issuer: x509.Name) -> bool:
    """True for the KSeF CAs (TEST CCK KSeF, CCK KSeF) and the project's sandbox KSeF CA."""
    common_names = ids.attribute_values(issuer, NameOID.COMMON_NAME)
    return any(cn in KSEF_ISSUER_NAMES or SANDBOX_ISSUER_MARK in cn for cn in common_names)


def load_certificate(data: bytes) -> CertificateInfo:
    """Load a PEM or DER certificate (the leaf of a PEM chain) or raise :class:`ValidationError`."""
    info, problems, _notes = read_certificate(data, slot=None)
    if info is None:
        first = problems[0]
        raise ValidationError(first.text, field="crt", code=first.code)
    return info


def load_private_key(data: bytes, *, password: str | None = None) -> KeyInfo:
    """Load a private key in any supported format or raise :class:`ValidationError`."""
    key, problems, _notes = read_key(data, password, slot=None)
    if key is None:
        first = problems[0]
        raise ValidationError(first.text, field=first.field, code=first.code)
    return key


def is_key_encrypted(data: bytes) -> bool:
    """True when ``data`` is a password-protected private key (cheap: no key derivation)."""
    for block, pem in _key_candidates(normalise_text(data)):
        try:
            _load_key_bytes(block, None, pem=pem)
        except TypeError:
            return True
        except (ValueError, UnsupportedAlgorithm):
            if pem and block.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"):
                return True
            continue
        return False
    return False
