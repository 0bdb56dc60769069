"""E-mail reminders of expiring certificates: at most one per item per threshold (30, 14, 7, 1 days).

An item is due for the tightest threshold it has reached (``days_left <= threshold``; an expired item counts for
1 day); one e-mail lists every due item, and only once the SMTP server accepted it are the reminders recorded
(``status_reminders``), so a failed send is retried by the next run and a successful one is never repeated.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from email.utils import make_msgid

from sqlite_utils import Database

from klucznik import clock
from klucznik.errors import PortalError
from klucznik.instance.store import Store
from klucznik.records import audit
from klucznik.records import office as office_records
from klucznik.records.smtp import SmtpSettings
from klucznik.records.smtp import get_smtp
from klucznik.status.expiry import ExpiryItem
from klucznik.status.expiry import expiring
from klucznik.text import Text

THRESHOLDS = (30, 14, 7, 1)


class MailError(PortalError):
    """The e-mail could not be sent (not configured, server refused, no connection)."""

    code = "mail"


NOT_CONFIGURED = Text(
    "Poczta nie jest skonfigurowana: uzupełnij serwer, nadawcę i odbiorców w ustawieniach biura (Poczta).",
    "E-mail is not configured: fill in the server, the sender and the recipients in the office settings (E-mail).",
)


@dataclass(frozen=True)
class DueReminder:
    """One item and the threshold it is reminded for."""

    item: ExpiryItem
    threshold: int


def threshold_for(days_left: int) -> int | None:
    """The tightest threshold ``days_left`` has reached (``None`` above 30 days)."""
    reached = [t for t in THRESHOLDS if days_left <= t]
    return min(reached) if reached else None


def due(db: Database, *, at: datetime) -> list[DueReminder]:
    """Every active item of a current client whose current threshold has not been reminded yet."""
    sent = {
        (row[0], row[1], row[2], row[3])
        for row in db.execute("SELECT client_id, kind, serial, threshold FROM status_reminders")
    }
    found = []
    for item in expiring(db, at=at, days=max(THRESHOLDS)):
        threshold = threshold_for(item.days_left)
        if threshold is None or (item.client_id, item.kind, item.serial or "", threshold) in sent:
            continue
        found.append(DueReminder(item, threshold))
    return found


def compose(reminders: list[DueReminder], settings: SmtpSettings, *, office_name: str, at: datetime) -> EmailMessage:
    """The reminder e-mail (Polish first, then English): one line per item."""
    lines_pl, lines_en = [], []
    for r in reminders:
        item = r.item
        when = clock.date_pl(item.valid_to)
        what = f"{item.ksef_type or ''} {item.serial or ''}".strip()
        if item.valid_to <= at:
            lines_pl.append(f"- {item.name} (NIP {item.nip}): certyfikat {what} WYGASŁ {when}.")
            lines_en.append(f"- {item.name} (NIP {item.nip}): certificate {what} EXPIRED on {clock.date_en(item.valid_to)}.")
        else:
            lines_pl.append(f"- {item.name} (NIP {item.nip}): certyfikat {what} ważny do {when} "
                            f"(zostało dni: {item.days_left}).")
            lines_en.append(f"- {item.name} (NIP {item.nip}): certificate {what} valid until "
                            f"{clock.date_en(item.valid_to)} ({item.days_left} days left).")
    message = EmailMessage()
    message["Subject"] = f"Klucznik: {len(reminders)} certyfikat(y) KSeF do odnowienia / KSeF certificates to renew"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = format_datetime(clock.to_utc(at))
    message["Message-ID"] = make_msgid(domain=settings.sender.rsplit("@", 1)[-1])
    message.set_content(
        f"Przypomnienie z portalu Klucznik ({office_name or 'biuro'}).\n\n"
        "Te certyfikaty KSeF klientów wygasają wkrótce albo już wygasły:\n\n" + "\n".join(lines_pl)
        + "\n\nNowy certyfikat można zamówić najwcześniej 30 dni przed wygaśnięciem: w portalu otwórz stronę "
        "„Status KSeF” i połącz klienta ponownie (kreator) albo wgraj nowe certyfikaty.\n\n-- \n"
        "A reminder from the Klucznik portal. These clients' KSeF certificates expire soon or have expired:\n\n"
        + "\n".join(lines_en) + "\n"
    )
    return message


def send(settings: SmtpSettings, message: EmailMessage, *, timeout: float = 20.0,
         tls_context: ssl.SSLContext | None = None) -> None:
    """Hand ``message`` to the SMTP server (STARTTLS, TLS or plain, with a login when a user is set)."""
    if not settings.configured:
        raise MailError(NOT_CONFIGURED, code="mail_not_configured")
    context = tls_context or ssl.create_default_context()
    try:
        if settings.security == "tls":
            server: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
        else:
            server = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
        with server:
            if settings.security == "starttls":
                server.starttls(context=context)
            if settings.username:
                try:
                    server.login(settings.username, settings.password)
                except smtplib.SMTPException as exc:
                    raise smtplib.SMTPAuthenticationError(535, str(exc).encode()) from exc
            server.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(Text(
            "Serwer poczty odrzucił login lub hasło. Sprawdź je w ustawieniach poczty.",
            "The mail server refused the user name or password. Check them in the e-mail settings."),
            code="mail_auth") from exc
    except ssl.SSLCertVerificationError as exc:
        raise MailError(Text(
            f"Serwer poczty {settings.host} przedstawił certyfikat, któremu portal nie ufa "
            f"({exc.verify_message or 'nieznany wystawca'}), więc e-mail nie został wysłany. Sprawdź adres "
            "serwera (musi się zgadzać z certyfikatem); jeśli serwer ma certyfikat z własnego urzędu "
            "certyfikacji biura, administrator dodaje ten urząd do zaufanych w systemie portalu "
            "(albo wskazuje plik z nim w zmiennej SSL_CERT_FILE).",
            f"The mail server {settings.host} presented a certificate the portal does not trust "
            f"({exc.verify_message or 'unknown issuer'}), so the e-mail was not sent. Check the server name (it "
            "must match the certificate); if the server's certificate comes from the office's own certification "
            "authority, the administrator adds that authority to the system's trusted ones (or names a file with "
            "it in SSL_CERT_FILE)."), code="mail_untrusted") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(Text(
            f"Nie udało się wysłać e-maila przez {settings.host}:{settings.port} ({type(exc).__name__}). "
            "Sprawdź adres serwera, port i szyfrowanie.",
            f"Could not send the e-mail through {settings.host}:{settings.port} ({type(exc).__name__}). "
            "Check the server, the port and the encryption."), code="mail_send") from exc


def send_test(settings: SmtpSettings, *, at: datetime, sender: Callable[..., None] = send) -> None:
    """The office page's test button: one short e-mail to the recipients."""
    message = EmailMessage()
    message["Subject"] = "Klucznik: wiadomość testowa / test message"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = format_datetime(clock.to_utc(at))
    message.set_content("Poczta z portalu Klucznik działa. / E-mail from the Klucznik portal works.\n")
    sender(settings, message)


@dataclass(frozen=True)
class RemindResult:
    """What ``klucznik remind`` sent."""

    reminders: list[DueReminder]
    recipients: tuple[str, ...]


def remind(store: Store, *, at: datetime, sender: Callable[..., None] = send) -> RemindResult:
    """Send one e-mail with every due reminder and record them (nothing is recorded if sending fails)."""
    with store.connect() as db:
        settings = get_smtp(db)
        reminders = due(db, at=at)
        office_name = office_records.get_office(db).name
    if not reminders:
        return RemindResult([], settings.recipients)
    sender(settings, compose(reminders, settings, office_name=office_name, at=at))
    with store.write() as db:
        db["status_reminders"].insert_all([
            {"client_id": r.item.client_id, "kind": r.item.kind, "serial": r.item.serial or "",
             "threshold": r.threshold, "valid_to": clock.iso(r.item.valid_to), "sent_at": clock.iso(at)}
            for r in reminders
        ], ignore=True)  # a reminder another run recorded meanwhile stays recorded once
        audit.record(db, actor=None, action="status.remind", object_type="office",
                     details={"reminders": len(reminders), "recipients": len(settings.recipients)}, at=at)
    return RemindResult(reminders, settings.recipients)
