"""The vocabulary of the certificate checks: slots, problem codes, and the frozen results of every check.

A *slot* is one section of the upload form: ``online`` takes the KSeF *Authentication* certificate (logging
in) and ``offline`` the *Offline* certificate (signing the KOD II link of offline invoices), each with its
private key and the key's password. Field scheme of :class:`Problem`: ``field`` is one of ``"crt"``,
``"key"``, ``"password"`` (a slot's certificate file, key file and key password) or ``"nip"`` (the company
NIP of the form); ``slot`` names the section, ``None`` for the NIP.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from datetime import timedelta

from cryptography import x509

from klucznik.certs.formats import spki
from klucznik.clock import iso
from klucznik.ids import Identity
from klucznik.text import Text

MAX_FILE_SIZE = 64 * 1024
"""Largest accepted file (bytes). KSeF files are about 1 KiB; this also keeps uploads in memory."""

EXPIRY_WARNING = timedelta(days=30)
"""A certificate that expires sooner than this is accepted with a warning."""

MIN_RSA_BITS = 2048

SLOTS = ("online", "offline")
SLOT_TYPES = {"online": "Authentication", "offline": "Offline"}
#: The title of each section of the upload form, as the messages name it.
SECTION_TITLES = {
    "online": Text("Certyfikat uwierzytelniania (online)", "Authentication certificate (online)"),
    "offline": Text("Certyfikat weryfikacji wystawcy (offline)", "Issuer verification certificate (offline)"),
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


@dataclass(frozen=True)
class Problem:
    """One thing wrong (``severity="error"``) or worth knowing (``"warning"``) about the upload."""

    code: str
    field: str
    severity: str
    text: Text
    slot: str | None = None

    @property
    def message_pl(self) -> str:
        return self.text.pl

    @property
    def message_en(self) -> str:
        return self.text.en

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
    text: Text
    slot: str | None = None

    @property
    def message_pl(self) -> str:
        return self.text.pl

    @property
    def message_en(self) -> str:
        return self.text.en


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
            "not_before": iso(self.not_before),
            "not_after": iso(self.not_after),
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
        return spki(self.private_key.public_key())


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
    #: Optional slots left entirely empty (nothing to store for them), e.g. ``("offline",)``.
    absent: tuple[str, ...] = ()

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        """Problems of both slots and of the NIP field, in form order."""
        return self.online.problems + self.offline.problems + self.problems

    @property
    def given(self) -> tuple[str, ...]:
        """The slots that were filled in (and are to be stored when everything is correct)."""
        return tuple(slot for slot in SLOTS if slot not in self.absent)

    @property
    def ok(self) -> bool:
        """True when every given pair is complete and nothing is an error."""
        return (
            self.nip is not None
            and bool(self.given)
            and all(self.pair(slot).ok for slot in self.given)
            and not any(p.is_error for p in self.all_problems)
        )

    def pair(self, slot: str) -> PairCheck:
        """The pair check of ``slot``."""
        return self.online if slot == "online" else self.offline


def require_slot(slot: str) -> None:
    """Refuse an unknown slot name (a programming error, not a user error)."""
    if slot not in SLOTS:
        raise ValueError(f"slot must be one of {SLOTS}, not {slot!r}")
