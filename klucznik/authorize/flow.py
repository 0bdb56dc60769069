"""Step 4 of methods 1 and 2: follow KSeF until the method is done, one round of calls per :func:`advance`.

Called by the web page's polling and by scripts in a loop; it never sleeps. Writes happen only when
something changed, so polling every second does not write every second. A refusal by KSeF (HTTP 4xx) ends
the request with the reason in plain words; anything else (no answer, 5xx, 429) is temporary and the next
round retries.

Several pollers may follow one attempt at once (the office's page, the client's signing-link page, a second
tab, the resume thread after a restart); in one process only one of them asks KSeF at a time, the others get
the attempt as stored. Two rounds at once would both redeem the login's tokens, which KSeF allows once: the
second refusal would end an attempt that had just succeeded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from klucznik.authorize import enroll
from klucznik.authorize import grant
from klucznik.authorize.requests import SENDING_TIMEOUT
from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import WizardError
from klucznik.authorize.requests import failed_changes
from klucznik.authorize.requests import get_request
from klucznik.authorize.requests import log_step
from klucznik.authorize.requests import update_request
from klucznik.authorize.requests import with_error
from klucznik.authorize.session import client_with_tokens
from klucznik.authorize.session import save_tokens
from klucznik.errors import PortalError
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.errors import KsefError
from klucznik.ksef.statuses import Explanation
from klucznik.ksef.statuses import explain_auth_status
from klucznik.records import clients
from klucznik.records import enrollments
from klucznik.records import office
from klucznik.text import Text


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


#: Attempts with a round of KSeF calls under way in this process.
_rounds: set[int] = set()
_rounds_lock = threading.Lock()


@contextmanager
def _only_round(request_id: int) -> Iterator[bool]:
    """True when this is the only round of the attempt under way in this process (then it may ask KSeF)."""
    with _rounds_lock:
        alone = request_id not in _rounds
        _rounds.add(request_id)
    try:
        yield alone
    finally:
        if alone:
            with _rounds_lock:
                _rounds.discard(request_id)


def advance(
    store: Store,
    *,
    request_id: int,
    ksef: KsefClient,
    actor: str,
    at: datetime,
    ip: str | None = None,
    client_id: int | None = None,
    login_only: bool = False,
) -> Progress:
    """Do at most one round of KSeF calls for the request's current step and store what changed.

    Called by the web page's polling and by scripts in a loop; it never sleeps. Writes happen only when
    something changed, so polling every second does not write a snapshot every second. While another round
    of the same attempt is under way, it returns the attempt as stored without asking KSeF. ``login_only``
    stops at KSeF's answer on the login (the client's signing-link page: the grant or the enrollment that
    follows is the office's).
    """
    with _only_round(request_id) as alone:
        with store.connect() as db:
            request = get_request(db, request_id, client_id=client_id)
        if not alone:
            return Progress(request, request.explanation())
        return _round(store, request, ksef=ksef, actor=actor, at=at, ip=ip, login_only=login_only)


def _round(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None,
    login_only: bool,
) -> Progress:
    """One round of :func:`advance` (the only one of this attempt under way in this process)."""
    if request.status == "sending" and at - request.updated_at > SENDING_TIMEOUT:
        with store.write() as db:  # the portal stopped while sending: let the user press the button again
            update_request(db, request.id, at, status="checked")
            request = get_request(db, request.id)
    try:
        _same_environment(store, request)
        if request.status == "submitted":
            request = _poll_auth(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
        if not login_only:
            request = _after_login(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
    except WizardError as exc:  # a step that cannot run (e.g. no office NIP, no tokens): stop with the reason
        with store.write() as db:
            request = get_request(db, request.id)  # keep what the step recorded before it stopped
            request = log_step(
                db,
                request,
                at=at,
                actor=actor,
                ip=ip,
                action="ksef.auth.failed",
                audit_details={"code": exc.code},
                changes={"status": "failed", "followup": with_error(request, exc)},
            )
        return Progress(request, request.explanation())
    except KsefError as exc:
        if exc.http_status is not None and 400 <= exc.http_status < 500 and exc.http_status != 429:
            with store.write() as db:  # KSeF refused: the request ends here
                request = get_request(db, request.id)
                request = log_step(
                    db,
                    request,
                    at=at,
                    actor=actor,
                    ip=ip,
                    action="ksef.auth.failed",
                    audit_details={"http_status": exc.http_status},
                    changes=failed_changes(request, exc),
                    operation=f"wizard.{request.status}",
                    ok=False,
                    reference=request.reference_number,
                    error=exc,
                )
        else:  # temporary: the next poll retries; recorded once per outage, not at every poll
            _record_temporary_failure(store, request, exc, actor=actor, at=at, ip=ip)
        # a refusal ended the request above; anything else is temporary and the next poll retries
        return Progress(request, request.explanation(), notice=exc)
    return Progress(request, request.explanation())


def _after_login(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """The round's step after the login: start or follow the grant (method 1) or the enrollments (method 2)."""
    if request.status == "authenticated":
        return _start_followup(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
    if request.status == "granting":
        return grant.poll_grant(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
    if request.status == "enrolling":
        return enroll.poll_enrollments(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
    return request


def _record_temporary_failure(
    store: Store, request: AuthRequest, exc: KsefError, *, actor: str, at: datetime, ip: str | None
) -> None:
    """Put a temporary KSeF failure (no answer, 5xx, 429) in the operations and audit logs (README: every KSeF
    operation is audited), once: while the client's last recorded KSeF call is this same failure, polling
    again writes nothing (no snapshot every second during an outage)."""
    operation = f"wizard.{request.status}"
    with store.connect() as db:
        last = db.execute(
            "SELECT operation, ok, http_status FROM ksef_operations WHERE client_id = ? ORDER BY id DESC LIMIT 1",
            [request.client_id],
        ).fetchone()
    if last is not None and tuple(last) == (operation, 0, exc.http_status):
        return
    with store.write() as db:
        log_step(
            db,
            request,
            at=at,
            actor=actor,
            ip=ip,
            action="ksef.call_failed",
            audit_details={"step": request.status, "http_status": exc.http_status, "message": exc.text.pl},
            operation=operation,
            ok=False,
            reference=request.reference_number,
            error=exc,
        )


def _same_environment(store: Store, request: AuthRequest) -> None:
    """Refuse to go on with an attempt started in another KSeF environment than the current one."""
    if request.final or request.status in ("issued", "checked") or request.ksef_environment is None:
        return
    with store.connect() as db:
        current = office.get_office(db).ksef_environment
    if request.ksef_environment != current:
        mismatch = office.environment_mismatch(
            stored=request.ksef_environment,
            current=current,
            what=Text("Ta próba logowania", "This login attempt"),
        )
        raise WizardError(mismatch.text, code=mismatch.code)


def _poll_auth(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Ask KSeF once for the authentication status; on success redeem and store the tokens."""
    status = ksef.auth_status(request.reference_number, request.authentication_token)
    code = status.status.code
    if code == 100:
        if request.status_code != 100:
            with store.write() as db:
                update_request(
                    db, request.id, at, status_code=100, status_description=status.status.description
                )
        return request
    explanation = explain_auth_status(code, status.status.description, status.status.details)
    if code != 200:
        with store.write() as db:
            return log_step(
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
        save_tokens(
            db,
            client_id=request.client_id,
            context_nip=client.nip,
            reference=request.reference_number,
            tokens=tokens,
            at=at,
        )
        return log_step(
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


def _start_followup(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """After login: grant the office's NIP (method 1) or start the certificate enrollments (method 2)."""
    ksef = client_with_tokens(store, request, ksef)
    if request.method == "grant":
        return grant.start_grant(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
    return enroll.start_enrollments(store, request, ksef=ksef, actor=actor, at=at, ip=ip)


def resume_unfinished(
    store: Store,
    *,
    ksef_for: Any,
    actor: str,
    at: datetime,
    rounds: int = 30,
    pause: float = 1.0,
    sleep: Any = time.sleep,
) -> list[int]:
    """After a restart: take up every attempt that was interrupted past its login; returns those touched.

    ``ksef_for()`` gives a KSeF client for the office's environment. Each attempt gets up to ``rounds`` rounds
    ``pause`` seconds apart, until it is final or waits for the user; what is still unfinished then (KSeF
    unreachable) is left for the next visit of its page.
    """
    with store.connect() as db:
        pending = enrollments.unfinished_requests(db)
    for request_id in pending:
        ksef = ksef_for()
        try:
            for i in range(rounds):
                try:
                    progress = advance(store, request_id=request_id, ksef=ksef, actor=actor,
                                       at=at + timedelta(seconds=pause * i))
                except PortalError:
                    break
                if progress.done or progress.request.awaiting_user:
                    break
                sleep(pause)
        finally:
            ksef.close()
    return pending
