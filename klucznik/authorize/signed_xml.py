"""Steps 1–3 of methods 1 and 2: the file to sign, the check of the signed upload, and sending it.

Nothing here sleeps; steps that talk to KSeF take a :class:`~klucznik.ksef.client.KsefClient` and the
moment ``at``. The signed file is sent byte for byte as uploaded (only a leading UTF-8 BOM removed, which
cannot change a signature).
"""

from __future__ import annotations

from datetime import datetime

from klucznik import clock
from klucznik import xades
from klucznik.authorize.grant_check import self_grant_error
from klucznik.authorize.requests import CHALLENGE_LIFETIME
from klucznik.authorize.requests import METHODS
from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import WizardError
from klucznik.authorize.requests import failed_changes
from klucznik.authorize.requests import get_request
from klucznik.authorize.requests import log_step
from klucznik.authorize.requests import record_ksef
from klucznik.authorize.requests import update_request
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.errors import KsefError
from klucznik.records import audit
from klucznik.records import clients
from klucznik.records import office
from klucznik.text import Text


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
            Text("Nieznana metoda autoryzacji.", "Unknown authorization method."), code="method_unknown"
        )
    with store.connect() as db:
        client = clients.get_client(db, client_id)
        office_nip = office.get_office(db).nip
    if method == "grant" and office_nip and office_nip == client.nip:
        raise WizardError(self_grant_error(client.nip).text, code="self_grant")
    try:
        challenge = ksef.challenge()
    except KsefError as exc:
        with store.write() as db:  # every KSeF operation is in the audit log, failed ones too (README)
            record_ksef(db, client_id=client_id, at=at, operation="auth.challenge", ok=False, error=exc)
            audit.record(
                db,
                actor=actor,
                action="ksef.auth.challenge_failed",
                object_type="client",
                object_id=client_id,
                details={
                    "method": method,
                    "http_status": exc.http_status,
                    "codes": list(exc.codes),
                    "message": exc.text.pl,
                },
                ip=ip,
                at=at,
            )
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
                    "challenge_timestamp": clock.iso(challenge.timestamp),
                    "expires_at": clock.iso(expires_at),
                    "unsigned_xml": unsigned,
                    "status": "issued",
                    "created_at": clock.iso(at),
                    "created_by": actor,
                    "updated_at": clock.iso(at),
                    "followup": "{}",
                    "ksef_environment": office.get_office(db).ksef_environment,
                }
            )
            .last_pk
        )
        return log_step(
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
            Text(
                "Ten plik został już wysłany do KSeF. Aby zacząć od nowa, pobierz nowy plik.",
                "This file was already sent to KSeF. To start again, download a new file.",
            ),
            code="wrong_state",
        )
    result = xades.check_signed_request(
        data, challenge=request.challenge, nip=client.nip, at=at, challenge_expires_at=request.expires_at
    )
    with store.write() as db:
        if result.ok:
            update_request(
                db,
                request_id,
                at,
                status="checked",
                signed_xml=result.payload,
                signer=result.signer.as_dict() if result.signer else None,
            )
        elif request.status == "checked":  # a bad file replaces the good one: nothing is left to send
            update_request(db, request_id, at, status="issued", signed_xml=None, signer=None)
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
            Text(
                "Najpierw wgraj podpisany plik i sprawdź, kto go podpisał.",
                "First upload the signed file and check who signed it.",
            ),
            code="wrong_state",
        )
    if request.expired(at):
        with store.write() as db:
            update_request(db, request_id, at, status="expired")
        raise WizardError(xades.MESSAGES["challenge_expired"], code="challenge_expired")
    with store.write() as db:  # claim the request: a second tab or a double click cannot send it twice
        claimed = db.execute(
            "UPDATE auth_requests SET status = 'sending', updated_at = ? WHERE id = ? AND status = 'checked'",
            [clock.iso(at), request_id],
        ).rowcount
    if not claimed:
        raise WizardError(
            Text(
                "Ten plik jest już wysyłany do KSeF. Poczekaj na wynik.",
                "This file is already being sent to KSeF. Wait for the result.",
            ),
            code="wrong_state",
        )
    try:
        init = ksef.submit_xades(request.signed_xml)
    except KsefError as exc:
        retryable = exc.http_status is None or exc.http_status >= 500 or exc.http_status == 429
        with store.write() as db:
            log_step(
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
                changes={"status": "checked"} if retryable else failed_changes(request, exc),
                operation="auth.xades_signature",
                ok=False,
                error=exc,
            )
        raise
    with store.write() as db:
        return log_step(
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
                "authentication_token_valid_until": clock.iso(init.authentication_token.valid_until),
                "status_code": 100,
                "status_description": None,
            },
            operation="auth.xades_signature",
            reference=init.reference_number,
        )
