"""The stored login attempt of methods 1 and 2 (``auth_requests``), and how each step of it is recorded.

A client authorizes the office in two ways that both start with the same signed file: ``grant`` (the
office's NIP receives InvoiceRead and InvoiceWrite) and ``portal_certs`` (the portal enrolls the client's
Authentication and Offline certificates). The state lives in the database, not in a web session, so a page
reload, a second browser tab or a restarted portal continues where the last step ended. Every step records
what changed on the request, the outcome of each KSeF call (``ksef_operations``) and an audit entry, in one
write (:func:`log_step`).

A request's life: issued → checked → sending → submitted → authenticated → granting | enrolling → done; or
failed / expired.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from klucznik import clock
from klucznik.errors import NotFound
from klucznik.errors import PortalError
from klucznik.ksef.errors import KsefError
from klucznik.ksef.statuses import Explanation
from klucznik.ksef.statuses import explain_auth_status
from klucznik.ksef.statuses import explain_operation_status
from klucznik.records import audit
from klucznik.records import ksef_log
from klucznik.text import Text

CHALLENGE_LIFETIME = timedelta(minutes=10)
#: A send that did not finish within this time (the portal stopped) may be tried again.
SENDING_TIMEOUT = timedelta(minutes=2)
METHODS = ("grant", "portal_certs")
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
    ksef_environment: str | None = None

    def expired(self, at: datetime) -> bool:
        """True once KSeF no longer accepts the challenge."""
        return at >= self.expires_at

    def seconds_left(self, at: datetime) -> int:
        """Whole seconds until the challenge expires (0 when it has)."""
        return max(0, int((self.expires_at - at).total_seconds()))

    @property
    def awaiting_user(self) -> bool:
        """True while the attempt waits for the user's go-ahead (method 2, after the limits were shown)."""
        return bool((self.followup or {}).get("awaiting")) and not self.final

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
                text=Text(error["pl"], error["en"]),
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
    "authentication_token, followup, ksef_environment"
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
        environment,
    ) = row
    return AuthRequest(
        id=id_,
        client_id=client_id,
        method=method,
        challenge=challenge,
        challenge_timestamp=clock.parse(ts),
        expires_at=clock.parse(expires),
        unsigned_xml=bytes(unsigned),
        signed_xml=bytes(signed) if signed else None,
        signer=json.loads(signer) if signer else None,
        reference_number=ref,
        status=status,
        status_code=code,
        status_description=desc,
        created_at=clock.parse(created),
        updated_at=clock.parse(updated),
        authentication_token=token,
        followup=json.loads(followup or "{}"),
        ksef_environment=environment,
    )


def get_request(db: Database, request_id: int, *, client_id: int | None = None) -> AuthRequest:
    """The request ``request_id`` (of ``client_id`` when given); :class:`NotFound` otherwise."""
    row = db.execute(f"SELECT {_COLUMNS} FROM auth_requests WHERE id = ?", [request_id]).fetchone()
    if row is None or (client_id is not None and row[1] != client_id):
        raise NotFound(
            Text(
                "Nie ma takiej próby logowania. Zacznij od pobrania nowego pliku.",
                "No such login attempt. Start by downloading a new file.",
            ),
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


def record_ksef(
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
    ksef_log.record_operation(
        db,
        client_id=client_id,
        at=at,
        operation=operation,
        ok=ok,
        reference=reference,
        http_status=error.http_status if error else None,
        ksef_code=ksef_code if ksef_code is not None else (error.codes[0] if error and error.codes else None),
        description=description or (error.message_en if error else ""),
        details={**(details or {}), **({"ksef": list(error.descriptions)} if error else {})},
    )


def with_error(request: AuthRequest, exc: PortalError) -> dict[str, Any]:
    """The request's follow-up data plus the plain-words reason it failed (shown on the page)."""
    error = {"pl": exc.text.pl, "en": exc.text.en, "code": exc.code}
    if isinstance(exc, KsefError):
        error["http_status"] = exc.http_status
    return {**(request.followup or {}), "error": error}


def update_request(db: Database, request_id: int, at: datetime, **values: Any) -> None:
    """Update the request's columns and ``updated_at`` (``signer`` / ``followup`` stored as JSON)."""
    values["updated_at"] = clock.iso(at)
    for key in ("signer", "followup"):
        if key in values and not isinstance(values[key], str | None):
            values[key] = json.dumps(values[key], ensure_ascii=False)
    db["auth_requests"].update(request_id, values)


def failed_changes(request: AuthRequest, exc: KsefError) -> dict[str, Any]:
    """The request's columns once KSeF refused a call: ``failed``, KSeF's code and words, the reason."""
    return {
        "status": "failed",
        "status_code": exc.codes[0] if exc.codes else None,
        "status_description": "; ".join((*exc.descriptions, *exc.details)),
        "followup": with_error(request, exc),
    }


def log_step(
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
        update_request(db, request.id, at, **changes)
    if operation is not None:
        record_ksef(
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
