"""Client companies of the office, identified by NIP."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from klucznik import ids
from klucznik.clock import iso
from klucznik.errors import Conflict
from klucznik.errors import FieldErrors
from klucznik.errors import NotFound
from klucznik.errors import PortalError
from klucznik.errors import ValidationError
from klucznik.instance.database import IntegrityError
from klucznik.records import audit
from klucznik.text import Text

AUTH_METHODS = ("grant", "portal_certs", "user_certs")
_POLISH_ALPHABET = "aąbcćdeęfghijklłmnńoóprsśtuvwxyzźż"
#: Letters of the Polish alphabet map, in order, into the Private Use Area above every ordinary character,
#: so a plain (binary) comparison of the keys gives: spaces and punctuation < digits < a < ą < b … ź < ż.
_POLISH_KEY = str.maketrans({ch: chr(0xE000 + i) for i, ch in enumerate(_POLISH_ALPHABET)})
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COLUMNS = "id, nip, name, email, notes, auth_method, created_at, updated_at, archived_at"


@dataclass(frozen=True)
class Client:
    """A client company."""

    id: int
    nip: str
    name: str
    email: str
    notes: str
    auth_method: str | None
    created_at: str
    updated_at: str
    archived_at: str | None

    @property
    def nip_formatted(self) -> str:
        return ids.format_nip(self.nip)


@dataclass(frozen=True)
class ClientPage:
    """One page of a client search."""

    clients: list[Client]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class ClientInput:
    """Validated values of the client form."""

    nip: str
    name: str
    email: str
    notes: str


def validate(*, nip: str, name: str, email: str = "", notes: str = "") -> ClientInput:
    """Check every field and report all problems at once."""
    errors: dict[str, ValidationError] = {}
    try:
        nip = ids.normalize_nip(nip)
    except ValidationError as exc:
        errors["nip"] = exc
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = ValidationError(Text("Wpisz nazwę firmy.", "Enter the company name."), field="name")
    elif len(name) > 300:
        errors["name"] = ValidationError(
            Text(
                f"Nazwa może mieć najwyżej 300 znaków (wpisano {len(name)}).",
                f"The name can have at most 300 characters ({len(name)} entered).",
            ),
            field="name",
        )
    email = (email or "").strip()
    if email and (not _EMAIL_RE.match(email) or len(email) > 254):
        errors["email"] = ValidationError(
            Text(
                "To nie wygląda na adres e-mail (np. biuro@firma.pl).",
                "This does not look like an e-mail address (e.g. office@company.pl).",
            ),
            field="email",
        )
    notes = (notes or "").strip()
    if len(notes) > 5000:
        errors["notes"] = ValidationError(
            Text(
                f"Notatka może mieć najwyżej 5000 znaków (wpisano {len(notes)}).",
                f"Notes can have at most 5000 characters ({len(notes)} entered).",
            ),
            field="notes",
        )
    if errors:
        raise FieldErrors(errors)
    return ClientInput(nip=nip, name=name, email=email, notes=notes)


def sort_key(name: str) -> str:
    """A text that sorts names in Polish alphabetical order, case-insensitively, with SQLite's binary order."""
    return name.casefold().translate(_POLISH_KEY)


def _search_text(values: ClientInput) -> str:
    return f"{values.name} {values.nip} {ids.format_nip(values.nip)} {values.email}".casefold()


def _duplicate(nip: str) -> FieldErrors:
    return FieldErrors(
        {
            "nip": ValidationError(
                Text(
                    f"Klient z NIP {ids.format_nip(nip)} już istnieje (sprawdź też archiwum).",
                    f"A client with NIP {ids.format_nip(nip)} exists already (check the archive too).",
                ),
                field="nip",
            )
        }
    )


def create_client(
    db: Database, values: ClientInput, *, actor: str, ip: str | None = None, at: datetime
) -> Client:
    """Insert a client (inside ``store.write()``)."""
    moment = iso(at)
    try:
        client_id = db.execute(
            "INSERT INTO clients (nip, name, email, notes, search_text, sort_key, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [values.nip, values.name, values.email, values.notes, _search_text(values), sort_key(values.name),
             moment, moment],
        ).lastrowid
    except IntegrityError:
        raise _duplicate(values.nip) from None
    audit.record(
        db,
        actor=actor,
        action="clients.create",
        object_type="client",
        object_id=client_id,
        details={"name": values.name, "nip": values.nip},
        ip=ip,
        at=at,
    )
    return get_client(db, client_id)


class NipChangeNeedsConfirmation(PortalError):
    """The NIP of a connected client is to change: the user must confirm (its authorization becomes old)."""

    code = "nip_change_needs_confirmation"

    def __init__(self, client: Client, new_nip: str) -> None:
        super().__init__(
            Text(
                f"Klient jest już połączony z KSeF dla NIP {client.nip_formatted}. Po zmianie NIP-u na "
                f"{ids.format_nip(new_nip)} dotychczasowa autoryzacja (uprawnienia nadane biuru, certyfikaty, "
                "tokeny KSeF) zostanie oznaczona jako należąca do starego NIP-u i nie będzie używana; klienta "
                "trzeba będzie połączyć ponownie. Jeśli to inna firma, dodaj ją jako nowego klienta.",
                f"The client is already connected to KSeF for NIP {client.nip_formatted}. After changing the NIP "
                f"to {ids.format_nip(new_nip)} its authorization (permissions granted to the office, "
                "certificates, KSeF tokens) will be marked as belonging to the old NIP and never used; the "
                "client will have to be connected again. If this is another company, add it as a new client.",
            )
        )
        self.client = client
        self.new_nip = new_nip


def is_connected(db: Database, client_id: int) -> bool:
    """True when the client has an authorization tied to its NIP: a method, active certificates or tokens,
    or a login attempt in progress."""
    row = db.execute(
        "SELECT (SELECT auth_method IS NOT NULL FROM clients WHERE id = :id) "
        "OR EXISTS (SELECT 1 FROM credentials WHERE client_id = :id AND status = 'active') "
        "OR EXISTS (SELECT 1 FROM ksef_tokens WHERE client_id = :id AND status = 'active') "
        "OR EXISTS (SELECT 1 FROM auth_requests WHERE client_id = :id "
        "AND status NOT IN ('done', 'failed', 'expired'))",
        {"id": client_id},
    ).fetchone()
    return bool(row[0])


_OLD_NIP_ERROR = json.dumps(
    {
        "pl": "NIP klienta został zmieniony; ta próba dotyczyła starego NIP-u i nie będzie kontynuowana.",
        "en": "The client's NIP was changed; this attempt was for the old NIP and will not continue.",
        "code": "old_nip",
    },
    ensure_ascii=False,
)


def retire_authorization(db: Database, client_id: int, old_nip: str, *, at: datetime) -> dict[str, int]:
    """Mark the client's authorization as the old NIP's (inside ``store.write()``); never deletes anything.

    Active credentials and tokens become ``superseded`` with ``old_nip``; attempts in progress end as
    ``failed``; every attempt of the old NIP keeps ``old_nip``; the client has no method any more.
    """
    moment = iso(at)
    counts = {
        "credentials": db.execute(
            "UPDATE credentials SET status = 'superseded', superseded_at = ?, old_nip = ? "
            "WHERE client_id = ? AND status = 'active'",
            [moment, old_nip, client_id],
        ).rowcount,
        "tokens": db.execute(
            "UPDATE ksef_tokens SET status = 'superseded', old_nip = ? WHERE client_id = ? AND status = 'active'",
            [old_nip, client_id],
        ).rowcount,
        "attempts_stopped": db.execute(
            "UPDATE auth_requests SET status = 'failed', authentication_token = NULL, updated_at = ?, "
            "followup = json_set(coalesce(followup, '{}'), '$.error', json(?)) "
            "WHERE client_id = ? AND status NOT IN ('done', 'failed', 'expired')",
            [moment, _OLD_NIP_ERROR, client_id],
        ).rowcount,
    }
    db.execute("UPDATE auth_requests SET old_nip = ? WHERE client_id = ? AND old_nip IS NULL", [old_nip, client_id])
    db.execute("UPDATE clients SET auth_method = NULL WHERE id = ?", [client_id])
    return counts


def old_nips(db: Database, client_id: int) -> list[str]:
    """The client's previous NIPs whose authorization was retired (:func:`retire_authorization`), sorted."""
    rows = db.execute(
        "SELECT old_nip FROM auth_requests WHERE client_id = :id AND old_nip IS NOT NULL "
        "UNION SELECT old_nip FROM credentials WHERE client_id = :id AND old_nip IS NOT NULL "
        "UNION SELECT old_nip FROM ksef_tokens WHERE client_id = :id AND old_nip IS NOT NULL",
        {"id": client_id},
    ).fetchall()
    return sorted(row[0] for row in rows)


def of_old_nip(db: Database, request_id: int) -> bool:
    """True when the login attempt ``request_id`` belonged to the client's previous NIP."""
    row = db.execute("SELECT old_nip FROM auth_requests WHERE id = ?", [request_id]).fetchone()
    return bool(row and row[0])


def update_client(
    db: Database,
    client_id: int,
    values: ClientInput,
    *,
    actor: str,
    ip: str | None = None,
    at: datetime,
    confirm_nip_change: str | None = None,
) -> Client:
    """Change a client's data (inside ``store.write()``); an archived client is read-only (:class:`Conflict`).

    A new NIP for a connected client needs ``confirm_nip_change`` equal to that NIP
    (:class:`NipChangeNeedsConfirmation` otherwise, nothing changed); the authorization of the old NIP is
    then retired (:func:`retire_authorization`).
    """
    before = require_active(get_client(db, client_id))
    retired = None
    if values.nip != before.nip and is_connected(db, client_id):
        if confirm_nip_change != values.nip:
            raise NipChangeNeedsConfirmation(before, values.nip)
        retired = retire_authorization(db, client_id, before.nip, at=at)
    try:
        db.execute(
            "UPDATE clients SET nip = ?, name = ?, email = ?, notes = ?, search_text = ?, sort_key = ?, "
            "updated_at = ? WHERE id = ?",
            [
                values.nip,
                values.name,
                values.email,
                values.notes,
                _search_text(values),
                sort_key(values.name),
                iso(at),
                client_id,
            ],
        )
    except IntegrityError:
        raise _duplicate(values.nip) from None
    changed = {
        k: getattr(values, k)
        for k in ("nip", "name", "email", "notes")
        if getattr(values, k) != getattr(before, k)
    }
    audit.record(
        db,
        actor=actor,
        action="clients.update",
        object_type="client",
        object_id=client_id,
        details={
            "changed": sorted(changed),
            "changes": {k: [getattr(before, k), changed[k]] for k in sorted(changed)},
            **({"old_nip_authorization": retired} if retired else {}),
        },
        ip=ip,
        at=at,
    )
    return get_client(db, client_id)


def set_archived(
    db: Database, client_id: int, archived: bool, *, actor: str, ip: str | None = None, at: datetime
) -> Client:
    """Archive a client (hidden from the list, nothing deleted) or bring it back."""
    get_client(db, client_id)
    db.execute(
        "UPDATE clients SET archived_at = ?, updated_at = ? WHERE id = ?",
        [iso(at) if archived else None, iso(at), client_id],
    )
    audit.record(
        db,
        actor=actor,
        action="clients.archive" if archived else "clients.restore",
        object_type="client",
        object_id=client_id,
        ip=ip,
        at=at,
    )
    return get_client(db, client_id)


def set_auth_method(db: Database, client_id: int, method: str, *, at: datetime) -> None:
    """Record how the client authorised KSeF access (inside ``store.write()``)."""
    if method not in AUTH_METHODS:
        raise ValueError(f"unknown method {method!r}")
    db.execute(
        "UPDATE clients SET auth_method = ?, updated_at = ? WHERE id = ?", [method, iso(at), client_id]
    )


def require_active(client: Client) -> Client:
    """``client`` unless it is archived: archived clients are read-only until restored (:class:`Conflict`)."""
    if client.archived_at:
        raise Conflict(
            Text(
                f"Klient „{client.name}” jest w archiwum, więc jego danych i połączenia z KSeF nie można "
                "zmieniać. Przywróć go z archiwum (przycisk na stronie klienta) i spróbuj ponownie.",
                f"The client “{client.name}” is archived, so its data and KSeF connection cannot be changed. "
                "Bring it back from the archive (the button on the client's page) and try again.",
            ),
            code="client_archived",
        )
    return client


def get_client(db: Database, client_id: int) -> Client:
    """The client ``client_id``; :class:`NotFound` if there is none."""
    row = db.execute(f"SELECT {_COLUMNS} FROM clients WHERE id = ?", [client_id]).fetchone()
    if row is None:
        raise NotFound(Text("Nie ma takiego klienta (mógł zostać usunięty z listy).", "No such client."))
    return Client(*row)


def find_by_nip(db: Database, nip: str) -> Client | None:
    """The client with this (normalised) NIP, archived or not; ``None`` when the NIP is new."""
    row = db.execute(f"SELECT {_COLUMNS} FROM clients WHERE nip = ?", [nip]).fetchone()
    return Client(*row) if row else None


def search(
    db: Database, query: str = "", *, archived: bool = False, page: int = 1, per_page: int = 25
) -> ClientPage:
    """Clients whose name, NIP (with or without dashes) or e-mail contains ``query``, by name."""
    where = ["archived_at IS NOT NULL" if archived else "archived_at IS NULL"]
    params: list[object] = []
    for word in (query or "").casefold().split()[:5]:
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("search_text LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    clause = " AND ".join(where)
    total = db.execute(f"SELECT count(*) FROM clients WHERE {clause}", params).fetchone()[0]
    page = max(1, min(page, max(1, -(-total // per_page))))
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM clients WHERE {clause} ORDER BY sort_key, id LIMIT ? OFFSET ?",
        [*params, per_page, (page - 1) * per_page],
    ).fetchall()
    return ClientPage(clients=[Client(*row) for row in rows], total=total, page=page, per_page=per_page)
