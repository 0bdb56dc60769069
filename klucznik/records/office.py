"""The office's own profile (name, NIP, KSeF environment) and its own KSeF certificate with its key.

Every credential belongs to the KSeF environment it was obtained in (:data:`ENVIRONMENTS`); the office's
certificate is looked up only for one environment, and :class:`EnvironmentMismatch` is raised wherever a
credential of another environment would be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlite_utils import Database

from klucznik import clock
from klucznik import ids
from klucznik.errors import FieldErrors
from klucznik.errors import PortalError
from klucznik.errors import ValidationError
from klucznik.records import audit
from klucznik.text import Text

ENVIRONMENTS = ("test", "demo", "prod", "sandbox")
#: How each environment is named on the pages and in messages.
ENVIRONMENT_NAMES = {"test": "TEST", "demo": "DEMO", "prod": "PRD (produkcja)", "sandbox": "SANDBOX"}


def environment_name(environment: str | None) -> str:
    """``TEST``, ``DEMO``, ``PRD (produkcja)``, ``SANDBOX`` (or the raw value of an unknown one)."""
    return ENVIRONMENT_NAMES.get(environment or "", environment or "?")


class EnvironmentMismatch(PortalError):
    """A credential of one KSeF environment was about to be used in another: never done."""

    code = "environment_mismatch"


def environment_mismatch(*, stored: str, current: str, what: Text) -> EnvironmentMismatch:
    """The plain-words refusal to use ``what`` (stored for ``stored``) in the ``current`` environment."""
    return EnvironmentMismatch(
        Text(
            f"{what.pl} pochodzi ze środowiska KSeF {environment_name(stored)}, a portal pracuje teraz ze "
            f"środowiskiem {environment_name(current)}. Portal nie używa danych dostępowych w innym środowisku: "
            f"wgraj lub uzyskaj je dla {environment_name(current)} albo przywróć poprzednie środowisko.",
            f"{what.en} comes from the KSeF {environment_name(stored)} environment, but the portal now works with "
            f"{environment_name(current)}. The portal never uses credentials in another environment: upload or "
            f"obtain them for {environment_name(current)}, or switch the environment back.",
        )
    )


#: Longest office name and sandbox address accepted (the same limit as a client's name).
MAX_NAME = 300
MAX_URL = 500


@dataclass(frozen=True)
class OfficeProfile:
    """The settings of the office."""

    name: str = ""
    nip: str = ""
    ksef_environment: str = "test"
    sandbox_url: str = ""

    @property
    def nip_formatted(self) -> str:
        return ids.format_nip(self.nip)


def get_office(db: Database) -> OfficeProfile:
    """The stored profile (defaults until it is saved)."""
    values = {
        row[0]: row[1] for row in db.execute("SELECT key, value FROM settings WHERE key LIKE 'office.%'")
    }
    return OfficeProfile(
        name=values.get("office.name", ""),
        nip=values.get("office.nip", ""),
        ksef_environment=values.get("office.ksef_environment", "test"),
        sandbox_url=values.get("office.sandbox_url", ""),
    )


def saved_environment(db: Database) -> str | None:
    """The KSeF environment saved in the profile (``None`` while the profile was never saved)."""
    row = db.execute("SELECT value FROM settings WHERE key = 'office.ksef_environment'").fetchone()
    return row[0] if row else None


def validate(*, name: str, nip: str, ksef_environment: str, sandbox_url: str = "") -> OfficeProfile:
    """Check every field; reports all problems at once (:class:`FieldErrors`)."""
    errors: dict[str, ValidationError] = {}
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = ValidationError(Text("Wpisz nazwę biura.", "Enter the office's name."), field="name")
    elif len(name) > MAX_NAME:
        errors["name"] = ValidationError(
            Text(
                f"Nazwa biura może mieć najwyżej {MAX_NAME} znaków (wpisano {len(name)}).",
                f"The office's name can have at most {MAX_NAME} characters ({len(name)} entered).",
            ),
            field="name",
        )
    try:
        nip = ids.normalize_nip(nip)
    except ValidationError as exc:
        errors["nip"] = exc
    if ksef_environment not in ENVIRONMENTS:
        errors["ksef_environment"] = ValidationError(
            Text("Wybierz środowisko KSeF z listy.", "Choose a KSeF environment from the list."),
            field="ksef_environment",
        )
    sandbox_url = (sandbox_url or "").strip().rstrip("/")
    if len(sandbox_url) > MAX_URL:
        errors["sandbox_url"] = ValidationError(
            Text(
                f"Adres piaskownicy może mieć najwyżej {MAX_URL} znaków.",
                f"The sandbox address can have at most {MAX_URL} characters.",
            ),
            field="sandbox_url",
        )
    elif ksef_environment == "sandbox":
        parts = urlsplit(sandbox_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors["sandbox_url"] = ValidationError(
                Text(
                    "Podaj adres piaskownicy, np. http://127.0.0.1:8765/v2.",
                    "Enter the sandbox address, e.g. http://127.0.0.1:8765/v2.",
                ),
                field="sandbox_url",
            )
    if errors:
        raise FieldErrors(errors)
    return OfficeProfile(name=name, nip=nip, ksef_environment=ksef_environment, sandbox_url=sandbox_url)


def save_office(
    db: Database, profile: OfficeProfile, *, actor: str, ip: str | None = None, at: datetime
) -> None:
    """Store the profile (inside ``store.write()``); a change of environment is audited with the previous one."""
    previous = saved_environment(db)
    values = {
        "office.name": profile.name,
        "office.nip": profile.nip,
        "office.ksef_environment": profile.ksef_environment,
        "office.sandbox_url": profile.sandbox_url,
    }
    db["settings"].upsert_all([{"key": k, "value": v} for k, v in values.items()], pk="key")
    audit.record(
        db,
        actor=actor,
        action="office.update",
        object_type="office",
        details={"ksef_environment": profile.ksef_environment, "previous_environment": previous},
        ip=ip,
        at=at,
    )


# -- the office's own KSeF certificate ---------------------------------------------------------------------


@dataclass(frozen=True)
class OfficeCredential:
    """The office's KSeF Authentication certificate and key, for one KSeF environment."""

    id: int
    ksef_environment: str
    nip: str
    origin: str
    certificate: bytes
    private_key: bytes
    key_password: str | None
    serial: str
    subject: str
    issuer: str
    fingerprint: str
    not_before: datetime
    not_after: datetime
    status: str
    created_at: datetime
    created_by: str | None
    checked_at: datetime | None
    check_ok: bool | None
    check_message: str | None

    @property
    def environment_name(self) -> str:
        return environment_name(self.ksef_environment)

    def valid_at(self, at: datetime) -> bool:
        """True when the certificate is within its validity at ``at``."""
        return self.not_before <= at <= self.not_after


_CREDENTIAL_COLUMNS = (
    "id, ksef_environment, nip, origin, certificate, private_key, key_password, serial, subject, issuer, "
    "fingerprint, not_before, not_after, status, created_at, created_by, checked_at, check_ok, check_message"
)


def _credential(row: tuple) -> OfficeCredential:
    values = list(row)
    return OfficeCredential(
        id=values[0],
        ksef_environment=values[1],
        nip=values[2],
        origin=values[3],
        certificate=bytes(values[4]),
        private_key=bytes(values[5]),
        key_password=values[6],
        serial=values[7],
        subject=values[8],
        issuer=values[9],
        fingerprint=values[10],
        not_before=clock.parse(values[11]),
        not_after=clock.parse(values[12]),
        status=values[13],
        created_at=clock.parse(values[14]),
        created_by=values[15],
        checked_at=clock.parse_optional(values[16]),
        check_ok=None if values[17] is None else bool(values[17]),
        check_message=values[18],
    )


def office_credential(db: Database, *, environment: str) -> OfficeCredential | None:
    """The office's active certificate and key for ``environment`` (``None`` when there is none).

    Only a credential stored for exactly this environment is ever returned: one of another environment
    is never a fallback.
    """
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown KSeF environment {environment!r}")
    row = db.execute(
        f"SELECT {_CREDENTIAL_COLUMNS} FROM office_credentials WHERE ksef_environment = ? AND status = 'active' "
        "ORDER BY id DESC LIMIT 1",
        [environment],
    ).fetchone()
    return _credential(row) if row else None


def office_credentials(db: Database) -> list[OfficeCredential]:
    """Every active office credential, one per environment at most (newest first)."""
    rows = db.execute(
        f"SELECT {_CREDENTIAL_COLUMNS} FROM office_credentials WHERE status = 'active' ORDER BY id DESC"
    ).fetchall()
    return [_credential(row) for row in rows]


def add_office_credential(
    db: Database,
    *,
    environment: str,
    nip: str,
    origin: str,
    info: object,
    private_key: bytes,
    key_password: str | None,
    actor: str | None,
    ip: str | None = None,
    at: datetime,
) -> int:
    """Store the office's certificate and key for ``environment`` (inside ``store.write()``).

    ``info`` has the certificate facts (:class:`klucznik.certs.model.CertificateInfo`). The previous active
    credential of the same environment becomes ``superseded`` (never deleted); other environments keep theirs.
    """
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown KSeF environment {environment!r}")
    superseded = db.execute(
        "UPDATE office_credentials SET status = 'superseded', superseded_at = ? "
        "WHERE ksef_environment = ? AND status = 'active'",
        [clock.iso(at), environment],
    ).rowcount
    credential_id = (
        db["office_credentials"]
        .insert(
            {
                "ksef_environment": environment,
                "nip": nip,
                "origin": origin,
                "certificate": info.der,  # type: ignore[attr-defined]
                "private_key": private_key,
                "key_password": key_password,
                "ksef_type": info.ksef_type,  # type: ignore[attr-defined]
                "serial": info.serial,  # type: ignore[attr-defined]
                "subject": info.subject,  # type: ignore[attr-defined]
                "issuer": info.issuer,  # type: ignore[attr-defined]
                "fingerprint": info.fingerprint,  # type: ignore[attr-defined]
                "not_before": clock.iso(info.not_before),  # type: ignore[attr-defined]
                "not_after": clock.iso(info.not_after),  # type: ignore[attr-defined]
                "status": "active",
                "created_at": clock.iso(at),
                "created_by": actor,
            }
        )
        .last_pk
    )
    audit.record(
        db,
        actor=actor,
        action="office.credential.store",
        object_type="office",
        details={
            "credential_id": credential_id,
            "ksef_environment": environment,
            "origin": origin,
            "serial": info.serial,  # type: ignore[attr-defined]
            "superseded": superseded,
        },
        ip=ip,
        at=at,
    )
    return credential_id


def record_check(db: Database, credential_id: int, *, ok: bool, message: str, at: datetime) -> None:
    """Remember the last "Sprawdź połączenie" result of a credential (inside ``store.write()``)."""
    db.execute(
        "UPDATE office_credentials SET checked_at = ?, check_ok = ?, check_message = ? WHERE id = ?",
        [clock.iso(at), int(ok), message, credential_id],
    )
