"""Method 1 proven: the office logs in in the client's context and reads the grants it received; revoking.

A client counts as authorized only when both succeed (:func:`verify_grant`): KSeF let the office in with its
own certificate in the client's context (which it does only when the client granted it something), and the
query of the grants the office received (``/permissions/query/entities/grants``, in the office's own
context, filtered by the client's NIP) lists the permissions, with the date each started. Every check is a
``grant_checks`` row. :func:`revoke_grant` ("Odbierz uprawnienia") removes those permissions in the client's
KSeF session, then checks again.

Before the grant, :func:`signer_rights` reads who the signer is for KSeF in the client's session: an owner,
someone who may manage permissions (``CredentialsManage``), or someone who cannot grant anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from klucznik import clock
from klucznik.authorize import office as office_identity
from klucznik.authorize.session import active_tokens
from klucznik.authorize.session import current_environment
from klucznik.errors import PortalError
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.errors import KsefError
from klucznik.ksef.transport import BearerAuth
from klucznik.records import audit
from klucznik.records import clients
from klucznik.records import ksef_log
from klucznik.records import office
from klucznik.text import Text

#: What the office asks for; a check lists whatever KSeF reports.
INVOICE_PERMISSIONS = ("InvoiceRead", "InvoiceWrite")
#: Permissions that let a signer grant permissions to others.
GRANTING = ("CredentialsManage",)
PERMISSION_NAMES = {
    "InvoiceRead": Text("przeglądanie faktur", "reading invoices"),
    "InvoiceWrite": Text("wystawianie faktur", "issuing invoices"),
    "CredentialsManage": Text("zarządzanie uprawnieniami", "managing permissions"),
    "CredentialsRead": Text("przeglądanie uprawnień", "reading permissions"),
    "Introspection": Text("przeglądanie historii sesji", "reading session history"),
    "CollectiveIdentifierManage": Text("zarządzanie identyfikatorami zbiorczymi", "managing collective identifiers"),
}


class GrantError(PortalError):
    """A grant cannot be checked or revoked now (e.g. no session of the client)."""

    code = "grant"


def permission_name(scope: str, lang: str = "pl") -> str:
    """A permission in words (an unknown one, as KSeF adds them, as KSeF names it)."""
    text = PERMISSION_NAMES.get(scope)
    return text.get(lang) if text else scope


def self_grant_error(nip: str) -> GrantError:
    """The clear refusal for a client whose NIP is the office's own."""
    return GrantError(
        Text(
            f"NIP tego klienta ({nip}) to NIP samego biura. Biuro nie nadaje uprawnień samemu sobie: w swoim "
            "kontekście działa własnym certyfikatem KSeF (strona „Biuro”). Dla tego klienta wybierz metodę 2 albo 3.",
            f"This client's NIP ({nip}) is the office's own NIP. The office does not grant permissions to itself: "
            "in its own context it works with its own KSeF certificate (Office page). For this client choose "
            "method 2 or 3.",
        ),
        code="self_grant",
    )


# -- who signed, for KSeF ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerRights:
    """What KSeF says about the signer in the client's context, before anything is granted.

    ``can_grant``: "yes", "no" or "unknown" (a person whose owner rights KSeF 2.7 does not list).
    """

    owner: bool | None
    can_grant: str
    permissions: tuple[str, ...]
    owner_permissions: tuple[str, ...] | None
    text: Text

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "can_grant": self.can_grant,
            "permissions": list(self.permissions),
            "owner_permissions": list(self.owner_permissions) if self.owner_permissions is not None else None,
            "pl": self.text.pl,
            "en": self.text.en,
        }


def signer_rights(ksef: KsefClient, *, client_nip: str, signer: dict[str, Any] | None) -> SignerRights:
    """Read the signer's own permissions in the client's session (``/permissions/query/personal/grants``).

    Owner rights are not listed by KSeF 2.7; where the contract has ``ownerPermissions`` (2.9) they are read.
    A company seal of the client's own NIP is the owner by KSeF's rules; a person may be the owner through the
    NIP–PESEL link, which KSeF 2.7 does not report (then "unknown": KSeF decides at the grant).
    """
    scopes: list[str] = []
    owner_permissions: list[str] | None = None
    offset = 0
    while offset < 20:  # at most 20 pages of 100: far more than any company's own permissions
        data = ksef.call(
            "POST",
            "/permissions/query/personal/grants",
            idempotent=True,
            json={},
            params={"pageSize": 100, "pageOffset": offset},
            auth=BearerAuth(ksef.tokens.access_token) if ksef.tokens else None,
        )
        for item in data.get("permissions") or ():
            if item.get("permissionState", "Active") == "Active" and (
                not item.get("contextIdentifier") or item["contextIdentifier"].get("value") == client_nip
            ):
                scopes.append(str(item.get("permissionScope")))
        if data.get("ownerPermissions") is not None:
            owner_permissions = [str(p) for p in data["ownerPermissions"]]
        if not data.get("hasMore"):
            break
        offset += 1
    signer = signer or {}
    seal_of_client = signer.get("kind") == "seal" and signer.get("nip") == client_nip
    if owner_permissions is not None:
        owner: bool | None = bool(owner_permissions)
    elif seal_of_client:
        owner = True
    else:
        owner = None
    granting = [p for p in GRANTING if p in scopes or p in (owner_permissions or ())]
    if owner or granting:
        can_grant = "yes"
        text = Text(
            "Podpisujący jest w KSeF właścicielem tej firmy i może nadawać uprawnienia."
            if owner
            else "Podpisujący ma w KSeF prawo zarządzania uprawnieniami tej firmy (CredentialsManage) i może je nadać.",
            "For KSeF the signer is the owner of this company and may grant permissions."
            if owner
            else "For KSeF the signer may manage this company's permissions (CredentialsManage) and can grant them.",
        )
    elif owner_permissions is not None or signer.get("kind") == "seal":
        can_grant = "no"
        listed = ", ".join(scopes) or "—"
        text = Text(
            f"Podpisujący nie jest w KSeF właścicielem tej firmy i nie ma prawa nadawania uprawnień (ma: {listed}). "
            "Nadanie uprawnień biuru się nie uda: poproś właściciela firmy (lub osobę z uprawnieniem do zarządzania "
            "uprawnieniami) o podpisanie nowego pliku.",
            f"For KSeF the signer is not the owner of this company and may not grant permissions (has: {listed}). "
            "Granting the office would fail: ask the company's owner (or a person who manages permissions) to sign "
            "a new file.",
        )
    else:
        can_grant = "unknown"
        text = Text(
            "Podpisuje osoba. KSeF nie podaje, czy jest właścicielem firmy (np. przez powiązanie NIP–PESEL lub "
            "zgłoszenie ZAW-FA); jeśli nie jest i nie ma prawa zarządzania uprawnieniami, KSeF odmówi nadania.",
            "A person signed. KSeF does not say whether they own the company (e.g. through the NIP–PESEL link or "
            "a ZAW-FA filing); if they do not and may not manage permissions, KSeF will refuse the grant.",
        )
    return SignerRights(owner, can_grant, tuple(scopes), tuple(owner_permissions) if owner_permissions is not None else None, text)


# -- the check -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantCheck:
    """One check of a client's grant to the office."""

    id: int
    client_id: int
    checked_at: datetime
    ksef_environment: str
    office_nip: str
    login_ok: bool
    query_ok: bool
    ok: bool
    permissions: tuple[dict[str, Any], ...]
    text: Text

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(p["scope"] for p in self.permissions)


def _row(row: tuple) -> GrantCheck:
    return GrantCheck(
        id=row[0],
        client_id=row[1],
        checked_at=clock.parse(row[2]),
        ksef_environment=row[3],
        office_nip=row[4],
        login_ok=bool(row[5]),
        query_ok=bool(row[6]),
        ok=bool(row[7]),
        permissions=tuple(json.loads(row[8])),
        text=Text(row[9], row[10]),
    )


def latest_check(db: Database, client_id: int, *, environment: str | None = None) -> GrantCheck | None:
    """The client's most recent check (in ``environment``, the current one by default)."""
    environment = environment or current_environment(db)
    row = db.execute(
        "SELECT id, client_id, checked_at, ksef_environment, office_nip, login_ok, query_ok, ok, permissions, "
        "message_pl, message_en FROM grant_checks WHERE client_id = ? AND ksef_environment = ? "
        "ORDER BY id DESC LIMIT 1",
        [client_id, environment],
    ).fetchone()
    return _row(row) if row else None


def _received_grants(ksef: KsefClient, client_nip: str) -> list[dict[str, Any]]:
    """Every grant the office's context received from ``client_nip`` (all pages)."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = ksef.query_entity_grants(grantor_nip=client_nip, page_size=100, page_offset=offset)
        found += [
            {
                "id": g.id,
                "scope": g.permission_scope,
                "start_date": clock.iso(g.start_date),
                "can_delegate": g.can_delegate,
                "description": g.description,
            }
            for g in page.permissions
            if g.context_value == client_nip
        ]
        if not page.has_more or offset >= 20:
            return found
        offset += 1


def verify_grant(
    store: Store,
    *,
    client_id: int,
    ksef: KsefClient,
    actor: str,
    ip: str | None,
    at: datetime,
    **login_options: float,
) -> GrantCheck:
    """Log in as the office in the client's context, then read the grants received; record the outcome.

    ``ksef`` must not hold a session anyone still needs: it logs in twice as the office and ends both sessions.
    """
    with store.connect() as db:
        client = clients.get_client(db, client_id)
        profile = office.get_office(db)
        environment = profile.ksef_environment
        login_ok = query_ok = False
        permissions: list[dict[str, Any]] = []
        failure: PortalError | None = None
        if profile.nip and profile.nip == client.nip:
            failure = self_grant_error(client.nip)
        else:
            try:
                session = office_identity.office_login(db, ksef=ksef, context_nip=client.nip, at=at, **login_options)
                login_ok = True
                office_identity.end_session(session)
                session = office_identity.office_login(db, ksef=ksef, at=at, **login_options)
                try:
                    permissions = _received_grants(ksef, client.nip)
                    query_ok = True
                finally:
                    office_identity.end_session(session)
            except PortalError as exc:
                failure = exc
    ok = login_ok and query_ok and bool(permissions)
    if ok:
        names = ", ".join(permission_name(p["scope"]) for p in permissions)
        names_en = ", ".join(permission_name(p["scope"], "en") for p in permissions)
        text = Text(
            f"Uprawnienia potwierdzone w KSeF: biuro zalogowało się w kontekście firmy, a KSeF podaje nadane "
            f"uprawnienia: {names}.",
            f"Permissions confirmed in KSeF: the office logged in in the company's context, and KSeF lists the "
            f"permissions granted: {names_en}.",
        )
    elif failure is not None:
        if isinstance(failure, KsefError) and 415 in failure.codes:
            lead = Text(
                "Biuro nie może zalogować się w kontekście tej firmy: KSeF nie widzi uprawnień nadanych biuru.",
                "The office cannot log in in this company's context: KSeF sees no permissions granted to the office.",
            )
        elif login_ok:
            lead = Text(
                "Biuro zalogowało się w kontekście firmy, ale nie udało się odczytać listy uprawnień.",
                "The office logged in in the company's context, but the list of permissions could not be read.",
            )
        else:
            lead = Text("Nie udało się potwierdzić uprawnień w KSeF.", "The permissions could not be confirmed in KSeF.")
        text = lead + failure.text
    else:
        text = Text(
            "Biuro zalogowało się w kontekście firmy, ale KSeF nie podaje żadnego uprawnienia nadanego biuru przez "
            "tę firmę.",
            "The office logged in in the company's context, but KSeF lists no permission this company granted "
            "the office.",
        )
    with store.write() as db:
        check_id = (
            db["grant_checks"]
            .insert(
                {
                    "client_id": client_id,
                    "checked_at": clock.iso(at),
                    "ksef_environment": environment,
                    "office_nip": profile.nip,
                    "login_ok": int(login_ok),
                    "query_ok": int(query_ok),
                    "ok": int(ok),
                    "permissions": json.dumps(permissions, ensure_ascii=False),
                    "message_pl": text.pl,
                    "message_en": text.en,
                    "actor": actor,
                }
            )
            .last_pk
        )
        error = failure if isinstance(failure, KsefError) else None
        ksef_log.record_operation(
            db,
            client_id=client_id,
            at=at,
            operation="permissions.verify",
            ok=ok,
            http_status=error.http_status if error else None,
            ksef_code=error.codes[0] if error and error.codes else None,
            description="" if ok else text.en,
            details={"login_ok": login_ok, "query_ok": query_ok, "scopes": [p["scope"] for p in permissions]},
        )
        audit.record(
            db,
            actor=actor,
            action="ksef.permissions.verify",
            object_type="client",
            object_id=client_id,
            details={
                "ok": ok,
                "login_ok": login_ok,
                "query_ok": query_ok,
                "scopes": [p["scope"] for p in permissions],
                "ksef_environment": environment,
                "code": failure.code if failure else None,
            },
            ip=ip,
            at=at,
        )
        return latest_check(db, client_id, environment=environment) or _missing(check_id)


def _missing(check_id: int) -> GrantCheck:  # pragma: no cover - the row was just written
    raise LookupError(check_id)


# -- revoking ------------------------------------------------------------------------------------------------


def revoke_grant(
    store: Store,
    *,
    client_id: int,
    ksef: KsefClient,
    actor: str,
    ip: str | None,
    at: datetime,
    poll_interval: float = 0.5,
    poll_timeout: float = 60.0,
) -> GrantCheck:
    """"Odbierz uprawnienia": remove the office's permissions in the client's KSeF session, then check again.

    KSeF lets only the client (who granted them) revoke; the client's session from its last signed login is
    used while it is valid (up to 7 days). Without it, :class:`GrantError` says what to do.
    """
    with store.connect() as db:
        client = clients.get_client(db, client_id)
        tokens = active_tokens(db, client_id)
        check = latest_check(db, client_id)
    if tokens is None or tokens.refresh_token.valid_until <= at:
        raise GrantError(
            Text(
                "Odebrać uprawnienia może tylko firma, która je nadała, w swojej sesji KSeF, a jej sesja z ostatniego "
                "podpisanego pliku wygasła. Niech firma odbierze je w Aplikacji Podatnika KSeF (Uprawnienia) albo "
                "podpisze nowy plik w metodzie 1 — wtedy przycisk zadziała.",
                "Only the company that granted the permissions can revoke them, in its KSeF session, and its session "
                "from the last signed file has expired. Let the company revoke them in the KSeF taxpayer "
                "application (Permissions), or sign a new file in method 1 — then this button works.",
            ),
            code="no_client_session",
        )
    ids = [p["id"] for p in (check.permissions if check else ())]
    if not ids:
        raise GrantError(
            Text(
                "Portal nie zna identyfikatorów uprawnień do odebrania. Najpierw kliknij „Sprawdź uprawnienia”.",
                "The portal does not know which permissions to revoke. First click \"Check the permissions\".",
            ),
            code="nothing_to_revoke",
        )
    ksef.use_tokens(tokens)
    references = []
    try:
        for permission_id in ids:
            accepted = ksef.revoke_permission(permission_id)
            references.append(accepted.reference_number)
            ksef.wait_for_operation(accepted.reference_number, interval=poll_interval, timeout=poll_timeout)
    except KsefError as exc:
        with store.write() as db:
            ksef_log.record_operation(
                db, client_id=client_id, at=at, operation="permissions.revoke", ok=False,
                http_status=exc.http_status, ksef_code=exc.codes[0] if exc.codes else None,
                description=exc.message_en, details={"references": references},
            )
            audit.record(db, actor=actor, action="ksef.permissions.revoke", object_type="client", object_id=client_id,
                         details={"ok": False, "references": references, "code": exc.code}, ip=ip, at=at)
        raise
    with store.write() as db:
        ksef_log.record_operation(
            db, client_id=client_id, at=at, operation="permissions.revoke", ok=True,
            details={"references": references, "nip": client.nip},
        )
        audit.record(db, actor=actor, action="ksef.permissions.revoke", object_type="client", object_id=client_id,
                     details={"ok": True, "references": references}, ip=ip, at=at)
    ksef.tokens = None
    return verify_grant(store, client_id=client_id, ksef=ksef, actor=actor, ip=ip, at=at,
                        poll_interval=poll_interval, poll_timeout=poll_timeout)
