"""Method 1: the client grants the office's NIP InvoiceRead and InvoiceWrite, in the client's KSeF session."""

from __future__ import annotations

from datetime import datetime

from klucznik.authorize.grant_check import self_grant_error
from klucznik.authorize.grant_check import signer_rights
from klucznik.authorize.grant_check import verify_grant
from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import WizardError
from klucznik.authorize.requests import log_step
from klucznik.authorize.session import client_with_tokens
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.errors import KsefError
from klucznik.records import clients
from klucznik.records import office
from klucznik.text import Text


def start_grant(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Ask KSeF to grant the office's NIP the invoice permissions in the client's context."""
    with store.connect() as db:
        profile = office.get_office(db)
        client = clients.get_client(db, request.client_id)
    if not profile.nip:
        raise WizardError(
            Text(
                "Uzupełnij NIP biura w ustawieniach biura, aby nadać mu uprawnienia.",
                "Fill in the office's NIP in the office settings so it can be granted permissions.",
            ),
            code="office_nip_missing",
        )
    if profile.nip == client.nip:
        raise WizardError(self_grant_error(client.nip).text, code="self_grant")
    rights = (request.followup or {}).get("signer_rights")
    if rights is None:  # read once, before the grant: who is the signer for KSeF?
        found = signer_rights(ksef, client_nip=client.nip, signer=request.signer)
        rights = found.as_dict()
        with store.write() as db:
            request = log_step(
                db,
                request,
                at=at,
                actor=actor,
                ip=ip,
                action="ksef.permissions.signer",
                audit_details={"owner": found.owner, "can_grant": found.can_grant,
                               "permissions": list(found.permissions)},
                changes={"followup": {**(request.followup or {}), "signer_rights": rights}},
                operation="permissions.query_personal",
                details={"can_grant": found.can_grant},
            )
    if rights["can_grant"] == "no":
        raise WizardError(Text(rights["pl"], rights["en"]), code="signer_cannot_grant")
    accepted = ksef.grant_entity(
        nip=profile.nip,
        full_name=full_name(profile.name, profile.nip),
        description=f"Klucznik: biuro rachunkowe {profile.nip} dla {client.nip}",
        permissions=("InvoiceRead", "InvoiceWrite"),
    )
    with store.write() as db:
        return log_step(
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
                    **(request.followup or {}),
                    "stage": "operation",
                    "grant_reference": accepted.reference_number,
                    "office_nip": profile.nip,
                },
            },
            operation="permissions.grant_entity",
            reference=accepted.reference_number,
            details={"office_nip": profile.nip, "permissions": ["InvoiceRead", "InvoiceWrite"]},
        )


def full_name(name: str, nip: str) -> str:
    """The office's name as KSeF wants it for a grant (at least five characters)."""
    text = (name or f"Biuro rachunkowe {nip}").strip()
    return text if len(text) >= 5 else f"{text} ({nip})"


def poll_grant(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Ask KSeF once for the grant operation's status and store a final answer."""
    ksef = client_with_tokens(store, request, ksef)
    reference = request.followup["grant_reference"]
    status = ksef.operation_status(reference).status
    if status.code == 100:
        return request
    with store.write() as db:
        ok = status.code == 200
        if ok and request.method == "grant":
            clients.set_auth_method(db, request.client_id, "grant", at=at)
        request = log_step(
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
    if ok:  # prove it: the office logs in in the client's context and reads what it received
        verify_grant(store, client_id=request.client_id, ksef=ksef, actor=actor, ip=ip, at=at)
    return request


def grant_in_session(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None,
    poll_interval: float = 0.5, poll_timeout: float = 60.0,
) -> AuthRequest:
    """Method 2's option: grant the office in the same client session, waiting for KSeF's answer.

    The outcome is recorded in the request's ``followup["grant"]``; a refusal does not undo the certificates.
    A temporary failure (no answer, 5xx, 429) is raised, and the next round tries again.
    """
    with store.connect() as db:
        profile = office.get_office(db)
        client = clients.get_client(db, request.client_id)
    try:
        if not profile.nip or profile.nip == client.nip:
            raise WizardError(self_grant_error(client.nip).text if profile.nip else Text(
                "Uzupełnij NIP biura w ustawieniach biura, aby nadać mu uprawnienia.",
                "Fill in the office's NIP in the office settings so it can be granted permissions.",
            ), code="office_nip_missing")
        accepted = ksef.grant_entity(
            nip=profile.nip,
            full_name=full_name(profile.name, profile.nip),
            description=f"Klucznik: biuro rachunkowe {profile.nip} dla {client.nip}",
            permissions=("InvoiceRead", "InvoiceWrite"),
        )
        ksef.wait_for_operation(accepted.reference_number, interval=poll_interval, timeout=poll_timeout)
        outcome = {"ok": True, "reference": accepted.reference_number}
    except KsefError as exc:
        if exc.http_status is None or exc.http_status >= 500 or exc.http_status == 429:
            raise
        outcome = {"ok": False, "pl": exc.text.pl, "en": exc.text.en}
    except WizardError as exc:
        outcome = {"ok": False, "pl": exc.text.pl, "en": exc.text.en}
    with store.write() as db:
        return log_step(
            db, request, at=at, actor=actor, ip=ip,
            action="ksef.permissions.granted" if outcome["ok"] else "ksef.permissions.failed",
            audit_details={"office_nip": profile.nip, "with_certificates": True, "ok": outcome["ok"]},
            changes={"followup": {**(request.followup or {}), "grant": outcome}},
            operation="permissions.grant_entity", ok=outcome["ok"], reference=outcome.get("reference"),
        )
