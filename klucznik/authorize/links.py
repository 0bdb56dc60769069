"""One-time signing links: the client, who holds the qualified signature, signs the login file on a public page.

Off until an administrator turns links on and sets the portal's public HTTPS address (many offices keep the
portal on their own network). A link is a random secret (only its SHA-256 is stored); it lives 7 days or until
one successful use (KSeF accepted the signed file), shows only its own client's name and NIP, and every use is
audited. Opening the page issues a fresh challenge (the signed file must come back within 10 minutes).

After sending, the page follows the attempt to KSeF's answer on the login (:func:`follow`, polled): for
:data:`FOLLOW_WINDOW` after its use the link still shows that answer, and nothing else (no new file, upload or
sending).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from email.utils import make_msgid
from urllib.parse import urlsplit

from sqlite_utils import Database

from klucznik import clock
from klucznik.authorize import flow
from klucznik.authorize.requests import METHODS
from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import get_request
from klucznik.errors import PortalError
from klucznik.errors import ValidationError
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.statuses import Explanation
from klucznik.records import audit
from klucznik.records import clients
from klucznik.records import smtp
from klucznik.records import tokens
from klucznik.records.smtp import SmtpSettings
from klucznik.text import Text

LIFETIME = timedelta(days=7)
#: How long after its one use a link still shows how its attempt went (its page and its status only).
FOLLOW_WINDOW = timedelta(hours=1)


class LinkError(PortalError):
    """A link that cannot be used (unknown, expired, used, or links are off)."""

    code = "link"


@dataclass(frozen=True)
class LinkSettings:
    enabled: bool
    public_url: str


@dataclass(frozen=True)
class SigningLink:
    id: int
    client_id: int
    method: str
    expires_at: datetime
    auth_request_id: int | None
    used_at: datetime | None

    @property
    def actor(self) -> str:
        """Who acts in the audit log when the client uses the link."""
        return f"link:{self.id}"


def get_settings(db: Database) -> LinkSettings:
    values = dict(db.execute("SELECT key, value FROM settings WHERE key IN ('links.enabled', 'links.public_url')"))
    return LinkSettings(values.get("links.enabled") == "1", values.get("links.public_url", ""))


def save_settings(db: Database, *, enabled: bool, public_url: str, actor: str, ip: str | None, at: datetime) -> None:
    """Turn links on or off; on requires the portal's public ``https://`` address."""
    public_url = (public_url or "").strip().rstrip("/")
    parts = urlsplit(public_url)
    if public_url and (parts.scheme != "https" or not parts.netloc):
        raise ValidationError(
            Text("Podaj publiczny adres portalu zaczynający się od https://, np. https://portal.biuro.pl.",
                 "Enter the portal's public address starting with https://, e.g. https://portal.biuro.pl."),
            field="public_url",
        )
    if enabled and not public_url:
        raise ValidationError(
            Text("Aby włączyć linki, podaj publiczny adres HTTPS portalu.",
                 "To turn links on, enter the portal's public HTTPS address."),
            field="public_url",
        )
    db["settings"].upsert_all([{"key": "links.enabled", "value": "1" if enabled else "0"},
                               {"key": "links.public_url", "value": public_url}], pk="key")
    audit.record(db, actor=actor, action="links.settings", object_type="office",
                 details={"enabled": enabled, "public_url": public_url}, ip=ip, at=at)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def create_link(
    db: Database, *, client_id: int, method: str, actor: str, ip: str | None, at: datetime
) -> tuple[SigningLink, str]:
    """A new link for the client (inside ``store.write()``): the link and its full address (shown once)."""
    found = get_settings(db)
    if not found.enabled or not found.public_url:
        raise LinkError(
            Text("Linki do podpisu są wyłączone. Administrator włącza je na stronie „Biuro” i podaje publiczny "
                 "adres HTTPS portalu.",
                 "Signing links are off. An administrator turns them on on the Office page and sets the portal's "
                 "public HTTPS address."),
            code="links_off",
        )
    if method not in METHODS:
        raise LinkError(Text("Nieznana metoda.", "Unknown method."), code="method_unknown")
    clients.get_client(db, client_id)
    token = secrets.token_urlsafe(32)
    link_id = db["signing_links"].insert({
        "client_id": client_id, "method": method, "token_hash": _hash(token), "created_at": clock.iso(at),
        "created_by": actor, "expires_at": clock.iso(at + LIFETIME),
    }).last_pk
    audit.record(db, actor=actor, action="link.create", object_type="client", object_id=client_id,
                 details={"link_id": link_id, "method": method, "expires_at": clock.iso(at + LIFETIME)}, ip=ip, at=at)
    return get_link(db, link_id), f"{found.public_url}/podpis/{token}"


def get_link(db: Database, link_id: int) -> SigningLink:
    row = db.execute("SELECT id, client_id, method, expires_at, auth_request_id, used_at FROM signing_links "
                     "WHERE id = ?", [link_id]).fetchone()
    return SigningLink(row[0], row[1], row[2], clock.parse(row[3]), row[4], clock.parse_optional(row[5]))


_GONE = Text(
    "Ten link nie działa: wygasł, został już wykorzystany albo jest nieprawidłowy. Poproś biuro rachunkowe o nowy.",
    "This link does not work: it has expired, was already used or is not valid. Ask your accounting office for a "
    "new one.",
)


def resolve(db: Database, token: str, *, at: datetime, used: bool = False) -> SigningLink:
    """The usable link of ``token``; :class:`LinkError` (one message for every reason) otherwise.

    ``used``: a link already used is accepted too, for :data:`FOLLOW_WINDOW` after its use, to show how its
    attempt went (never to start, upload or send another).
    """
    if not get_settings(db).enabled:
        raise LinkError(_GONE, code="links_off")
    row = db.execute("SELECT id, expires_at, used_at, revoked_at FROM signing_links WHERE token_hash = ?",
                     [_hash(token)]).fetchone()
    if row is None or row[3]:
        raise LinkError(_GONE, code="link_gone")
    used_at = clock.parse_optional(row[2])
    works_until = used_at + FOLLOW_WINDOW if used_at else clock.parse(row[1])
    if (used_at and not used) or at >= works_until:
        raise LinkError(_GONE, code="link_gone")
    return get_link(db, row[0])


def attach(db: Database, link_id: int, auth_request_id: int) -> None:
    """The attempt the link's page works with now (a fresh one each time the page is opened)."""
    db.execute("UPDATE signing_links SET auth_request_id = ? WHERE id = ?", [auth_request_id, link_id])


def mark_used(db: Database, link_id: int, *, at: datetime) -> None:
    """One successful use: KSeF accepted the signed file; the link stops working."""
    db.execute("UPDATE signing_links SET used_at = ? WHERE id = ? AND used_at IS NULL", [clock.iso(at), link_id])


def settle_use(store: Store, link: SigningLink, *, at: datetime, ip: str | None = None) -> SigningLink:
    """The link as used if KSeF already accepted its attempt's signed file but the use was never recorded.

    Sending and marking the link used are two writes around KSeF's answer; a portal stopped between them
    left a link that would issue a new challenge (and drop its attempt's status) when opened again. The one
    successful use is KSeF's acceptance (a reference number), so it is recorded here, once, and audited.
    """
    if link.used_at is not None or link.auth_request_id is None:
        return link
    with store.connect() as db:
        if not get_request(db, link.auth_request_id, client_id=link.client_id).reference_number:
            return link
    with store.write() as db:
        if get_link(db, link.id).used_at is None:  # not settled meanwhile by another request of the page
            mark_used(db, link.id, at=at)
            audit.record(db, actor=link.actor, action="link.used", object_type="client",
                         object_id=link.client_id, ip=ip, at=at,
                         details={"link_id": link.id, "request_id": link.auth_request_id, "settled": True})
        return get_link(db, link.id)


@dataclass(frozen=True)
class Followed:
    """How far the link's attempt got, as the client's page shows it (nothing else of the attempt).

    ``state``: ``not_sent`` (nothing sent from the page yet), ``checking`` (KSeF has not answered on the
    login yet), ``accepted`` (KSeF accepted the signed file; the rest is the office's) or ``refused``.
    ``explanation``: KSeF's last word in plain language (while checking, and the reason of a refusal).
    ``waiting``: KSeF did not answer this time (5xx, 429, no answer); the page keeps asking.
    """

    state: str
    used: bool
    explanation: Explanation | None = None
    waiting: bool = False

    @property
    def final(self) -> bool:
        """True when the page stops asking."""
        return self.state != "checking"


#: Statuses of an attempt sent to KSeF that has not answered on the login yet.
_CHECKING = ("sending", "submitted")


def attempt_state(db: Database, link: SigningLink) -> Followed:
    """Where the link's attempt stands, as stored."""
    used = link.used_at is not None
    if link.auth_request_id is None:
        return Followed("not_sent", used)
    request = get_request(db, link.auth_request_id, client_id=link.client_id)
    if request.status in ("issued", "checked", "expired"):
        return Followed("not_sent", used)
    if request.status in _CHECKING:
        return Followed("checking", used, request.explanation())
    if request.status == "failed" and not _logged_in(db, request):
        return Followed("refused", used, request.explanation())
    return Followed("accepted", used)  # a later step of the office's (grant, enrollment) is not the client's


def _logged_in(db: Database, request: AuthRequest) -> bool:
    """True when KSeF accepted the attempt's login (it issued the tokens), whatever happened after."""
    return tokens.issued_for(db, request.client_id, request.reference_number)


def follow(store: Store, link: SigningLink, *, ksef: KsefClient, at: datetime, ip: str | None = None) -> Followed:
    """One poll of the client's page: while KSeF has not answered on the login, ask it once; then where the
    attempt stands.

    Asking is the wizard's own round (:func:`flow.advance`), up to the login only, as the link's actor: the
    outcome is recorded and audited once, by whichever poller saw it first.
    """
    waiting = False
    if link.auth_request_id is not None:
        with store.connect() as db:
            request = get_request(db, link.auth_request_id, client_id=link.client_id)
        if request.status in _CHECKING:
            progress = flow.advance(store, request_id=request.id, client_id=link.client_id, ksef=ksef,
                                    actor=link.actor, at=at, ip=ip, login_only=True)
            waiting = progress.notice is not None
    with store.connect() as db:
        return replace(attempt_state(db, link), waiting=waiting)


def signer_warning(signer: dict | None, client_nip: str) -> Text | None:
    """Before sending: the signer is another company or a person (KSeF accepts that only if they have rights)."""
    if not signer:
        return None
    if signer.get("kind") == "seal" and signer.get("nip") and signer["nip"] != client_nip:
        return Text(
            f"Plik podpisała inna firma (NIP {signer['nip']}) niż klient (NIP {client_nip}). KSeF przyjmie go tylko, "
            "jeśli ta firma ma uprawnienia w firmie klienta; zwykle podpisuje pieczęć samego klienta.",
            f"The file was signed by another company (NIP {signer['nip']}) than the client (NIP {client_nip}). KSeF "
            "accepts it only if that company holds permissions in the client's company; usually the client's own "
            "seal signs.",
        )
    if signer.get("kind") != "seal" and signer.get("nip") and signer["nip"] != client_nip:
        return Text(
            f"Plik podpisała osoba z NIP {signer['nip']}, innym niż NIP klienta ({client_nip}). KSeF przyjmie go tylko, "
            "jeśli ta osoba ma uprawnienia w firmie klienta.",
            f"The file was signed by a person with NIP {signer['nip']}, not the client's ({client_nip}). KSeF accepts "
            "it only if that person holds permissions in the client's company.",
        )
    if signer.get("kind") != "seal":
        name = signer.get("name") or "—"
        return Text(
            f"Plik podpisała osoba ({name}), a nie pieczęć firmy. KSeF przyjmie go, jeśli ta osoba jest właścicielem "
            "firmy (np. jednoosobowej działalności) albo ma w niej uprawnienia.",
            f"The file was signed by a person ({name}), not the company's seal. KSeF accepts it if that person owns "
            "the company (e.g. a sole proprietorship) or holds permissions in it.",
        )
    return None


# -- sending the link by e-mail (the office's side; the SMTP transport itself is the caller's) ----------------

_RECIPIENT_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")

MAIL_NOT_CONFIGURED = Text(
    "Poczta nie jest skonfigurowana, więc portal nie może wysłać linku e-mailem. Skopiuj link i wyślij go "
    "klientowi sam(a) albo poproś administratora o uzupełnienie serwera i nadawcy w ustawieniach biura (Poczta).",
    "E-mail is not configured, so the portal cannot send the link. Copy the link and send it to the client "
    "yourself, or ask an administrator to fill in the server and the sender in the office settings (E-mail).",
)


def link_to_send(db: Database, *, client_id: int, token: str, at: datetime) -> tuple[SigningLink, str]:
    """The still usable link of ``token`` for this client and its full address (to e-mail it)."""
    try:
        link = resolve(db, token, at=at)
    except LinkError:
        link = None
    if link is None or link.client_id != client_id:
        raise LinkError(Text(
            "Tego linku nie da się już wysłać: wygasł, został wykorzystany albo należy do innego klienta. "
            "Utwórz nowy link.",
            "This link can no longer be sent: it expired, was used or belongs to another client. Make a new link."),
            code="link_gone")
    return link, f"{get_settings(db).public_url}/podpis/{token}"


def mail_settings(db: Database, recipient: str) -> SmtpSettings:
    """The office's SMTP settings addressed to ``recipient`` alone; plain errors for a bad address or no mail."""
    recipient = recipient.strip()
    if not _RECIPIENT_RE.match(recipient) or len(recipient) > 254:
        raise ValidationError(Text(
            "Podaj jeden poprawny adres e-mail klienta, np. biuro@firma.pl.",
            "Enter one valid e-mail address of the client, e.g. office@company.pl."),
            field="recipient", code="recipient_invalid")
    stored = smtp.get_smtp(db)
    if not stored.host or not stored.sender:
        raise LinkError(MAIL_NOT_CONFIGURED, code="mail_not_configured")
    return replace(stored, recipients=(recipient,))


def invitation(*, client: clients.Client, office_name: str, url: str, expires_at: datetime,
               settings: SmtpSettings, at: datetime) -> EmailMessage:
    """The e-mail with the link (in Polish; the client's page is Polish too)."""
    office_name = office_name or "biuro rachunkowe"
    message = EmailMessage()
    message["Subject"] = f"{office_name}: podpis pliku do KSeF dla {client.name}"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = format_datetime(clock.to_utc(at))
    message["Message-ID"] = make_msgid(domain=settings.sender.rsplit("@", 1)[-1])
    message.set_content(
        f"Dzień dobry,\n\n{office_name} prosi o podpisanie pliku, który łączy firmę {client.name} "
        f"(NIP {client.nip}) z Krajowym Systemem e-Faktur (KSeF).\n\n"
        f"Otwórz ten link:\n{url}\n\n"
        "Na stronie pobierzesz plik, podpiszesz go podpisem kwalifikowanym albo pieczęcią kwalifikowaną firmy "
        "i wgrasz z powrotem; podpisany plik trzeba wgrać w ciągu 10 minut od otwarcia strony.\n\n"
        f"Link jest jednorazowy i działa do {clock.date_pl(expires_at)}. Nie przekazuj go nikomu.\n"
        "Jeśli nie spodziewasz się tej wiadomości, zignoruj ją albo zadzwoń do biura.\n"
    )
    return message
