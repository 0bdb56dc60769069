"""The office's own profile: its name and NIP, and which KSeF environment it works with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlite_utils import Database

from klucznik import ids
from klucznik.errors import FieldErrors
from klucznik.errors import ValidationError
from klucznik.records import audit
from klucznik.text import Text

ENVIRONMENTS = ("test", "demo", "prod", "sandbox")
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
    """Store the profile (inside ``store.write()``)."""
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
        details={"ksef_environment": profile.ksef_environment},
        ip=ip,
        at=at,
    )
