"""Load and check a client's own KSeF certificates and private keys (method 3: upload).

Accountants receive from the KSeF taxpayer application two pairs of files: an *Authentication*
certificate (online: logging in to KSeF) and an *Offline* certificate (signing the KOD II
verification link), each a PEM ``.crt`` with a password-encrypted ``.key``. They also meet files
from other tools: DER certificates, chains, traditional OpenSSL keys, PKCS#12 bundles. This module
turns whatever was uploaded into a precise verdict: every problem carries exactly one stable code,
the field the user must act on, a severity, and a message in Polish and in English that says what
is wrong and what to do. The web form (inline HTMX checks and the final submit) and the
``klucznik certs check`` command share it; it never imports Flask.

Three entry points, from the smallest to the whole form:

* :func:`check_certificate` / :func:`check_key` check one field in isolation (inline checks);
* :func:`check_pair` checks one slot: certificate, key, password (and the NIP, when given);
* :func:`check_set` checks both slots and the NIP, including that both pairs identify the same
  subject and that files were not swapped between the sections.

:func:`save_uploaded_set` stores a checked set inside the caller's ``store.write()`` transaction
(older credentials of the client become ``superseded``, never deleted).

Field scheme of :class:`Problem`: ``field`` is one of ``"crt"``, ``"key"``, ``"password"`` (a
slot's certificate file, key file and key password) or ``"nip"`` (the company NIP of the form);
``slot`` names the section (``"online"`` / ``"offline"``), ``None`` for the NIP.

Every key is decrypted at most once per check (the password KDF dominates the cost: 100,000
PBKDF2 iterations for keys from the taxpayer application). All time-dependent verdicts take an
explicit ``at``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed448
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from sqlite_utils import Database

from klucznik import audit
from klucznik import clients
from klucznik import credentials
from klucznik import nip as nip_rules
from klucznik.errors import ValidationError

MAX_FILE_SIZE = 64 * 1024
"""Largest accepted file (bytes). KSeF files are about 1 KiB; this also keeps uploads in memory."""

EXPIRY_WARNING = timedelta(days=30)
"""A certificate that expires sooner than this is accepted with a warning."""

MIN_RSA_BITS = 2048

SLOTS = ("online", "offline")
SLOT_TYPES = {"online": "Authentication", "offline": "Offline"}
SLOT_NAMES_PL = {"online": "uwierzytelniania (online)", "offline": "weryfikacji wystawcy (offline)"}
SLOT_NAMES_EN = {"online": "authentication (online)", "offline": "issuer verification (offline)"}
SECTION_TITLES_PL = {
    "online": "Certyfikat uwierzytelniania (online)",
    "offline": "Certyfikat weryfikacji wystawcy (offline)",
}
SECTION_TITLES_EN = {
    "online": "Authentication certificate (online)",
    "offline": "Issuer verification certificate (offline)",
}

CODES = (
    "not_a_certificate",
    "not_a_private_key",
    "files_swapped",
    "unsupported_key",
    "password_required",
    "wrong_password",
    "key_mismatch",
    "wrong_slot",
    "not_ksef_type",
    "not_ksef_issuer",
    "expired",
    "not_yet_valid",
    "expires_soon",
    "nip_invalid",
    "nip_mismatch",
    "identity_person",
    "file_too_large",
    "empty_file",
    "pkcs12_file",
)

KSEF_ISSUER_NAMES = ("TEST CCK KSeF", "CCK KSeF")
SANDBOX_ISSUER_MARK = "Klucznik Sandbox KSeF CA"

_RFC4514_NAMES = {
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.X500_UNIQUE_IDENTIFIER: "uniqueIdentifier",
}
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
_KEY_LABELS = {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}
_OTHER_KEY_LABELS = {b"DSA PRIVATE KEY", b"OPENSSH PRIVATE KEY"}
_PKCS7_LABELS = {b"PKCS7", b"CMS"}
_OID_PKCS7_DATA = bytes.fromhex("06092a864886f70d010701")

_NIP_PATTERN = re.compile(r"^(?:TINPL|NIP|VATPL)[-:]?(\d{10})$", re.IGNORECASE)
_PESEL_PATTERN = re.compile(r"^(?:PNOPL|PESEL)[-:]?(\d{11})$", re.IGNORECASE)

_MAGIC_HINTS = (
    (b"\x89PNG", "obraz PNG", "a PNG image"),
    (b"\xff\xd8\xff", "obraz JPEG", "a JPEG image"),
    (b"%PDF", "dokument PDF", "a PDF document"),
    (
        b"PK\x03\x04",
        "archiwum ZIP (np. dokument Word lub Excel)",
        "a ZIP archive (e.g. a Word or Excel file)",
    ),
    (b"<?xml", "plik XML", "an XML file"),
)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Problem:
    """One thing wrong (``severity="error"``) or worth knowing (``"warning"``) about the upload."""

    code: str
    field: str
    severity: str
    message_pl: str
    message_en: str
    slot: str | None = None

    @property
    def is_error(self) -> bool:
        """True for problems that block storing the files."""
        return self.severity == "error"

    def as_dict(self) -> dict[str, str]:
        """The CLI/JSON form (code, field, severity, message_pl, message_en)."""
        return {
            "code": self.code,
            "field": self.field,
            "severity": self.severity,
            "message_pl": self.message_pl,
            "message_en": self.message_en,
        }


@dataclass(frozen=True)
class Note:
    """Information that is neither an error nor a warning (e.g. "the leaf of a chain was used")."""

    field: str
    message_pl: str
    message_en: str
    slot: str | None = None


@dataclass(frozen=True)
class Identity:
    """Whom the certificate identifies in KSeF: a NIP or a PESEL (``shown`` is masked for PESEL)."""

    type: str
    value: str
    shown: str

    def as_dict(self) -> dict[str, str]:
        """The CLI/JSON form; a PESEL is always masked."""
        return {"type": self.type, "value": self.shown}


@dataclass(frozen=True)
class CertificateInfo:
    """What the portal needs to know about a loaded certificate (``subject`` shows a PESEL masked)."""

    certificate: x509.Certificate
    der: bytes
    subject: str
    common_name: str | None
    organization: str | None
    identity: Identity | None
    ksef_type: str | None
    serial: str
    issuer: str
    issuer_common_name: str | None
    ksef_issuer: bool
    not_before: datetime
    not_after: datetime
    key_algorithm: str
    fingerprint: str

    def as_dict(self) -> dict[str, object]:
        """The ``certificate`` object of the CLI contract."""
        return {
            "subject": self.subject,
            "identity": self.identity.as_dict() if self.identity else None,
            "ksef_type": self.ksef_type,
            "serial": self.serial,
            "issuer": self.issuer,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "key_algorithm": self.key_algorithm,
        }


@dataclass(frozen=True)
class KeyInfo:
    """A loaded private key, with the bytes exactly as uploaded."""

    private_key: object
    data: bytes
    algorithm: str
    encrypted: bool

    def public_key_der(self) -> bytes:
        """SubjectPublicKeyInfo DER of the key's public half (for matching with a certificate)."""
        return _spki(self.private_key.public_key())


@dataclass(frozen=True)
class CertificateCheck:
    """Verdict on one certificate field."""

    slot: str
    certificate: CertificateInfo | None
    problems: tuple[Problem, ...]
    notes: tuple[Note, ...] = ()

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(p.is_error for p in self.problems)


@dataclass(frozen=True)
class KeyCheck:
    """Verdict on one key field (with its password)."""

    slot: str
    key: KeyInfo | None
    problems: tuple[Problem, ...]
    notes: tuple[Note, ...] = ()

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not any(p.is_error for p in self.problems)


@dataclass(frozen=True)
class PairCheck:
    """Verdict on one slot: certificate, key and password together."""

    slot: str
    certificate: CertificateInfo | None
    key: KeyInfo | None
    password: str | None
    problems: tuple[Problem, ...]
    notes: tuple[Note, ...] = ()

    @property
    def ok(self) -> bool:
        """True when there is no error and both files were loaded."""
        return (
            self.certificate is not None
            and self.key is not None
            and not any(p.is_error for p in self.problems)
        )

    def as_dict(self) -> dict[str, object]:
        """The JSON object printed by ``klucznik certs check``."""
        return {
            "ok": self.ok,
            "slot": self.slot,
            "certificate": self.certificate.as_dict() if self.certificate else None,
            "problems": [p.as_dict() for p in self.problems],
            "notes": [
                {"field": n.field, "message_pl": n.message_pl, "message_en": n.message_en} for n in self.notes
            ],
        }


@dataclass(frozen=True)
class PairInput:
    """The raw contents of one section of the form (``None`` or ``b""`` = nothing uploaded)."""

    crt: bytes | None = None
    key: bytes | None = None
    password: str | None = None


@dataclass(frozen=True)
class SetCheck:
    """Verdict on the whole upload: both pairs and the company NIP."""

    nip: str | None
    online: PairCheck
    offline: PairCheck
    problems: tuple[Problem, ...] = dataclass_field(default=())

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        """Problems of both slots and of the NIP field, in form order."""
        return self.online.problems + self.offline.problems + self.problems

    @property
    def ok(self) -> bool:
        """True when both pairs are complete and nothing is an error."""
        return (
            self.nip is not None
            and self.online.ok
            and self.offline.ok
            and not any(p.is_error for p in self.all_problems)
        )

    def pair(self, slot: str) -> PairCheck:
        """The pair check of ``slot``."""
        return self.online if slot == "online" else self.offline


# ---------------------------------------------------------------------------------------------
# Public checks


def check_certificate(
    data: bytes | None, *, slot: str, at: datetime, nip: str | None = None
) -> CertificateCheck:
    """Check one certificate file for ``slot`` on its own (inline check of the .crt field)."""
    _require_slot(slot)
    info, problems, notes = _read_certificate(data, slot=slot)
    if info is not None:
        problems += _certificate_problems(info, slot=slot, at=_utc(at), nip=nip)
    return CertificateCheck(slot=slot, certificate=info, problems=tuple(problems), notes=tuple(notes))


def check_key(data: bytes | None, *, slot: str, password: str | None = None) -> KeyCheck:
    """Check one key file (and its password, if any) on its own (inline check of the .key field)."""
    _require_slot(slot)
    key, problems, notes = _read_key(data, password, slot=slot)
    if key is not None:
        problems += _key_algorithm_problems(key, slot=slot)
    return KeyCheck(slot=slot, key=key, problems=tuple(problems), notes=tuple(notes))


def check_pair(
    *,
    slot: str,
    crt: bytes | None,
    key: bytes | None,
    password: str | None,
    at: datetime,
    nip: str | None = None,
) -> PairCheck:
    """Check one slot: the certificate, the key, the password, their match (and the NIP when given).

    ``nip`` must already be normalised (10 digits); use :func:`check_nip` for what the user typed.
    """
    _require_slot(slot)
    at = _utc(at)
    swapped = _swapped_within_pair(crt, key, slot=slot)
    if swapped is not None:
        return PairCheck(slot=slot, certificate=None, key=None, password=password, problems=(swapped,))
    key_info, key_problems, key_notes = _read_key(key, password, slot=slot)
    cert_info, cert_problems, cert_notes = _read_certificate(crt, slot=slot, key=key_info)
    problems = list(cert_problems)
    if cert_info is not None:
        problems += _certificate_problems(cert_info, slot=slot, at=at, nip=nip)
    problems += key_problems
    if key_info is not None:
        cert_key_refused = any(p.code == "unsupported_key" for p in problems)
        if not cert_key_refused:
            problems += _key_algorithm_problems(key_info, slot=slot)
        if cert_info is not None and _spki(cert_info.certificate.public_key()) != key_info.public_key_der():
            problems.append(_key_mismatch(slot))
    return PairCheck(
        slot=slot,
        certificate=cert_info,
        key=key_info,
        password=password,
        problems=tuple(problems),
        notes=tuple(cert_notes + key_notes),
    )


def check_set(
    *, online: PairInput, offline: PairInput, nip: str | None, at: datetime, client_nip: str | None = None
) -> SetCheck:
    """Check the whole form: both pairs, the NIP, the same subject in both, and swaps between sections.

    ``client_nip``: the NIP of the client the files are uploaded for; a different NIP typed into the
    form is refused (``nip_mismatch`` on the ``nip`` field).
    """
    nip_value, nip_problems = check_nip(nip)
    if nip_value is not None and client_nip is not None and nip_value != client_nip:
        nip_problems = (_client_nip_mismatch(nip_value, client_nip),)
    pairs = {
        slot: check_pair(
            slot=slot, crt=given.crt, key=given.key, password=given.password, at=at, nip=nip_value
        )
        for slot, given in (("online", online), ("offline", offline))
    }
    pairs = _detect_swaps_between_pairs(pairs)
    set_problems = list(nip_problems) + _different_subjects(pairs)
    return SetCheck(
        nip=nip_value, online=pairs["online"], offline=pairs["offline"], problems=tuple(set_problems)
    )


def _client_nip_mismatch(typed: str, client_nip: str) -> Problem:
    """nip_mismatch on the NIP field: the typed NIP is not the client's."""
    return _problem(
        "nip_mismatch",
        "nip",
        None,
        f"Wpisany NIP {nip_rules.format_nip(typed)} nie jest NIP-em tego klienta ({nip_rules.format_nip(client_nip)}). "
        "Pliki wgrywasz dla tego klienta: wpisz jego NIP albo przejdź do właściwego klienta.",
        f"The NIP entered, {nip_rules.format_nip(typed)}, is not this client's NIP ({nip_rules.format_nip(client_nip)}). "
        "The files are uploaded for this client: enter its NIP or go to the right client.",
    )


def save_uploaded_set(
    db: Database, *, client_id: int, result: SetCheck, actor: str | None, ip: str | None, at: datetime
) -> tuple[int, int]:
    """Store both checked pairs for a client, inside ``store.write()``; returns the new credential ids.

    The client's active credentials become ``superseded`` (never deleted), its auth method becomes
    ``user_certs`` and an audit record ``credentials.upload`` is written, all in the caller's
    transaction, so either everything is stored or nothing.
    """
    if not result.ok:
        raise ValidationError(
            "Pliki mają błędy i nie zostały zapisane.",
            "The files have errors and were not stored.",
            code="invalid",
        )
    clients.get_client(db, client_id)
    superseded = credentials.supersede_active(db, client_id, at=at)
    ids = tuple(
        _store_pair(db, client_id=client_id, pair=result.pair(slot), actor=actor, at=at) for slot in SLOTS
    )
    clients.set_auth_method(db, client_id, "user_certs")
    audit.record(
        db,
        actor=actor,
        action="credentials.upload",
        object_type="client",
        object_id=client_id,
        details={
            "online_serial": result.online.certificate.serial,
            "offline_serial": result.offline.certificate.serial,
            "superseded": superseded,
        },
        ip=ip,
        at=at,
    )
    return ids


def _store_pair(db: Database, *, client_id: int, pair: PairCheck, actor: str | None, at: datetime) -> int:
    """One uploaded pair as a ``credentials`` row: key bytes as uploaded, the password only if the key needs one."""
    return credentials.add_credential(
        db,
        client_id=client_id,
        slot=pair.slot,
        origin="uploaded",
        info=pair.certificate,
        ksef_type=pair.certificate.ksef_type,
        private_key=pair.key.data,
        key_password=pair.password if pair.key.encrypted else None,
        actor=actor,
        at=at,
    )


def check_nip(value: str | None) -> tuple[str | None, tuple[Problem, ...]]:
    """Normalise the NIP typed into the form: ``(10 digits, ())`` or ``(None, (nip_invalid,))``."""
    try:
        return nip_rules.normalize(value or ""), ()
    except ValidationError as exc:
        return None, (Problem("nip_invalid", "nip", "error", exc.message_pl, exc.message_en),)


def load_certificate(data: bytes) -> CertificateInfo:
    """Load a PEM or DER certificate (the leaf of a PEM chain) or raise :class:`ValidationError`."""
    info, problems, _notes = _read_certificate(data, slot=None)
    if info is None:
        first = problems[0]
        raise ValidationError(first.message_pl, first.message_en, field="crt", code=first.code)
    return info


def load_private_key(data: bytes, *, password: str | None = None) -> KeyInfo:
    """Load a private key in any supported format or raise :class:`ValidationError`."""
    key, problems, _notes = _read_key(data, password, slot=None)
    if key is None:
        first = problems[0]
        raise ValidationError(first.message_pl, first.message_en, field=first.field, code=first.code)
    return key


def is_key_encrypted(data: bytes) -> bool:
    """True when ``data`` is a password-protected private key (cheap: no key derivation)."""
    for block, pem in _key_candidates(_normalise_text(data)):
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


# ---------------------------------------------------------------------------------------------
# Reading files


def _read_certificate(
    data: bytes | None, *, slot: str | None, key: KeyInfo | None = None
) -> tuple[CertificateInfo | None, list[Problem], list[Note]]:
    """Load the certificate of a file, or say precisely why it is not one."""
    limit = _limit_problem(data, field="crt", slot=slot)
    if limit is not None:
        return None, [limit], []
    text = _normalise_text(data)
    if _is_pkcs12(text):
        return None, [_pkcs12_problem("crt", slot)], []
    blocks = _pem_blocks(text)
    if blocks:
        return _certificate_from_pem(blocks, slot=slot, key=key)
    certs = _der_certificates(text)
    if certs:
        return _summarise_chain(certs, slot=slot, key=key)
    if _looks_like_der_key(text):
        return None, [_key_in_certificate_field(slot)], []
    return None, [_not_a_certificate(slot, _garbage_hint(text))], []


def _certificate_from_pem(
    blocks: list[tuple[bytes, bytes]], *, slot: str | None, key: KeyInfo | None
) -> tuple[CertificateInfo | None, list[Problem], list[Note]]:
    """The certificate(s) among PEM blocks; a key or a CSR in the certificate field is named as such."""
    labels = {label for label, _ in blocks}
    certs: list[x509.Certificate] = []
    for label, block in blocks:
        if label in _CERT_LABELS:
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                return (
                    None,
                    [
                        _not_a_certificate(
                            slot, ("uszkodzony blok certyfikatu (PEM)", "a damaged PEM certificate block")
                        )
                    ],
                    [],
                )
        elif label in _PKCS7_LABELS:
            try:
                certs.extend(pkcs7.load_pem_pkcs7_certificates(block))
            except ValueError:
                continue
    if certs:
        info, problems, notes = _summarise_chain(certs, slot=slot, key=key)
        if labels & (_KEY_LABELS | _OTHER_KEY_LABELS):
            notes.append(
                Note(
                    "crt",
                    "Plik certyfikatu zawiera też klucz prywatny; klucz wgraj osobno w polu klucza (.key).",
                    "The certificate file also holds a private key; upload the key "
                    "separately in the key (.key) field.",
                    slot,
                )
            )
        return info, problems, notes
    if labels & (_KEY_LABELS | _OTHER_KEY_LABELS):
        return None, [_key_in_certificate_field(slot)], []
    if b"CERTIFICATE REQUEST" in labels or b"NEW CERTIFICATE REQUEST" in labels:
        return (
            None,
            [
                _problem(
                    "not_a_certificate",
                    "crt",
                    slot,
                    "To jest wniosek certyfikacyjny (CSR), a nie certyfikat. Wgraj plik .crt pobrany z KSeF po "
                    "wydaniu certyfikatu.",
                    "This is a certificate signing request (CSR), not a certificate. Upload the .crt file downloaded "
                    "from KSeF once the certificate was issued.",
                )
            ],
            [],
        )
    if b"PUBLIC KEY" in labels:
        return None, [_not_a_certificate(slot, ("klucz publiczny", "a public key"))], []
    return None, [_not_a_certificate(slot, None)], []


def _summarise_chain(
    certs: list[x509.Certificate], *, slot: str | None, key: KeyInfo | None
) -> tuple[CertificateInfo, list[Problem], list[Note]]:
    """Pick the leaf of one or more certificates and summarise it (with a note for a chain)."""
    leaf = _pick_leaf(certs, key)
    notes: list[Note] = []
    if len(certs) > 1:
        name = _first_attribute(leaf.subject, NameOID.COMMON_NAME) or leaf.subject.rfc4514_string()
        notes.append(
            Note(
                "crt",
                f"Plik zawiera {len(certs)} certyfikaty (łańcuch); użyto certyfikatu końcowego: {name}.",
                f"The file holds {len(certs)} certificates (a chain); the end-entity certificate was used: {name}.",
                slot,
            )
        )
    return summarise(leaf), [], notes


def _pick_leaf(certs: list[x509.Certificate], key: KeyInfo | None) -> x509.Certificate:
    """The certificate that matches the key, else the one that issued none of the others."""
    if key is not None:
        spki = key.public_key_der()
        for cert in certs:
            if _spki(cert.public_key()) == spki:
                return cert
    issuers = {cert.issuer for cert in certs if cert.issuer != cert.subject}
    for cert in certs:
        if cert.subject not in issuers:
            return cert
    return certs[0]


def _read_key(
    data: bytes | None, password: str | None, *, slot: str | None
) -> tuple[KeyInfo | None, list[Problem], list[Note]]:
    """Load the private key of a file (decrypting it at most once), or say precisely why not."""
    limit = _limit_problem(data, field="key", slot=slot)
    if limit is not None:
        return None, [limit], []
    text = _normalise_text(data)
    if _is_pkcs12(text):
        return None, [_pkcs12_problem("key", slot)], []
    blocks = _pem_blocks(text)
    labels = {label for label, _ in blocks}
    if blocks and not labels & (_KEY_LABELS | _OTHER_KEY_LABELS):
        return None, [_pem_without_key(labels, slot)], []
    if not blocks and _der_certificates(text):
        return None, [_certificate_in_key_field(slot)], []
    if labels & _OTHER_KEY_LABELS and not labels & _KEY_LABELS:
        return (
            None,
            [
                _problem(
                    "unsupported_key",
                    "key",
                    slot,
                    "Ten klucz jest w formacie, którego KSeF nie używa (DSA lub OpenSSH). KSeF przyjmuje klucze EC P-256 "
                    "lub RSA 2048: wgraj plik .key zapisany przy wnioskowaniu o certyfikat.",
                    "This key is in a format KSeF does not use (DSA or OpenSSH). KSeF takes EC P-256 or RSA 2048 keys: "
                    "upload the .key file saved when the certificate was requested.",
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
        return None, [_unsupported_key_format(slot)], notes
    except ValueError:
        if encrypted_label:
            return None, [_unsupported_encryption(slot)], notes
        hint = None if pem else _garbage_hint(block)
        return None, [_not_a_private_key(slot, hint)], notes
    if key is not None:
        if password:
            notes = [
                *notes,
                Note(
                    "password",
                    "Ten klucz nie jest zabezpieczony hasłem; wpisane hasło nie było potrzebne.",
                    "This key is not password-protected; the password entered was not needed.",
                    slot,
                ),
            ]
        return (
            KeyInfo(private_key=key, data=original, algorithm=_key_algorithm(key), encrypted=False),
            [],
            notes,
        )
    if not password:
        return (
            None,
            [
                _problem(
                    "password_required",
                    "password",
                    slot,
                    "Klucz prywatny jest zaszyfrowany: wpisz hasło ustawione przy wnioskowaniu o certyfikat w Aplikacji "
                    "Podatnika KSeF.",
                    "The private key is encrypted: enter the password set when the certificate was requested in the KSeF "
                    "taxpayer application.",
                )
            ],
            notes,
        )
    try:
        key = _load_key_bytes(block, password.encode("utf-8"), pem=pem)
    except UnsupportedAlgorithm:
        return None, [_unsupported_encryption(slot)], notes
    except ValueError as exc:
        if _names_unsupported_encryption(exc):
            return None, [_unsupported_encryption(slot)], notes
        # A wrong password usually fails the CBC padding check ("Incorrect password"), but about one wrong
        # password in 200 decrypts to bytes whose padding happens to look valid; those fail later as a DER
        # parse error. The key already loaded as "encrypted, password needed", so either way the password
        # is what does not fit.
        return (
            None,
            [
                _problem(
                    "wrong_password",
                    "password",
                    slot,
                    "Hasło nie pasuje do tego klucza. Sprawdź wielkość liter i układ klawiatury; to hasło ustawiono przy "
                    "wnioskowaniu o certyfikat i KSeF nie może go odzyskać.",
                    "The password does not open this key. Check upper/lower case and the keyboard layout; it was set when "
                    "the certificate was requested and KSeF cannot recover it.",
                )
            ],
            notes,
        )
    return KeyInfo(private_key=key, data=original, algorithm=_key_algorithm(key), encrypted=True), [], notes


def _names_unsupported_encryption(exc: ValueError) -> bool:
    """Whether ``cryptography`` refused the key's encryption scheme itself (not the password)."""
    # cryptography's messages for a scheme it cannot decrypt; its generic "Could not deserialize key data"
    # (which merely *mentions* unsupported algorithms) is what a wrong password can also produce.
    return str(exc).lower().startswith(("unknown key encryption", "key encrypted with unknown cipher", "unsupported"))


def _load_key_bytes(block: bytes, password: bytes | None, *, pem: bool) -> object:
    """``cryptography``'s PEM or DER private-key loader."""
    if pem:
        return serialization.load_pem_private_key(block, password=password)
    return serialization.load_der_private_key(block, password=password)


def _key_candidates(text: bytes) -> list[tuple[bytes, bool]]:
    """The key blocks of a file as ``(bytes, is_pem)``: PEM key blocks, or the whole file as DER."""
    blocks = [(block, True) for label, block in _pem_blocks(text) if label in _KEY_LABELS]
    return blocks or [(text, False)]


def _key_notes(labels: set[bytes], slot: str | None) -> list[Note]:
    """A note when the key file also carries certificates."""
    if labels & _CERT_LABELS:
        return [
            Note(
                "key",
                "Plik klucza zawiera też certyfikat; certyfikat wgraj osobno w polu certyfikatu (.crt).",
                "The key file also holds a certificate; upload the certificate separately in the certificate "
                "(.crt) field.",
                slot,
            )
        ]
    return []


def summarise(cert: x509.Certificate) -> CertificateInfo:
    """Summarise a certificate: identity, KSeF type, serial, issuer, validity, key algorithm."""
    subject_names = _RFC4514_NAMES
    der = cert.public_bytes(serialization.Encoding.DER)
    issuer_cn = _first_attribute(cert.issuer, NameOID.COMMON_NAME)
    identity = identity_of(cert.subject)
    subject_text = cert.subject.rfc4514_string(subject_names)
    if identity is not None and identity.type == "PESEL":
        subject_text = subject_text.replace(identity.value, identity.shown)
    return CertificateInfo(
        certificate=cert,
        der=der,
        subject=subject_text,
        common_name=_first_attribute(cert.subject, NameOID.COMMON_NAME),
        organization=_first_attribute(cert.subject, NameOID.ORGANIZATION_NAME),
        identity=identity,
        ksef_type=ksef_type_of(cert),
        serial=f"{cert.serial_number:016X}",
        issuer=cert.issuer.rfc4514_string(subject_names),
        issuer_common_name=issuer_cn,
        ksef_issuer=is_ksef_issuer(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_algorithm=_key_algorithm(cert.public_key()),
        fingerprint=hashlib.sha256(der).hexdigest(),
    )


def identity_of(subject: x509.Name) -> Identity | None:
    """NIP (organizationIdentifier VATPL-, serialNumber TINPL-/NIP-) or PESEL (PNOPL-/PESEL-) of a subject."""
    for value in _attribute_values(subject, NameOID.ORGANIZATION_IDENTIFIER):
        match = _NIP_PATTERN.match(value) or re.fullmatch(r"(\d{10})", value)
        if match:
            return Identity("NIP", match.group(1), match.group(1))
    for value in _attribute_values(subject, NameOID.SERIAL_NUMBER):
        match = _NIP_PATTERN.match(value) or re.fullmatch(r"(\d{10})", value)
        if match:
            return Identity("NIP", match.group(1), match.group(1))
        match = _PESEL_PATTERN.match(value) or re.fullmatch(r"(\d{11})", value)
        if match:
            return Identity("PESEL", match.group(1), mask_pesel(match.group(1)))
    return None


def mask_pesel(pesel: str) -> str:
    """``85010112345`` → ``*******2345`` (the birth date and sex digits are hidden)."""
    return "*" * (len(pesel) - 4) + pesel[-4:]


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
        cn = (_first_attribute(cert.subject, NameOID.COMMON_NAME) or "").lower()
        if cn.endswith("(offline)"):
            return "Offline"
        if cn.endswith("(uwierzytelnienie)"):
            return "Authentication"
    return None


def is_ksef_issuer(issuer: x509.Name) -> bool:
    """True for the KSeF CAs (TEST CCK KSeF, CCK KSeF) and the project's sandbox KSeF CA."""
    common_names = _attribute_values(issuer, NameOID.COMMON_NAME)
    return any(cn in KSEF_ISSUER_NAMES or SANDBOX_ISSUER_MARK in cn for cn in common_names)


# ---------------------------------------------------------------------------------------------
# Rules on a loaded certificate / key


def _certificate_problems(
    info: CertificateInfo, *, slot: str, at: datetime, nip: str | None
) -> list[Problem]:
    """Every rule about one certificate in ``slot``: key algorithm, KSeF type, validity, issuer, identity."""
    problems: list[Problem] = []
    if not _algorithm_supported(info.certificate.public_key()):
        problems.append(_unsupported_algorithm("crt", slot, info.key_algorithm))
    problems += _type_problems(info, slot)
    problems += _validity_problems(info, slot, at)
    if not info.ksef_issuer:
        problems.append(_foreign_issuer(info, slot))
    problems += _identity_problems(info, slot, nip)
    return problems


def _type_problems(info: CertificateInfo, slot: str) -> list[Problem]:
    """not_ksef_type / wrong_slot from the keyUsage of the certificate."""
    if info.ksef_type is None:
        return [
            _problem(
                "not_ksef_type",
                "crt",
                slot,
                "To nie jest certyfikat KSeF: nie ma przeznaczenia „uwierzytelnienie” ani „offline” (pole keyUsage). "
                "Wgraj certyfikat pobrany z Aplikacji Podatnika KSeF (Certyfikaty → pobierz .crt).",
                'This is not a KSeF certificate: it has neither the "authentication" nor the "offline" purpose '
                "(keyUsage). Upload the certificate downloaded from the KSeF taxpayer application "
                "(Certificates → download .crt).",
            )
        ]
    if info.ksef_type != SLOT_TYPES[slot]:
        other = "offline" if slot == "online" else "online"
        return [
            _problem(
                "wrong_slot",
                "crt",
                slot,
                f"To jest certyfikat {other} — wgraj go w sekcji „{SECTION_TITLES_PL[other]}”. Tutaj potrzebny "
                f"jest certyfikat {slot}.",
                f'This is the {other} certificate — upload it in the "{SECTION_TITLES_EN[other]}" section. '
                f"This section needs the {slot} certificate.",
            )
        ]
    return []


def _validity_problems(info: CertificateInfo, slot: str, at: datetime) -> list[Problem]:
    """expired (error), not_yet_valid (warning), expires_soon (warning)."""
    if at > info.not_after:
        return [
            _problem(
                "expired",
                "crt",
                slot,
                f"Certyfikat wygasł {_date_pl(info.not_after)}. Wygeneruj nowy certyfikat w Aplikacji Podatnika KSeF "
                "i wgraj nowe pliki.",
                f"The certificate expired on {_date_en(info.not_after)}. Request a new certificate in the KSeF "
                "taxpayer application and upload the new files.",
            )
        ]
    if at < info.not_before:
        return [
            _problem(
                "not_yet_valid",
                "crt",
                slot,
                f"Certyfikat będzie ważny dopiero od {_date_pl(info.not_before)}. Możesz go wgrać teraz, ale KSeF "
                "przyjmie go dopiero od tej daty.",
                f"The certificate becomes valid only on {_date_en(info.not_before)}. You can upload it now, but KSeF "
                "will accept it only from that date.",
                severity="warning",
            )
        ]
    if info.not_after - at <= EXPIRY_WARNING:
        days = max((info.not_after - at).days, 0)
        return [
            _problem(
                "expires_soon",
                "crt",
                slot,
                f"Certyfikat wygasa {_date_pl(info.not_after)} (za {days} dni). Zawnioskuj wcześniej o nowy w "
                "Aplikacji Podatnika KSeF.",
                f"The certificate expires on {_date_en(info.not_after)} (in {days} days). Request a new one in the "
                "KSeF taxpayer application in good time.",
                severity="warning",
            )
        ]
    return []


def _foreign_issuer(info: CertificateInfo, slot: str) -> Problem:
    """not_ksef_issuer: an error for the offline slot (KOD II needs a KSeF certificate), a warning online."""
    issuer = info.issuer_common_name or info.issuer
    if slot == "offline":
        return _problem(
            "not_ksef_issuer",
            "crt",
            slot,
            f"Ten certyfikat wystawił „{issuer}”, a nie KSeF. Do kodu weryfikującego wystawcę (offline) nadaje się "
            "tylko certyfikat KSeF typu Offline z Aplikacji Podatnika KSeF.",
            f'This certificate was issued by "{issuer}", not by KSeF. Only a KSeF Offline certificate from the '
            "KSeF taxpayer application can sign the issuer verification code (offline).",
        )
    return _problem(
        "not_ksef_issuer",
        "crt",
        slot,
        f"Ten certyfikat wystawił „{issuer}”, a nie KSeF. Zwykle wgrywa się tu certyfikat KSeF; jeśli to nie "
        "pomyłka, sprawdź, czy KSeF przyjmie go do logowania.",
        f'This certificate was issued by "{issuer}", not by KSeF. Normally a KSeF certificate goes here; if this '
        "is intended, check that KSeF accepts it for logging in.",
        severity="warning",
    )


def _identity_problems(info: CertificateInfo, slot: str, nip: str | None) -> list[Problem]:
    """identity_person (warning) for a PESEL; nip_mismatch when the certificate's NIP is not the company's."""
    identity = info.identity
    if identity is None:
        if nip is None:
            return []
        return [
            _problem(
                "nip_mismatch",
                "crt",
                slot,
                "Certyfikat nie zawiera ani NIP, ani PESEL, więc nie da się potwierdzić, że należy do tej firmy. "
                "Wgraj certyfikat KSeF wystawiony dla firmy lub osoby uprawnionej.",
                "The certificate names neither a NIP nor a PESEL, so it cannot be confirmed to belong to this company. "
                "Upload a KSeF certificate issued to the company or to an authorised person.",
            )
        ]
    if identity.type == "PESEL":
        return [
            _problem(
                "identity_person",
                "crt",
                slot,
                f"Certyfikat identyfikuje osobę (PESEL {identity.shown}), nie firmę. To jest dopuszczalne: KSeF "
                "sprawdzi przy logowaniu, czy ta osoba ma uprawnienia do tego NIP.",
                f"The certificate identifies a person (PESEL {identity.shown}), not the company. That is allowed: at "
                "login KSeF checks whether this person holds permissions for this NIP.",
                severity="warning",
            )
        ]
    if nip is not None and identity.value != nip:
        return [
            _problem(
                "nip_mismatch",
                "crt",
                slot,
                f"Certyfikat jest wystawiony dla NIP {nip_rules.format_nip(identity.value)}, a firma ma NIP "
                f"{nip_rules.format_nip(nip)}. Wgraj certyfikat tej firmy albo popraw NIP.",
                f"The certificate was issued for NIP {nip_rules.format_nip(identity.value)}, but the company's NIP is "
                f"{nip_rules.format_nip(nip)}. Upload this company's certificate or correct the NIP.",
            )
        ]
    return []


def _key_algorithm_problems(key: KeyInfo, *, slot: str) -> list[Problem]:
    """unsupported_key when the key is not EC P-256 or RSA ≥ 2048."""
    if _algorithm_supported(key.private_key):
        return []
    return [_unsupported_algorithm("key", slot, key.algorithm)]


def _algorithm_supported(key: object) -> bool:
    """EC P-256 or RSA with at least 2048 bits (what KSeF certifies)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return isinstance(key.curve, ec.SECP256R1)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return key.key_size >= MIN_RSA_BITS
    return False


def _key_algorithm(key: object) -> str:
    """A short label: ``EC P-256``, ``RSA 2048``, ``Ed25519``, ..."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"EC {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


# ---------------------------------------------------------------------------------------------
# Swaps and set-level rules


def _swapped_within_pair(crt: bytes | None, key: bytes | None, *, slot: str) -> Problem | None:
    """files_swapped when the key sits in the certificate field and the certificate in the key field."""
    if not crt or not key or len(crt) > MAX_FILE_SIZE or len(key) > MAX_FILE_SIZE:
        return None
    if _holds_key(crt) and not _holds_certificate(crt) and _holds_certificate(key) and not _holds_key(key):
        return _problem(
            "files_swapped",
            "crt",
            slot,
            "Pliki są zamienione: w polu certyfikatu jest klucz prywatny, a w polu klucza — certyfikat. Wgraj plik "
            ".crt jako certyfikat, a plik .key jako klucz.",
            "The files are swapped: the certificate field holds the private key and the key field holds the "
            "certificate. Upload the .crt file as the certificate and the .key file as the key.",
        )
    return None


def _detect_swaps_between_pairs(pairs: dict[str, PairCheck]) -> dict[str, PairCheck]:
    """Replace wrong_slot/key_mismatch in both slots by files_swapped when the sections were exchanged."""
    online, offline = pairs["online"], pairs["offline"]
    codes_on = {p.code for p in online.problems}
    codes_off = {p.code for p in offline.problems}
    if "wrong_slot" in codes_on and "wrong_slot" in codes_off:
        pairs = {
            slot: _replace_code(pair, "wrong_slot", _sections_swapped(slot)) for slot, pair in pairs.items()
        }
    elif (
        "key_mismatch" in codes_on
        and "key_mismatch" in codes_off
        and online.certificate
        and offline.certificate
        and online.key
        and offline.key
        and _spki(online.certificate.certificate.public_key()) == offline.key.public_key_der()
        and _spki(offline.certificate.certificate.public_key()) == online.key.public_key_der()
    ):
        pairs = {
            slot: _replace_code(pair, "key_mismatch", _keys_swapped(slot)) for slot, pair in pairs.items()
        }
    return pairs


def _replace_code(pair: PairCheck, code: str, new: Problem) -> PairCheck:
    """``pair`` with its problem ``code`` replaced by ``new``."""
    problems = tuple(new if p.code == code else p for p in pair.problems)
    return replace(pair, problems=problems)


def _sections_swapped(slot: str) -> Problem:
    """files_swapped: the online certificate is in the offline section and vice versa."""
    return _problem(
        "files_swapped",
        "crt",
        slot,
        "Certyfikaty online i offline są zamienione miejscami: wgraj certyfikat „(uwierzytelnienie)” w sekcji "
        "online, a certyfikat „(offline)” w sekcji offline (razem z ich kluczami).",
        'The online and offline certificates are swapped: put the "(uwierzytelnienie)" certificate in the online '
        'section and the "(offline)" one in the offline section (each with its key).',
    )


def _keys_swapped(slot: str) -> Problem:
    """files_swapped: each section holds the other section's key."""
    return _problem(
        "files_swapped",
        "key",
        slot,
        "Klucze są zamienione między sekcjami: klucz z tej sekcji pasuje do certyfikatu z drugiej. Zamień pliki "
        ".key miejscami (hasła też).",
        "The keys are swapped between the sections: this section's key belongs to the other section's "
        "certificate. Exchange the .key files (and their passwords).",
    )


def _different_subjects(pairs: dict[str, PairCheck]) -> list[Problem]:
    """nip_mismatch when the online and offline certificates identify different subjects."""
    online, offline = pairs["online"].certificate, pairs["offline"].certificate
    if online is None or offline is None or online.identity is None or offline.identity is None:
        return []
    if (online.identity.type, online.identity.value) == (offline.identity.type, offline.identity.value):
        return []
    already = any(p.code == "nip_mismatch" for pair in pairs.values() for p in pair.problems)
    if already:
        return []
    return [
        _problem(
            "nip_mismatch",
            "crt",
            "offline",
            f"Certyfikaty online i offline należą do różnych podmiotów ({online.identity.type} {online.identity.shown} "
            f"i {offline.identity.type} {offline.identity.shown}). Obie pary muszą być wystawione dla tego samego "
            "podmiotu.",
            f"The online and offline certificates belong to different subjects ({online.identity.type} "
            f"{online.identity.shown} and {offline.identity.type} {offline.identity.shown}). Both pairs must be "
            "issued to the same subject.",
        )
    ]


# ---------------------------------------------------------------------------------------------
# Bytes-level helpers


def _limit_problem(data: bytes | None, *, field: str, slot: str | None) -> Problem | None:
    """empty_file / file_too_large before any parsing."""
    if not data or not data.strip():
        what_pl, what_en = (
            ("certyfikatu (.crt)", "certificate (.crt)")
            if field == "crt"
            else ("klucza (.key)", "key (.key)")
        )
        return _problem(
            "empty_file",
            field,
            slot,
            f"Plik {what_pl} jest pusty. Wybierz właściwy plik; jeśli był pobierany, pobierz go ponownie.",
            f"The {what_en} file is empty. Choose the right file; if it was downloaded, download it again.",
        )
    if len(data) > MAX_FILE_SIZE:
        return _problem(
            "file_too_large",
            field,
            slot,
            f"Plik ma {len(data) // 1024} KiB, a pliki certyfikatu i klucza KSeF mają około 1 KiB (limit 64 KiB). "
            "To chyba nie ten plik — wybierz plik .crt lub .key.",
            f"The file is {len(data) // 1024} KiB, while KSeF certificate and key files are about 1 KiB (limit "
            "64 KiB). This is probably the wrong file — choose the .crt or .key file.",
        )
    return None


def _normalise_text(data: bytes) -> bytes:
    """Strip a UTF-8 BOM and re-encode UTF-16 text (some Windows editors save PEM files that way)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("ascii")
        except (UnicodeError, ValueError):
            return data
    return data


def _pem_blocks(text: bytes) -> list[tuple[bytes, bytes]]:
    """Every ``-----BEGIN X-----`` … ``-----END X-----`` block as ``(label, block bytes)``."""
    if b"-----BEGIN " not in text:
        return []
    return [(m.group(1), m.group(0)) for m in _PEM_BLOCK.finditer(text)]


def _der_certificates(text: bytes) -> list[x509.Certificate]:
    """A DER certificate or a DER PKCS#7 bundle of certificates, else ``[]``."""
    if not text.startswith(b"\x30"):
        return []
    try:
        return [x509.load_der_x509_certificate(text)]
    except ValueError:
        pass
    try:
        return list(pkcs7.load_der_pkcs7_certificates(text))
    except (ValueError, UnsupportedAlgorithm):
        return []


def _looks_like_der_key(text: bytes) -> bool:
    """True when ``text`` is a DER private key (plain or encrypted)."""
    if not text.startswith(b"\x30"):
        return False
    try:
        serialization.load_der_private_key(text, password=None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _holds_key(data: bytes) -> bool:
    """True when the file is (or contains) a private key."""
    text = _normalise_text(data)
    blocks = _pem_blocks(text)
    if blocks:
        return any(label in _KEY_LABELS | _OTHER_KEY_LABELS for label, _ in blocks)
    return _looks_like_der_key(text)


def _holds_certificate(data: bytes) -> bool:
    """True when the file is (or contains) a certificate."""
    text = _normalise_text(data)
    blocks = _pem_blocks(text)
    if blocks:
        return any(label in _CERT_LABELS for label, _ in blocks)
    return bool(_der_certificates(text))


def _is_pkcs12(text: bytes) -> bool:
    """A PKCS#12 (.p12/.pfx) file: SEQUENCE { INTEGER 3, ContentInfo { pkcs7-data ... } }."""
    if not text.startswith(b"\x30") or len(text) < 16:
        return False
    length_octets = text[1] & 0x7F if text[1] & 0x80 else 0
    body = text[2 + length_octets :]
    return body.startswith(b"\x02\x01\x03\x30") and _OID_PKCS7_DATA in body[:24]


def _garbage_hint(text: bytes) -> tuple[str, str] | None:
    """What an unreadable file looks like (PNG, PDF, ZIP, ...), for the message."""
    for magic, pl, en in _MAGIC_HINTS:
        if text.startswith(magic):
            return pl, en
    return None


def _spki(public_key: object) -> bytes:
    """SubjectPublicKeyInfo DER of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _first_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    """The first value of ``oid`` in ``name`` or ``None``."""
    values = _attribute_values(name, oid)
    return values[0] if values else None


def _attribute_values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    """Every string value of ``oid`` in ``name``."""
    return [str(attr.value).strip() for attr in name.get_attributes_for_oid(oid)]


# ---------------------------------------------------------------------------------------------
# Messages


def _problem(
    code: str, field: str, slot: str | None, message_pl: str, message_en: str, *, severity: str = "error"
) -> Problem:
    """A :class:`Problem` (asserts the code is one of :data:`CODES`)."""
    assert code in CODES, code
    return Problem(
        code=code, field=field, severity=severity, message_pl=message_pl, message_en=message_en, slot=slot
    )


def _not_a_certificate(slot: str | None, hint: tuple[str, str] | None) -> Problem:
    """not_a_certificate, naming what the file seems to be when we can tell."""
    seems_pl = f" (wygląda na: {hint[0]})" if hint else ""
    seems_en = f" (it looks like {hint[1]})" if hint else ""
    return _problem(
        "not_a_certificate",
        "crt",
        slot,
        f"Ten plik nie jest certyfikatem{seems_pl}. Wgraj plik .crt pobrany z Aplikacji Podatnika KSeF.",
        f"This file is not a certificate{seems_en}. Upload the .crt file downloaded from the KSeF taxpayer "
        "application.",
    )


def _key_in_certificate_field(slot: str | None) -> Problem:
    """not_a_certificate for a private key uploaded as the certificate."""
    return _problem(
        "not_a_certificate",
        "crt",
        slot,
        "To jest klucz prywatny, a nie certyfikat. Wgraj go w polu klucza (.key), a tutaj plik .crt.",
        "This is a private key, not a certificate. Upload it in the key (.key) field and put the .crt file here.",
    )


def _certificate_in_key_field(slot: str | None) -> Problem:
    """not_a_private_key for a certificate uploaded as the key."""
    return _problem(
        "not_a_private_key",
        "key",
        slot,
        "To jest certyfikat, a nie klucz prywatny. Wgraj go w polu certyfikatu (.crt), a tutaj plik .key.",
        "This is a certificate, not a private key. Upload it in the certificate (.crt) field and put the .key "
        "file here.",
    )


def _pem_without_key(labels: set[bytes], slot: str | None) -> Problem:
    """not_a_private_key for a PEM file with no private key block."""
    if labels & _CERT_LABELS:
        return _certificate_in_key_field(slot)
    if b"PUBLIC KEY" in labels:
        return _problem(
            "not_a_private_key",
            "key",
            slot,
            "To jest klucz publiczny, a potrzebny jest klucz prywatny: plik .key zapisany przy wnioskowaniu o "
            "certyfikat.",
            "This is a public key; the private key is needed: the .key file saved when the certificate was "
            "requested.",
        )
    return _not_a_private_key(slot, None)


def _not_a_private_key(slot: str | None, hint: tuple[str, str] | None) -> Problem:
    """not_a_private_key for an unreadable key file."""
    seems_pl = f" (wygląda na: {hint[0]})" if hint else ""
    seems_en = f" (it looks like {hint[1]})" if hint else ""
    return _problem(
        "not_a_private_key",
        "key",
        slot,
        f"Ten plik nie jest kluczem prywatnym{seems_pl}. Wgraj plik .key zapisany przy wnioskowaniu o certyfikat "
        "w Aplikacji Podatnika KSeF.",
        f"This file is not a private key{seems_en}. Upload the .key file saved when the certificate was requested "
        "in the KSeF taxpayer application.",
    )


def _pkcs12_problem(field: str, slot: str | None) -> Problem:
    """pkcs12_file, with how to get separate .crt and .key files."""
    return _problem(
        "pkcs12_file",
        field,
        slot,
        "To jest plik PKCS#12 (.p12/.pfx), który łączy certyfikat i klucz. KSeF wydaje osobne pliki .crt i .key — "
        "wgraj je z Aplikacji Podatnika KSeF. Jeśli masz tylko ten plik, informatyk wyodrębni je poleceniami: "
        "openssl pkcs12 -in plik.p12 -clcerts -nokeys -out certyfikat.crt oraz "
        "openssl pkcs12 -in plik.p12 -nocerts -out klucz.key.",
        "This is a PKCS#12 file (.p12/.pfx) that bundles the certificate and the key. KSeF issues separate .crt "
        "and .key files — upload those from the KSeF taxpayer application. If you only have this file, IT staff "
        "can extract them with: openssl pkcs12 -in file.p12 -clcerts -nokeys -out certificate.crt and "
        "openssl pkcs12 -in file.p12 -nocerts -out key.key.",
    )


def _unsupported_algorithm(field: str, slot: str | None, algorithm: str) -> Problem:
    """unsupported_key for a key type KSeF does not certify."""
    return _problem(
        "unsupported_key",
        field,
        slot,
        f"Klucz typu {algorithm} nie jest obsługiwany: KSeF wydaje certyfikaty tylko dla kluczy EC P-256 lub RSA "
        "(co najmniej 2048 bitów). Wgraj pliki certyfikatu KSeF wygenerowane w Aplikacji Podatnika KSeF.",
        f"A {algorithm} key is not supported: KSeF issues certificates only for EC P-256 or RSA (at least 2048 "
        "bits) keys. Upload the KSeF certificate files generated in the KSeF taxpayer application.",
    )


def _unsupported_key_format(slot: str | None) -> Problem:
    """unsupported_key for a key whose algorithm cannot be loaded at all."""
    return _problem(
        "unsupported_key",
        "key",
        slot,
        "Tego rodzaju klucza nie da się użyć: KSeF przyjmuje klucze EC P-256 lub RSA (co najmniej 2048 bitów).",
        "This kind of key cannot be used: KSeF takes EC P-256 or RSA (at least 2048 bits) keys.",
    )


def _unsupported_encryption(slot: str | None) -> Problem:
    """unsupported_key for a key encrypted with a method we cannot decrypt."""
    return _problem(
        "unsupported_key",
        "key",
        slot,
        "Klucz jest zaszyfrowany metodą, której nie obsługujemy. Zapisz go ponownie z szyfrowaniem AES, np. "
        "poleceniem: openssl pkcs8 -topk8 -v2 aes-256-cbc -in stary.key -out nowy.key, i wgraj nowy plik.",
        "The key is encrypted with a method we do not support. Save it again with AES encryption, e.g. with "
        "openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key, and upload the new file.",
    )


def _key_mismatch(slot: str) -> Problem:
    """key_mismatch: the key belongs to another certificate."""
    return _problem(
        "key_mismatch",
        "key",
        slot,
        "Ten klucz nie pasuje do certyfikatu: każdy certyfikat ma własny plik .key zapisany przy wnioskowaniu. "
        "Wgraj klucz zapisany razem z tym certyfikatem.",
        "This key does not belong to the certificate: each certificate has its own .key file saved when it was "
        "requested. Upload the key saved together with this certificate.",
    )


# ---------------------------------------------------------------------------------------------
# Small helpers


def _require_slot(slot: str) -> None:
    """Refuse an unknown slot name (a programming error, not a user error)."""
    if slot not in SLOTS:
        raise ValueError(f"slot must be one of {SLOTS}, not {slot!r}")


def _utc(at: datetime) -> datetime:
    """``at`` as an aware UTC datetime (naive values are taken as UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _iso(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date_pl(value: datetime) -> str:
    """``21.01.2028`` (the usual Polish date form)."""
    return value.strftime("%d.%m.%Y")


def _date_en(value: datetime) -> str:
    """``2028-01-21``."""
    return value.strftime("%Y-%m-%d")
