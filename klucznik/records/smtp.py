"""The office's outgoing mail (SMTP) settings for expiry reminders, kept in ``settings`` (``smtp.*``).

The password is stored like everything else: inside the encrypted database, never in a file, a log or a page
(the form never shows it back; leaving the field empty keeps the stored one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime

from sqlite_utils import Database

from klucznik.errors import FieldErrors
from klucznik.errors import ValidationError
from klucznik.records import audit
from klucznik.text import Text

SECURITY = ("starttls", "tls", "none")
_EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]{1,253}$|^\[[0-9A-Fa-f:.]+\]$")


@dataclass(frozen=True)
class SmtpSettings:
    """How the portal sends e-mail (``host`` empty: not configured)."""

    host: str = ""
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.host and self.sender and self.recipients)


def get_smtp(db: Database) -> SmtpSettings:
    """The stored settings (defaults until saved)."""
    values = {row[0]: row[1] for row in db.execute("SELECT key, value FROM settings WHERE key LIKE 'smtp.%'")}
    return SmtpSettings(
        host=values.get("smtp.host", ""),
        port=int(values.get("smtp.port", "587") or 587),
        security=values.get("smtp.security", "starttls"),
        username=values.get("smtp.username", ""),
        password=values.get("smtp.password", ""),
        sender=values.get("smtp.sender", ""),
        recipients=tuple(r for r in values.get("smtp.recipients", "").split(",") if r),
    )


def validate(*, host: str, port: str, security: str, username: str, password: str, sender: str,
             recipients: str, stored: SmtpSettings) -> SmtpSettings:
    """Check every field and report all problems at once; an empty password keeps ``stored.password``."""
    errors: dict[str, ValidationError] = {}
    host = (host or "").strip()
    if not _HOST_RE.match(host):
        errors["host"] = ValidationError(Text(
            "Wpisz adres serwera poczty wychodzącej, np. smtp.twojadomena.pl.",
            "Enter the outgoing mail server, e.g. smtp.yourdomain.pl."), field="host")
    try:
        port_number = int((port or "").strip())
        if not 1 <= port_number <= 65535:
            raise ValueError
    except ValueError:
        port_number = 0
        errors["port"] = ValidationError(Text(
            "Port to liczba od 1 do 65535 (zwykle 587 ze STARTTLS albo 465 z TLS).",
            "The port is a number from 1 to 65535 (usually 587 with STARTTLS or 465 with TLS)."), field="port")
    if security not in SECURITY:
        errors["security"] = ValidationError(Text(
            "Wybierz sposób szyfrowania z listy.", "Choose the encryption from the list."), field="security")
    sender = (sender or "").strip()
    if not _EMAIL_RE.match(sender):
        errors["sender"] = ValidationError(Text(
            "Wpisz adres nadawcy, np. portal@biuro.pl.", "Enter the sender's address, e.g. portal@office.pl."),
            field="sender")
    found = [r.strip() for r in re.split(r"[,;\s]+", recipients or "") if r.strip()]
    bad = [r for r in found if not _EMAIL_RE.match(r)]
    if not found or bad:
        errors["recipients"] = ValidationError(Text(
            "Wpisz adresy odbiorców przypomnień oddzielone przecinkami"
            + (f" (niepoprawny: {', '.join(bad)})." if bad else "."),
            "Enter the reminder recipients' addresses, separated by commas"
            + (f" (not valid: {', '.join(bad)})." if bad else ".")), field="recipients")
    if errors:
        raise FieldErrors(errors)
    return SmtpSettings(host=host, port=port_number, security=security, username=(username or "").strip(),
                        password=password if password else stored.password, sender=sender,
                        recipients=tuple(dict.fromkeys(found)))


def save_smtp(db: Database, settings: SmtpSettings, *, actor: str, ip: str | None = None, at: datetime) -> None:
    """Store the settings (inside ``store.write()``); the audit entry never holds the password."""
    values = {
        "smtp.host": settings.host,
        "smtp.port": str(settings.port),
        "smtp.security": settings.security,
        "smtp.username": settings.username,
        "smtp.password": settings.password,
        "smtp.sender": settings.sender,
        "smtp.recipients": ",".join(settings.recipients),
    }
    db["settings"].upsert_all([{"key": k, "value": v} for k, v in values.items()], pk="key")
    shown = replace(settings, password="***" if settings.password else "")
    audit.record(db, actor=actor, action="office.smtp", object_type="office",
                 details={"host": shown.host, "port": shown.port, "security": shown.security,
                          "recipients": len(shown.recipients)}, ip=ip, at=at)
