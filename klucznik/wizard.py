"""The signed-XML authorization wizard (methods 1 and 2), without any web framework.

A client authorizes the office in two ways that both start with the same signed file:

1. ``grant`` — the client signs the portal's AuthTokenRequest; the portal logs in to KSeF in the client's
   context and grants the office's NIP InvoiceRead and InvoiceWrite. No certificates are stored.
2. ``portal_certs`` — same login; then the portal makes two key pairs, requests an Authentication and an
   Offline KSeF certificate with exactly the subject KSeF dictates, and stores them as the client's
   credentials (origin ``generated``).

Every step is a function that does one thing and records it: the challenge and the unsigned file
(``auth_requests``), the check of the upload, the submission of the *original bytes*, each poll of the
status, the tokens (``ksef_tokens``, inside the encrypted database), every KSeF call's outcome
(``ksef_operations``) and an audit entry. The state lives in the database, not in a session, so a page
reload, a second browser tab or a restarted portal continues where the last step ended. Steps that talk
to KSeF take a :class:`~klucznik.ksef_client.KsefClient` and an explicit time ``at``; nothing here sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlite_utils import Database

from klucznik import audit
from klucznik import certificates
from klucznik import clients
from klucznik import credentials
from klucznik import office as office_module
from klucznik import xades
from klucznik.errors import NotFound
from klucznik.errors import PortalError
from klucznik.ksef_client import AuthTokens
from klucznik.ksef_client import KsefClient
from klucznik.ksef_client import KsefError
from klucznik.ksef_client import TokenInfo
from klucznik.ksef_client import base_url_for
from klucznik.ksef_client import parse_datetime
from klucznik.storage import Store
from klucznik.storage import iso

CHALLENGE_LIFETIME = timedelta(minutes=10)
#: A send that did not finish within this time (the portal stopped) may be tried again.
SENDING_TIMEOUT = timedelta(minutes=2)
METHODS = ("grant", "portal_certs")
#: A request's life: issued → checked → submitted → authenticated → granting | enrolling → done; or failed.
STATUSES = (
    "issued",
    "checked",
    "sending",
    "submitted",
    "authenticated",
    "granting",
    "enrolling",
    "done",
    "failed",
    "expired",
)
FINAL = ("done", "failed", "expired")
CERTIFICATE_TYPES = (("Authentication", "online"), ("Offline", "offline"))


class WizardError(PortalError):
    """A wizard step that cannot be done now (wrong state, expired challenge, KSeF said no)."""

    code = "wizard"


# --- KSeF status codes in plain words ------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """What a KSeF authentication status code means for the user, and whether it is final."""

    code: int
    final: bool
    ok: bool
    message_pl: str
    message_en: str
    ksef_description: str = ""

    def message(self, lang: str) -> str:
        """The message in ``lang`` ("pl" or "en")."""
        return self.message_en if lang == "en" else self.message_pl


_AUTH_EXPLANATIONS: Mapping[int, tuple[str, str]] = {
    100: (
        "KSeF sprawdza podpis i uprawnienia. Przy podpisie kwalifikowanym może to potrwać kilka minut, bo KSeF "
        "pyta wystawcę certyfikatu o jego ważność.",
        "KSeF is checking the signature and permissions. With a qualified signature this can take a few "
        "minutes, because KSeF asks the certificate's issuer whether it is valid.",
    ),
    200: ("Uwierzytelnienie w KSeF zakończone sukcesem.", "KSeF authentication succeeded."),
    415: (
        "Podpisujący nie ma w KSeF uprawnień do tej firmy. Poproś właściciela o nadanie uprawnień albo niech "
        "plik podpisze właściciel firmy (lub jej pieczęć).",
        "The signer has no KSeF permissions for this company. Ask the owner to grant them, or have the file "
        "signed by the owner (or the company's seal).",
    ),
    425: (
        "To uwierzytelnienie zostało unieważnione (np. wylogowano sesję). Pobierz nowy plik i podpisz go ponownie.",
        "This authentication was revoked (e.g. the session was logged out). Download a new file and sign it "
        "again.",
    ),
    450: (
        "KSeF odrzucił plik: wyzwanie jest nieprawidłowe, już użyte albo wygasło. Pobierz nowy plik, podpisz go "
        "od razu i wgraj.",
        "KSeF refused the file: the challenge is invalid, already used or expired. Download a new file, sign "
        "it right away and upload it.",
    ),
    460: (
        "Certyfikat użyty do podpisu jest nieważny ({detail}). Podpisz plik ważnym podpisem kwalifikowanym, "
        "pieczęcią lub profilem zaufanym.",
        "The signing certificate is not valid ({detail}). Sign the file with a valid qualified signature, seal "
        "or Profil Zaufany.",
    ),
    470: (
        "KSeF odmówił: próba użycia danych osoby zmarłej. Plik musi podpisać inna osoba uprawniona.",
        "KSeF refused: the credentials of a deceased person were used. Another authorized person must sign.",
    ),
    480: (
        "KSeF zablokował logowanie w tej firmie (podejrzenie incydentu bezpieczeństwa). Skontaktuj się z "
        "Ministerstwem Finansów przez formularz zgłoszeniowy.",
        "KSeF blocked logins for this company (suspected security incident). Contact the Ministry of "
        "Finance through its contact form.",
    ),
    500: (
        "KSeF zgłosił nieznany błąd. Spróbuj ponownie za kilka minut z nowym plikiem.",
        "KSeF reported an unknown error. Try again in a few minutes with a new file.",
    ),
    550: (
        "KSeF przerwał operację z przyczyn wewnętrznych. Pobierz nowy plik i spróbuj ponownie.",
        "KSeF cancelled the operation for internal reasons. Download a new file and try again.",
    ),
}
#: Every authentication status code KSeF documents (KSEF-API.md §3.6).
AUTH_STATUS_CODES = tuple(sorted(_AUTH_EXPLANATIONS))


def explain_auth_status(code: int, description: str = "", details: tuple[str, ...] = ()) -> Explanation:
    """The user's explanation of an authentication status code (any unknown code ≥ 400 is a failure)."""
    pl, en = _AUTH_EXPLANATIONS.get(code, _AUTH_EXPLANATIONS[500])
    detail = "; ".join(details) or description or "-"
    return Explanation(
        code=code,
        final=code != 100,
        ok=code == 200,
        message_pl=pl.format(detail=detail),
        message_en=en.format(detail=detail),
        ksef_description=description,
    )


_OPERATION_EXPLANATIONS: Mapping[int, tuple[str, str]] = {
    100: ("KSeF przyjął operację i ją wykonuje.", "KSeF accepted the operation and is working on it."),
    200: ("Operacja w KSeF zakończona sukcesem.", "The KSeF operation succeeded."),
    400: ("KSeF odrzucił operację.", "KSeF refused the operation."),
    420: (
        "Osoba, która podpisała plik, nie może nadawać uprawnień w tej firmie (potrzebne uprawnienie do "
        "zarządzania uprawnieniami lub właściciel).",
        "The person who signed may not grant permissions in this company (the credentials-management "
        "permission or the owner is needed).",
    ),
    500: (
        "KSeF zgłosił nieznany błąd. Spróbuj ponownie za kilka minut.",
        "KSeF reported an unknown error. Try again in a few minutes.",
    ),
    550: (
        "KSeF przerwał operację z przyczyn wewnętrznych. Spróbuj ponownie.",
        "KSeF cancelled the operation for internal reasons. Try again.",
    ),
}


def explain_operation_status(code: int, description: str = "", details: tuple[str, ...] = ()) -> Explanation:
    """The explanation of a permission/enrollment operation status (100 = in progress, 200 = done)."""
    pl, en = _OPERATION_EXPLANATIONS.get(code, _OPERATION_EXPLANATIONS[400])
    if code not in _OPERATION_EXPLANATIONS and description:
        pl, en = f"{pl} KSeF: {description}", f"{en} KSeF: {description}"
    if details and code >= 400:
        pl, en = f"{pl} ({'; '.join(details)})", f"{en} ({'; '.join(details)})"
    return Explanation(
        code=code,
        final=code != 100,
        ok=code == 200,
        message_pl=pl,
        message_en=en,
        ksef_description=description,
    )


# --- the stored request ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthRequest:
    """One row of ``auth_requests``: a challenge, its file, and how far the wizard got with it."""

    id: int
    client_id: int
    method: str
    challenge: str
    challenge_timestamp: datetime
    expires_at: datetime
    unsigned_xml: bytes
    signed_xml: bytes | None
    signer: dict[str, Any] | None
    reference_number: str | None
    status: str
    status_code: int | None
    status_description: str | None
    created_at: datetime
    updated_at: datetime
    authentication_token: str | None = None
    followup: dict[str, Any] | None = None

    def expired(self, at: datetime) -> bool:
        """True once KSeF no longer accepts the challenge."""
        return at >= self.expires_at

    def seconds_left(self, at: datetime) -> int:
        """Whole seconds until the challenge expires (0 when it has)."""
        return max(0, int((self.expires_at - at).total_seconds()))

    @property
    def final(self) -> bool:
        """True when nothing more will happen to this request."""
        return self.status in FINAL

    def explanation(self) -> Explanation | None:
        """The last KSeF status in plain words (``None`` before KSeF answered)."""
        error = (self.followup or {}).get("error")
        if error and self.status == "failed":  # KSeF refused a call (HTTP 4xx) or the step could not run
            return Explanation(
                code=self.status_code or error.get("http_status") or 0,
                final=True,
                ok=False,
                message_pl=error["pl"],
                message_en=error["en"],
                ksef_description=self.status_description or "",
            )
        if self.status_code is None:
            return None
        if (
            self.status in ("granting", "enrolling")
            or self.followup
            and self.followup.get("stage") == "operation"
        ):
            return explain_operation_status(self.status_code, self.status_description or "")
        return explain_auth_status(self.status_code, self.status_description or "")


_COLUMNS = (
    "id, client_id, method, challenge, challenge_timestamp, expires_at, unsigned_xml, signed_xml, signer, "
    "reference_number, status, status_code, status_description, created_at, updated_at, "
    "authentication_token, followup"
)


def _row_to_request(row: tuple) -> AuthRequest:
    """One ``auth_requests`` row (in ``_COLUMNS`` order) as an :class:`AuthRequest`."""
    (
        id_,
        client_id,
        method,
        challenge,
        ts,
        expires,
        unsigned,
        signed,
        signer,
        ref,
        status,
        code,
        desc,
        created,
        updated,
        token,
        followup,
    ) = row
    return AuthRequest(
        id=id_,
        client_id=client_id,
        method=method,
        challenge=challenge,
        challenge_timestamp=parse_datetime(ts),
        expires_at=parse_datetime(expires),
        unsigned_xml=bytes(unsigned),
        signed_xml=bytes(signed) if signed else None,
        signer=json.loads(signer) if signer else None,
        reference_number=ref,
        status=status,
        status_code=code,
        status_description=desc,
        created_at=parse_datetime(created),
        updated_at=parse_datetime(updated),
        authentication_token=token,
        followup=json.loads(followup or "{}"),
    )


def get_request(db: Database, request_id: int, *, client_id: int | None = None) -> AuthRequest:
    """The request ``request_id`` (of ``client_id`` when given); :class:`NotFound` otherwise."""
    row = db.execute(f"SELECT {_COLUMNS} FROM auth_requests WHERE id = ?", [request_id]).fetchone()
    if row is None or (client_id is not None and row[1] != client_id):
        raise NotFound(
            "Nie ma takiej próby logowania. Zacznij od pobrania nowego pliku.",
            "No such login attempt. Start by downloading a new file.",
        )
    return _row_to_request(row)


def latest_request(db: Database, client_id: int, *, method: str | None = None) -> AuthRequest | None:
    """The client's most recent request (optionally for one method)."""
    sql = f"SELECT {_COLUMNS} FROM auth_requests WHERE client_id = ?"
    params: list[Any] = [client_id]
    if method:
        sql += " AND method = ?"
        params.append(method)
    row = db.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
    return _row_to_request(row) if row else None


def active_tokens(db: Database, client_id: int) -> AuthTokens | None:
    """The client's current KSeF tokens (``None`` if there are none)."""
    row = db.execute(
        "SELECT access_token, access_valid_until, refresh_token, refresh_valid_until FROM ksef_tokens "
        "WHERE client_id = ? AND status = 'active' ORDER BY id DESC LIMIT 1",
        [client_id],
    ).fetchone()
    if row is None:
        return None
    return AuthTokens(TokenInfo(row[0], parse_datetime(row[1])), TokenInfo(row[2], parse_datetime(row[3])))


def ksef_client_for(db: Database, **kwargs: Any) -> KsefClient:
    """A client for the office's configured KSeF environment (``sandbox`` uses the office's sandbox URL)."""
    profile = office_module.get_office(db)
    return KsefClient(base_url_for(profile.ksef_environment, profile.sandbox_url or None), **kwargs)


# --- recording -------------------------------------------------------------------------------------------------


def _operation(
    db: Database,
    *,
    client_id: int,
    at: datetime,
    operation: str,
    ok: bool,
    reference: str | None = None,
    error: KsefError | None = None,
    ksef_code: int | None = None,
    description: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """One ``ksef_operations`` row: a KSeF call's outcome (a :class:`KsefError` fills the HTTP status and codes)."""
    db["ksef_operations"].insert(
        {
            "client_id": client_id,
            "at": iso(at),
            "operation": operation,
            "reference_number": reference,
            "ok": int(ok),
            "http_status": error.http_status if error else None,
            "ksef_code": ksef_code
            if ksef_code is not None
            else (error.codes[0] if error and error.codes else None),
            "description": description or (error.message_en if error else ""),
            "details": json.dumps(
                {**(details or {}), **({"ksef": list(error.descriptions)} if error else {})},
                ensure_ascii=False,
            ),
        }
    )


def _with_error(request: AuthRequest, exc: PortalError) -> dict[str, Any]:
    """The request's follow-up data plus the plain-words reason it failed (shown on the page)."""
    error = {"pl": exc.message_pl, "en": exc.message_en, "code": exc.code}
    if isinstance(exc, KsefError):
        error["http_status"] = exc.http_status
    return {**(request.followup or {}), "error": error}


def _update(db: Database, request_id: int, at: datetime, **values: Any) -> None:
    """Update the request's columns and ``updated_at`` (``signer`` / ``followup`` stored as JSON)."""
    values["updated_at"] = iso(at)
    for key in ("signer", "followup"):
        if key in values and not isinstance(values[key], str | None):
            values[key] = json.dumps(values[key], ensure_ascii=False)
    db["auth_requests"].update(request_id, values)


def _failed(request: AuthRequest, exc: KsefError) -> dict[str, Any]:
    """The request's columns once KSeF refused a call: ``failed``, KSeF's code and words, the reason."""
    return {
        "status": "failed",
        "status_code": exc.codes[0] if exc.codes else None,
        "status_description": "; ".join((*exc.descriptions, *exc.details)),
        "followup": _with_error(request, exc),
    }


def _log_step(
    db: Database,
    request: AuthRequest,
    *,
    at: datetime,
    actor: str,
    ip: str | None,
    action: str,
    audit_details: dict[str, Any],
    changes: dict[str, Any] | None = None,
    operation: str | None = None,
    ok: bool = True,
    reference: str | None = None,
    error: KsefError | None = None,
    ksef_code: int | None = None,
    description: str = "",
    details: dict[str, Any] | None = None,
) -> AuthRequest:
    """Record one step: the request's ``changes``, the KSeF ``operation`` (if any), an audit entry; re-read it.

    The audit entry's details always carry ``request_id``, so every entry of an attempt can be found.
    """
    if changes:
        _update(db, request.id, at, **changes)
    if operation is not None:
        _operation(
            db,
            client_id=request.client_id,
            at=at,
            operation=operation,
            ok=ok,
            reference=reference,
            error=error,
            ksef_code=ksef_code,
            description=description,
            details=details,
        )
    audit.record(
        db,
        actor=actor,
        action=action,
        object_type="client",
        object_id=request.client_id,
        details={"request_id": request.id, **audit_details},
        ip=ip,
        at=at,
    )
    return get_request(db, request.id)


# --- step 1: the file to sign ----------------------------------------------------------------------------------


def issue_request(
    store: Store,
    *,
    client_id: int,
    method: str,
    ksef: KsefClient,
    actor: str,
    at: datetime,
    ip: str | None = None,
) -> AuthRequest:
    """Take a fresh challenge from KSeF and store the unsigned AuthTokenRequest for the client's NIP."""
    if method not in METHODS:
        raise WizardError(
            "Nieznana metoda autoryzacji.", "Unknown authorization method.", code="method_unknown"
        )
    with store.connect() as db:
        client = clients.get_client(db, client_id)
    try:
        challenge = ksef.challenge()
    except KsefError as exc:
        with store.write() as db:
            _operation(db, client_id=client_id, at=at, operation="auth.challenge", ok=False, error=exc)
        raise
    unsigned = xades.build_auth_token_request(challenge=challenge.challenge, nip=client.nip)
    expires_at = challenge.timestamp + CHALLENGE_LIFETIME
    with store.write() as db:
        request_id = (
            db["auth_requests"]
            .insert(
                {
                    "client_id": client_id,
                    "method": method,
                    "challenge": challenge.challenge,
                    "challenge_timestamp": iso(challenge.timestamp),
                    "expires_at": iso(expires_at),
                    "unsigned_xml": unsigned,
                    "status": "issued",
                    "created_at": iso(at),
                    "created_by": actor,
                    "updated_at": iso(at),
                    "followup": "{}",
                }
            )
            .last_pk
        )
        return _log_step(
            db,
            get_request(db, request_id),
            at=at,
            actor=actor,
            ip=ip,
            action="ksef.auth.challenge",
            audit_details={"method": method, "challenge": challenge.challenge},
            operation="auth.challenge",
            details={"challenge": challenge.challenge},
        )


# --- step 2: the uploaded signed file --------------------------------------------------------------------------


def check_upload(
    store: Store,
    *,
    request_id: int,
    data: bytes,
    actor: str,
    at: datetime,
    ip: str | None = None,
    client_id: int | None = None,
) -> xades.CheckResult:
    """Check an uploaded signed file against the stored request; when it passes, keep it for sending.

    Nothing is sent to KSeF here: the user first sees who signed and confirms.
    """
    with store.connect() as db:
        request = get_request(db, request_id, client_id=client_id)
        client = clients.get_client(db, request.client_id)
    if request.status not in ("issued", "checked"):
        raise WizardError(
            "Ten plik został już wysłany do KSeF. Aby zacząć od nowa, pobierz nowy plik.",
            "This file was already sent to KSeF. To start again, download a new file.",
            code="wrong_state",
        )
    result = xades.check_signed_request(
        data, challenge=request.challenge, nip=client.nip, at=at, challenge_expires_at=request.expires_at
    )
    with store.write() as db:
        if result.ok:
            _update(
                db,
                request_id,
                at,
                status="checked",
                signed_xml=result.payload,
                signer=result.signer.as_dict() if result.signer else None,
            )
        elif request.status == "checked":  # a bad file replaces the good one: nothing is left to send
            _update(db, request_id, at, status="issued", signed_xml=None, signer=None)
        audit.record(
            db,
            actor=actor,
            action="ksef.auth.upload",
            object_type="client",
            object_id=request.client_id,
            details={
                "request_id": request_id,
                "ok": result.ok,
                "problems": [p.code for p in result.problems],
                "signer": result.signer.as_dict() if result.signer else None,
                "size": len(data),
            },
            ip=ip,
            at=at,
        )
    return result


# --- step 3: send the original bytes ---------------------------------------------------------------------------


def submit(
    store: Store,
    *,
    request_id: int,
    ksef: KsefClient,
    actor: str,
    at: datetime,
    ip: str | None = None,
    client_id: int | None = None,
) -> AuthRequest:
    """Send the checked signed file to KSeF, byte for byte (``application/xml``).

    A refusal (HTTP 400) ends the request; no answer or a 5xx leaves it ``checked`` so the user can press
    the button again while the challenge is still valid (KSeF did not process it).
    """
    with store.connect() as db:
        request = get_request(db, request_id, client_id=client_id)
    if request.status != "checked" or not request.signed_xml:
        raise WizardError(
            "Najpierw wgraj podpisany plik i sprawdź, kto go podpisał.",
            "First upload the signed file and check who signed it.",
            code="wrong_state",
        )
    if request.expired(at):
        with store.write() as db:
            _update(db, request_id, at, status="expired")
        pl, en = xades.MESSAGES["challenge_expired"]
        raise WizardError(pl, en, code="challenge_expired")
    with store.write() as db:  # claim the request: a second tab or a double click cannot send it twice
        claimed = db.execute(
            "UPDATE auth_requests SET status = 'sending', updated_at = ? WHERE id = ? AND status = 'checked'",
            [iso(at), request_id],
        ).rowcount
    if not claimed:
        raise WizardError(
            "Ten plik jest już wysyłany do KSeF. Poczekaj na wynik.",
            "This file is already being sent to KSeF. Wait for the result.",
            code="wrong_state",
        )
    try:
        init = ksef.submit_xades(request.signed_xml)
    except KsefError as exc:
        retryable = exc.http_status is None or exc.http_status >= 500 or exc.http_status == 429
        with store.write() as db:
            _log_step(
                db,
                request,
                at=at,
                actor=actor,
                ip=ip,
                action="ksef.auth.submit",
                audit_details={
                    "ok": False,
                    "http_status": exc.http_status,
                    "codes": list(exc.codes),
                },
                changes={"status": "checked"} if retryable else _failed(request, exc),
                operation="auth.xades_signature",
                ok=False,
                error=exc,
            )
        raise
    with store.write() as db:
        return _log_step(
            db,
            request,
            at=at,
            actor=actor,
            ip=ip,
            action="ksef.auth.submit",
            audit_details={"ok": True, "reference": init.reference_number},
            changes={
                "status": "submitted",
                "reference_number": init.reference_number,
                "authentication_token": init.authentication_token.token,
                "authentication_token_valid_until": iso(init.authentication_token.valid_until),
                "status_code": 100,
                "status_description": None,
            },
            operation="auth.xades_signature",
            reference=init.reference_number,
        )


# --- step 4: follow KSeF until the method is done ---------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where a request stands after one :func:`advance`; ``notice`` = a passing problem (will retry)."""

    request: AuthRequest
    explanation: Explanation | None
    notice: KsefError | None = None

    @property
    def done(self) -> bool:
        """True when nothing more will happen (success or failure)."""
        return self.request.final

    @property
    def ok(self) -> bool:
        """True when the whole method finished successfully."""
        return self.request.status == "done"


def advance(
    store: Store,
    *,
    request_id: int,
    ksef: KsefClient,
    actor: str,
    at: datetime,
    ip: str | None = None,
    client_id: int | None = None,
) -> Progress:
    """Do at most one round of KSeF calls for the request's current step and store what changed.

    Called by the web page's polling and by scripts in a loop; it never sleeps. Writes happen only when
    something changed, so polling every second does not write a snapshot every second.
    """
    with store.connect() as db:
        request = get_request(db, request_id, client_id=client_id)
    if request.status == "sending" and at - request.updated_at > SENDING_TIMEOUT:
        with store.write() as db:  # the portal stopped while sending: let the user press the button again
            _update(db, request.id, at, status="checked")
            request = get_request(db, request.id)
    try:
        if request.status == "submitted":
            request = _poll_auth(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
        if request.status == "authenticated":
            request = _start_followup(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
        elif request.status == "granting":
            request = _poll_grant(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
        elif request.status == "enrolling":
            request = _poll_enrollments(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
    except WizardError as exc:  # a step that cannot run (e.g. no office NIP, no tokens): stop with the reason
        with store.write() as db:
            request = _log_step(
                db,
                request,
                at=at,
                actor=actor,
                ip=ip,
                action="ksef.auth.failed",
                audit_details={"code": exc.code},
                changes={"status": "failed", "followup": _with_error(request, exc)},
            )
        return Progress(request, request.explanation())
    except KsefError as exc:
        if exc.http_status is not None and 400 <= exc.http_status < 500 and exc.http_status != 429:
            with store.write() as db:  # KSeF refused: the request ends here
                request = _log_step(
                    db,
                    request,
                    at=at,
                    actor=actor,
                    ip=ip,
                    action="ksef.auth.failed",
                    audit_details={"http_status": exc.http_status},
                    changes=_failed(request, exc),
                    operation=f"wizard.{request.status}",
                    ok=False,
                    reference=request.reference_number,
                    error=exc,
                )
        # a refusal ended the request above; anything else is temporary and the next poll retries
        return Progress(request, request.explanation(), notice=exc)
    return Progress(request, request.explanation())


def _poll_auth(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Ask KSeF once for the authentication status; on success redeem and store the tokens."""
    status = ksef.auth_status(request.reference_number, request.authentication_token)
    code = status.status.code
    if code == 100:
        if request.status_code != 100:
            with store.write() as db:
                _update(db, request.id, at, status_code=100, status_description=status.status.description)
        return request
    explanation = explain_auth_status(code, status.status.description, status.status.details)
    if code != 200:
        with store.write() as db:
            return _log_step(
                db,
                request,
                at=at,
                actor=actor,
                ip=ip,
                action="ksef.auth.failed",
                audit_details={"code": code},
                changes={
                    "status": "failed",
                    "status_code": code,
                    "status_description": "; ".join(status.status.details) or status.status.description,
                },
                operation="auth.status",
                ok=False,
                reference=request.reference_number,
                ksef_code=code,
                description=status.status.description,
                details={"details": list(status.status.details)},
            )
    tokens = ksef.redeem(request.authentication_token)
    with store.connect() as db:
        client = clients.get_client(db, request.client_id)
    with store.write() as db:
        db.execute(
            "UPDATE ksef_tokens SET status = 'superseded' WHERE client_id = ? AND status = 'active'",
            [request.client_id],
        )
        db["ksef_tokens"].insert(
            {
                "client_id": request.client_id,
                "context_nip": client.nip,
                "reference_number": request.reference_number,
                "access_token": tokens.access_token.token,
                "access_valid_until": iso(tokens.access_token.valid_until),
                "refresh_token": tokens.refresh_token.token,
                "refresh_valid_until": iso(tokens.refresh_token.valid_until),
                "status": "active",
                "created_at": iso(at),
            }
        )
        return _log_step(
            db,
            request,
            at=at,
            actor=actor,
            ip=ip,
            action="ksef.auth.success",
            audit_details={
                "reference": request.reference_number,
                "authentication_method": status.authentication_method,
                "signer": request.signer,
            },
            changes={
                "status": "authenticated",
                "status_code": 200,
                "status_description": explanation.ksef_description,
                "authentication_token": None,
            },
            operation="auth.redeem",
            reference=request.reference_number,
            ksef_code=200,
            details={"method": status.authentication_method, "method_code": status.method_info.code},
        )


def _client_with_tokens(store: Store, request: AuthRequest, ksef: KsefClient) -> KsefClient:
    """``ksef`` with the client's stored tokens; :class:`WizardError` when there are none."""
    with store.connect() as db:
        tokens = active_tokens(db, request.client_id)
    if tokens is None:
        raise WizardError(
            "Brak tokenów KSeF dla tej firmy. Zaloguj się ponownie podpisanym plikiem.",
            "No KSeF tokens for this company. Log in again with a signed file.",
            code="no_tokens",
        )
    ksef.use_tokens(tokens)
    return ksef


def _start_followup(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """After login: grant the office's NIP (method 1) or start the certificate enrollments (method 2)."""
    ksef = _client_with_tokens(store, request, ksef)
    with store.connect() as db:
        profile = office_module.get_office(db)
        client = clients.get_client(db, request.client_id)
    if request.method == "grant":
        if not profile.nip:
            raise WizardError(
                "Uzupełnij NIP biura w ustawieniach biura, aby nadać mu uprawnienia.",
                "Fill in the office's NIP in the office settings so it can be granted permissions.",
                code="office_nip_missing",
            )
        accepted = ksef.grant_entity(
            nip=profile.nip,
            full_name=_full_name(profile.name, profile.nip),
            description=f"Klucznik: biuro rachunkowe {profile.nip} dla {client.nip}",
            permissions=("InvoiceRead", "InvoiceWrite"),
        )
        with store.write() as db:
            return _log_step(
                db,
                request,
                at=at,
                actor=actor,
                ip=ip,
                action="ksef.permissions.grant",
                audit_details={
                    "office_nip": profile.nip,
                    "reference": accepted.reference_number,
                },
                changes={
                    "status": "granting",
                    "status_code": 100,
                    "status_description": None,
                    "followup": {
                        "stage": "operation",
                        "grant_reference": accepted.reference_number,
                        "office_nip": profile.nip,
                    },
                },
                operation="permissions.grant_entity",
                reference=accepted.reference_number,
                details={"office_nip": profile.nip, "permissions": ["InvoiceRead", "InvoiceWrite"]},
            )
    return _start_enrollments(store, request, ksef=ksef, client_nip=client.nip, actor=actor, at=at, ip=ip)


def _full_name(name: str, nip: str) -> str:
    """The office's name as KSeF wants it for a grant (at least five characters)."""
    text = (name or f"Biuro rachunkowe {nip}").strip()
    return text if len(text) >= 5 else f"{text} ({nip})"


def _poll_grant(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Ask KSeF once for the grant operation's status and store a final answer."""
    ksef = _client_with_tokens(store, request, ksef)
    reference = request.followup["grant_reference"]
    status = ksef.operation_status(reference).status
    if status.code == 100:
        return request
    with store.write() as db:
        ok = status.code == 200
        if ok:
            clients.set_auth_method(db, request.client_id, "grant")
        return _log_step(
            db,
            request,
            at=at,
            actor=actor,
            ip=ip,
            action="ksef.permissions.granted" if ok else "ksef.permissions.failed",
            audit_details={"code": status.code},
            changes={
                "status": "done" if ok else "failed",
                "status_code": status.code,
                "status_description": "; ".join((status.description, *status.details)),
            },
            operation="permissions.operation_status",
            ok=ok,
            reference=reference,
            ksef_code=status.code,
            description=status.description,
        )


# --- method 2: certificates generated by the portal ----------------------------------------------------------


def _new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 private key for one KSeF certificate."""
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A PKCS#10 request (DER) with exactly ``subject`` (KSeF's enrollment data), signed ECDSA-SHA256."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def _start_enrollments(
    store: Store,
    request: AuthRequest,
    *,
    ksef: KsefClient,
    client_nip: str,
    actor: str,
    at: datetime,
    ip: str | None,
) -> AuthRequest:
    """Check the limits and request the Authentication and Offline certificates with new keys."""
    limits = ksef.limits()
    if not limits.can_request or min(limits.enrollment_remaining, limits.certificate_remaining) < len(
        CERTIFICATE_TYPES
    ):
        raise WizardError(
            "KSeF nie pozwala tej firmie teraz wystąpić o dwa certyfikaty (wykorzystany limit wniosków lub "
            "certyfikatów). Unieważnij niepotrzebne certyfikaty KSeF firmy albo wybierz inną metodę.",
            "KSeF does not let this company request two certificates now (the limit of requests or "
            "certificates is used up). Revoke certificates the company no longer needs, or choose another method.",
            code="certificate_limit",
        )
    data = ksef.enrollment_data()
    subject = data.x509_name()
    enrollments: dict[str, dict[str, Any]] = {}
    for ksef_type, slot in CERTIFICATE_TYPES:
        key = _new_key()
        accepted = ksef.enroll(
            name=f"Klucznik {ksef_type} {client_nip}",
            certificate_type=ksef_type,
            csr_der=build_csr(subject, key),
        )
        enrollments[ksef_type] = {
            "slot": slot,
            "reference": accepted.reference_number,
            "serial": None,
            "key": key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode("ascii"),
        }
        with store.write() as db:  # each accepted request is recorded at once (KSeF counts them)
            _operation(
                db,
                client_id=request.client_id,
                at=at,
                operation="certificates.enroll",
                ok=True,
                reference=accepted.reference_number,
                details={"type": ksef_type},
            )
            _update(db, request.id, at, followup={"stage": "operation", "enrollments": enrollments})
    with store.write() as db:
        return _log_step(
            db,
            request,
            at=at,
            actor=actor,
            ip=ip,
            action="ksef.certificates.enroll",
            audit_details={
                "references": {t: e["reference"] for t, e in enrollments.items()},
            },
            changes={"status": "enrolling", "status_code": 100, "status_description": None},
        )


def _poll_enrollments(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Ask KSeF for each enrollment's status; once both are issued, store them as credentials."""
    ksef = _client_with_tokens(store, request, ksef)
    enrollments = request.followup["enrollments"]
    changed = False
    for ksef_type, item in enrollments.items():
        if item["serial"]:
            continue
        status = ksef.enrollment_status(item["reference"])
        if status.status.code == 100:
            continue
        if status.status.code != 200 or not status.certificate_serial_number:
            with store.write() as db:
                return _log_step(
                    db,
                    request,
                    at=at,
                    actor=actor,
                    ip=ip,
                    action="ksef.certificates.failed",
                    audit_details={"type": ksef_type, "code": status.status.code},
                    changes={
                        "status": "failed",
                        "status_code": status.status.code,
                        "status_description": "; ".join((status.status.description, *status.status.details)),
                    },
                    operation="certificates.enrollment_status",
                    ok=False,
                    reference=item["reference"],
                    ksef_code=status.status.code,
                    description=status.status.description,
                )
        item["serial"] = status.certificate_serial_number
        changed = True
    if not all(item["serial"] for item in enrollments.values()):
        if changed:
            with store.write() as db:
                _update(db, request.id, at, followup={"stage": "operation", "enrollments": enrollments})
                return get_request(db, request.id)
        return request
    retrieved = {c.serial_number: c for c in ksef.retrieve([item["serial"] for item in enrollments.values()])}
    with store.write() as db:
        superseded = credentials.supersede_active(db, request.client_id, at=at)
        stored = {}
        for ksef_type, item in enrollments.items():
            cert = x509.load_der_x509_certificate(retrieved[item["serial"]].certificate_der)
            stored[ksef_type] = credentials.add_credential(
                db,
                client_id=request.client_id,
                slot=item["slot"],
                origin="generated",
                info=certificates.summarise(cert),
                ksef_type=ksef_type,
                private_key=item["key"].encode("ascii"),
                key_password=None,
                actor=actor,
                at=at,
            )
        clients.set_auth_method(db, request.client_id, "portal_certs")
        followup = {
            "stage": "operation",
            "enrollments": {t: {k: v for k, v in e.items() if k != "key"} for t, e in enrollments.items()},
        }  # keys now in credentials
        return _log_step(
            db,
            request,
            at=at,
            actor=actor,
            ip=ip,
            action="credentials.generate",
            audit_details={
                "credential_ids": stored,
                "superseded": superseded,
                "serials": {t: e["serial"] for t, e in enrollments.items()},
            },
            changes={"status": "done", "status_code": 200, "status_description": None, "followup": followup},
            operation="certificates.retrieve",
            details={"serials": [e["serial"] for e in enrollments.values()]},
        )
