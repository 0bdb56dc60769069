"""Method 2: the portal makes two key pairs and enrolls the client's Authentication and Offline certificates.

After the client's login the portal first shows what KSeF allows (:func:`review`: the certificate limits — it
stops with a clear message when none are left —, the certificates the company already has, and whether the
signer is a person, whose certificates would identify that person); nothing is requested until the user
confirms (:func:`confirm`), choosing EC P-256 (default) or RSA 2048 keys and optionally the office's grant in
the same session.

Then it is crash-safe (docs/METHODS.md): each key and its CSR — with exactly the
subject KSeF dictates (``/certificates/enrollments/data``) — is written to ``enrollments`` before the request
is sent, the moment of sending before it goes out, and every answer as it comes back. Any step interrupted by
a kill, a lost connection, a 5xx or a 429 is taken up again by the next :func:`poll_enrollments` (the next
visit of the page, or :func:`klucznik.authorize.flow.resume_unfinished` after a restart): a request whose answer was lost is found by
its unique name among the company's certificates, or sent again with the same key; an issued certificate is
retrieved, checked against its key (public key and keyUsage) and stored with it. Finally the Authentication
certificate is proven by logging in with it, and the client's session is ended.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from klucznik import certs
from klucznik.authorize import grant
from klucznik.authorize.certificate_login import login_with_certificate
from klucznik.authorize.requests import CERTIFICATE_TYPES
from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import WizardError
from klucznik.authorize.requests import get_request
from klucznik.authorize.requests import log_step
from klucznik.authorize.requests import update_request
from klucznik.authorize.session import client_with_tokens
from klucznik.certs.formats import spki
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.errors import KsefError
from klucznik.records import clients
from klucznik.records import credentials
from klucznik.records import enrollments
from klucznik.records import office
from klucznik.records import tokens as token_records
from klucznik.text import Text

KEY_TYPES = ("ec", "rsa")
#: A request whose answer was lost and that KSeF does not list is sent again (same key) after this long.
RESEND_AFTER = timedelta(minutes=1)
#: How long the proof login waits between status questions.
PROOF_POLL_INTERVAL = 0.5


def new_key(kind: str = "ec") -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """A fresh private key for one KSeF certificate: EC P-256 (default) or RSA 2048."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(subject: x509.Name, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """A PKCS#10 request (DER) with exactly ``subject`` (KSeF's enrollment data), signed with SHA-256."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _limit_error(limits: Any) -> WizardError:
    return WizardError(
        Text(
            "KSeF nie pozwala tej firmie teraz wystąpić o dwa certyfikaty (wyczerpany limit): zostało wniosków "
            f"{limits.enrollment_remaining} z {limits.enrollment_limit}, certyfikatów {limits.certificate_remaining} "
            f"z {limits.certificate_limit}. Unieważnij w Aplikacji Podatnika KSeF certyfikaty, których firma już nie "
            "używa, albo wybierz metodę 1 lub 3.",
            "KSeF does not let this company request two certificates now (limit reached): requests left "
            f"{limits.enrollment_remaining} of {limits.enrollment_limit}, certificates {limits.certificate_remaining} "
            f"of {limits.certificate_limit}. Revoke certificates the company no longer uses in the KSeF taxpayer "
            "application, or choose method 1 or 3.",
        ),
        code="certificate_limit",
    )


# -- before anything is requested ----------------------------------------------------------------------------


def review(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Read the limits and the company's certificates; stop when no two certificates are left; else wait."""
    limits = ksef.limits()
    if not limits.can_request or min(limits.enrollment_remaining, limits.certificate_remaining) < len(
        CERTIFICATE_TYPES
    ):
        raise _limit_error(limits)
    page = ksef.query_certificates(status="Active", page_size=50)
    existing = [
        {
            "serial": c.serial_number,
            "type": c.certificate_type,
            "name": c.name,
            "valid_to": c.valid_to.strftime("%Y-%m-%d"),
        }
        for c in page.certificates
    ]
    signer = request.signer or {}
    person = bool(signer.get("pesel_masked")) and signer.get("kind") != "seal"
    details = {
        "enrollment_remaining": limits.enrollment_remaining,
        "enrollment_limit": limits.enrollment_limit,
        "certificate_remaining": limits.certificate_remaining,
        "certificate_limit": limits.certificate_limit,
        "existing": existing,
        "existing_more": page.has_more,
        "person": person,
        "signer_name": signer.get("name"),
        "pesel_masked": signer.get("pesel_masked"),
    }
    with store.write() as db:
        return log_step(
            db,
            request,
            at=at,
            actor=actor,
            ip=ip,
            action="ksef.certificates.review",
            audit_details={"existing": len(existing), "person": person,
                           "certificate_remaining": limits.certificate_remaining},
            changes={"followup": {**(request.followup or {}), "stage": "review", "awaiting": True,
                                  "review": details}},
            operation="certificates.limits",
            details={"enrollment_remaining": limits.enrollment_remaining,
                     "certificate_remaining": limits.certificate_remaining},
        )


def confirm(
    store: Store,
    *,
    request_id: int,
    client_id: int | None = None,
    key_type: str = "ec",
    also_grant: bool = False,
    actor: str,
    at: datetime,
    ip: str | None = None,
) -> AuthRequest:
    """The user's go-ahead after :func:`review`: the key type and whether to grant the office as well."""
    if key_type not in KEY_TYPES:
        raise WizardError(Text("Nieznany rodzaj klucza.", "Unknown key type."), code="key_type")
    with store.write() as db:
        request = get_request(db, request_id, client_id=client_id)
        followup = request.followup or {}
        if request.method != "portal_certs" or request.status != "authenticated" or not followup.get("awaiting"):
            raise WizardError(
                Text(
                    "Ta próba nie czeka na potwierdzenie (mogła już zostać potwierdzona w innej karcie).",
                    "This attempt is not waiting for a confirmation (it may have been confirmed in another tab).",
                ),
                code="wrong_state",
            )
        return log_step(
            db,
            request,
            at=at,
            actor=actor,
            ip=ip,
            action="ksef.certificates.confirm",
            audit_details={"key_type": key_type, "also_grant": also_grant},
            changes={"followup": {**followup, "awaiting": False, "stage": "confirmed",
                                  "options": {"key_type": key_type, "also_grant": also_grant}}},
        )


# -- the requests --------------------------------------------------------------------------------------------


def start_enrollments(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """After the login: review first; once confirmed, prepare both keys (stored) and send the requests."""
    followup = request.followup or {}
    if "review" not in followup:
        return review(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
    if followup.get("awaiting"):
        return request  # waits for the user's confirmation
    with store.connect() as db:
        client = clients.get_client(db, request.client_id)
        prepared = enrollments.for_request(db, request.id)
    if not prepared:
        subject = ksef.enrollment_data().x509_name()
        key_type = (followup.get("options") or {}).get("key_type", "ec")
        environment = request.ksef_environment
        with store.write() as db:  # the keys exist in the database before any request leaves
            environment = environment or office.get_office(db).ksef_environment
            for ksef_type, slot in CERTIFICATE_TYPES:
                key = new_key(key_type)
                enrollments.prepare(
                    db,
                    auth_request_id=request.id,
                    client_id=request.client_id,
                    ksef_environment=environment,
                    certificate_type=ksef_type,
                    slot=slot,
                    certificate_name=f"Klucznik {ksef_type} {client.nip} {secrets.token_hex(5)}",
                    key_algorithm="RSA 2048" if key_type == "rsa" else "EC P-256",
                    private_key=_pem(key),
                    csr=build_csr(subject, key),
                    at=at,
                )
            request = log_step(
                db,
                request,
                at=at,
                actor=actor,
                ip=ip,
                action="ksef.certificates.prepare",
                audit_details={"key_type": key_type},
                changes={"status": "enrolling", "status_code": 100, "status_description": None,
                         "followup": {**followup, "stage": "operation"}},
            )
    return poll_enrollments(store, request, ksef=ksef, actor=actor, at=at, ip=ip)


def _send(store: Store, request: AuthRequest, row: enrollments.Enrollment, *, ksef: KsefClient, at: datetime) -> None:
    """Send one prepared request: the moment is stored first, the reference as soon as it comes back."""
    with store.write() as db:
        if not enrollments.claim_for_sending(db, row.id, at=at):
            return  # another tab or the resumption after a restart is sending it
    accepted = ksef.enroll(name=row.certificate_name, certificate_type=row.certificate_type, csr_der=row.csr)
    with store.write() as db:
        enrollments.update(db, row.id, at=at, status="accepted", reference_number=accepted.reference_number)
        log_step(
            db, request, at=at, actor="system", ip=None, action="ksef.certificates.enroll",
            audit_details={"type": row.certificate_type, "reference": accepted.reference_number},
            operation="certificates.enroll", reference=accepted.reference_number,
            details={"type": row.certificate_type},
        )


def _recover_sent(
    store: Store, row: enrollments.Enrollment, *, ksef: KsefClient, at: datetime
) -> None:
    """A request sent without a stored answer: find it by its name, or send it again (same key) later."""
    found = [c for c in ksef.query_certificates(name=row.certificate_name, page_size=10).certificates
             if c.name == row.certificate_name]
    if found:
        with store.write() as db:
            enrollments.update(db, row.id, at=at, status="issued", serial=found[0].serial_number)
        return
    if row.sent_at is None or at - row.sent_at >= RESEND_AFTER:
        with store.write() as db:
            enrollments.update(db, row.id, at=at, status="prepared")


def _retrieve(store: Store, row: enrollments.Enrollment, *, ksef: KsefClient, at: datetime) -> str | None:
    """Download an issued certificate and check it against its key; the reason when it does not fit."""
    (item,) = [c for c in ksef.retrieve([row.serial]) if c.serial_number == row.serial]
    cert = x509.load_der_x509_certificate(item.certificate_der)
    key = serialization.load_pem_private_key(row.private_key, password=None)
    problem = None
    if spki(cert.public_key()) != spki(key.public_key()):
        problem = "the certificate's public key is not the request's key"
    elif certs.summarise(cert).ksef_type != row.certificate_type:
        problem = f"keyUsage says {certs.summarise(cert).ksef_type}, not {row.certificate_type}"
    with store.write() as db:
        if problem:
            enrollments.update(db, row.id, at=at, status="failed", error=problem)
        else:
            enrollments.update(db, row.id, at=at, status="retrieved", certificate=item.certificate_der)
    return problem


def poll_enrollments(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """One round: send what is prepared, recover what was sent, follow, retrieve, store, prove, finish."""
    with store.connect() as db:
        rows = enrollments.for_request(db, request.id)
    if any(r.status != "stored" for r in rows):
        ksef = client_with_tokens(store, request, ksef)
    for row in rows:
        if row.status == "prepared":
            _send(store, request, row, ksef=ksef, at=at)
        elif row.status == "sent":
            _recover_sent(store, row, ksef=ksef, at=at)
        elif row.status == "accepted":
            status = ksef.enrollment_status(row.reference_number)
            if status.status.code == 100:
                continue
            if status.status.code != 200 or not status.certificate_serial_number:
                detail = "; ".join((status.status.description, *status.status.details))
                with store.write() as db:
                    enrollments.update(db, row.id, at=at, status="failed", error=detail)
                    return log_step(
                        db, request, at=at, actor=actor, ip=ip, action="ksef.certificates.failed",
                        audit_details={"type": row.certificate_type, "code": status.status.code},
                        changes={"status": "failed", "status_code": status.status.code,
                                 "status_description": detail},
                        operation="certificates.enrollment_status", ok=False, reference=row.reference_number,
                        ksef_code=status.status.code, description=status.status.description,
                    )
            with store.write() as db:
                enrollments.update(db, row.id, at=at, status="issued", serial=status.certificate_serial_number)
    with store.connect() as db:
        rows = enrollments.for_request(db, request.id)
    for row in rows:
        if row.status == "issued":
            problem = _retrieve(store, row, ksef=ksef, at=at)
            if problem:
                with store.write() as db:
                    return log_step(
                        db, request, at=at, actor=actor, ip=ip, action="ksef.certificates.failed",
                        audit_details={"type": row.certificate_type, "problem": problem},
                        changes={"status": "failed", "status_description": problem,
                                 "followup": {**(request.followup or {}), "error": {
                                     "pl": "KSeF wydał certyfikat, który nie pasuje do klucza przygotowanego przez "
                                           "portal. Nic nie zostało zapisane jako dane dostępowe; spróbuj ponownie.",
                                     "en": "KSeF issued a certificate that does not match the key the portal "
                                           "prepared. Nothing was stored as credentials; try again.",
                                     "code": "certificate_mismatch"}}},
                    )
    with store.connect() as db:
        rows = enrollments.for_request(db, request.id)
        request = get_request(db, request.id)
    if any(r.status == "failed" for r in rows) or not rows:
        return request
    if all(r.status == "retrieved" for r in rows):
        request = _store_credentials(store, request, rows, actor=actor, at=at, ip=ip)
    if all(r.status in ("retrieved", "stored") for r in rows):
        return _finish(store, request, ksef=ksef, actor=actor, at=at, ip=ip)
    return request


def _store_credentials(
    store: Store, request: AuthRequest, rows: list[enrollments.Enrollment], *, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Both certificates with their keys as the client's credentials, in one transaction."""
    with store.write() as db:
        superseded = credentials.supersede_active(db, request.client_id, at=at)
        stored = {}
        for row in rows:
            cert = x509.load_der_x509_certificate(row.certificate)
            credential_id = credentials.add_credential(
                db,
                client_id=request.client_id,
                slot=row.slot,
                origin="generated",
                info=certs.summarise(cert),
                ksef_type=row.certificate_type,
                private_key=row.private_key,
                key_password=None,
                actor=actor,
                at=at,
                ksef_environment=row.ksef_environment,
            )
            enrollments.update(db, row.id, at=at, status="stored", credential_id=credential_id)
            stored[row.certificate_type] = credential_id
        clients.set_auth_method(db, request.client_id, "portal_certs", at=at)
        followup = {
            **(request.followup or {}),
            "stage": "finishing",
            "enrollments": {r.certificate_type: {"slot": r.slot, "reference": r.reference_number, "serial": r.serial}
                            for r in rows},
        }
        return log_step(
            db, request, at=at, actor=actor, ip=ip, action="credentials.generate",
            audit_details={"credential_ids": stored, "superseded": superseded,
                           "serials": {r.certificate_type: r.serial for r in rows}},
            changes={"followup": followup},
            operation="certificates.retrieve", details={"serials": [r.serial for r in rows]},
        )


def _finish(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """The optional grant, the end of the client's session, the proof login; each step recorded when done."""
    followup = dict(request.followup or {})
    options = followup.get("options") or {}
    if options.get("also_grant") and "grant" not in followup:
        request = grant.grant_in_session(store, request, ksef=client_with_tokens(store, request, ksef),
                                         actor=actor, at=at, ip=ip)
        followup = dict(request.followup or {})
    if not followup.get("client_session_ended"):
        ended = True
        try:
            client_with_tokens(store, request, ksef).revoke_current()
        except (KsefError, WizardError) as exc:
            if isinstance(exc, KsefError) and (exc.http_status is None or exc.http_status >= 500
                                               or exc.http_status == 429):
                raise  # temporary: the next round ends it
            ended = False
        with store.write() as db:
            token_records.end_active(db, request.client_id)
            followup["client_session_ended"] = ended
            update_request(db, request.id, at, followup=followup)
            request = get_request(db, request.id)
    if "proof" not in followup:
        with store.connect() as db:
            client = clients.get_client(db, request.client_id)
            (row,) = [r for r in enrollments.for_request(db, request.id) if r.certificate_type == "Authentication"]
        ksef.tokens = None
        try:
            login = login_with_certificate(
                ksef, certificate_der=row.certificate, private_key=row.private_key, key_password=None,
                context_nip=client.nip, at=at, poll_interval=PROOF_POLL_INTERVAL,
            )
            ksef.revoke_current()
            proof = {"ok": True, "reference": login.reference_number}
        except KsefError as exc:
            if exc.http_status is None or exc.http_status >= 500 or exc.http_status == 429:
                raise
            proof = {"ok": False, "pl": exc.text.pl, "en": exc.text.en}
        followup["proof"] = proof
        with store.write() as db:
            return log_step(
                db, request, at=at, actor=actor, ip=ip,
                action="ksef.certificates.proven" if proof["ok"] else "ksef.certificates.proof_failed",
                audit_details={"proof": {k: v for k, v in proof.items() if k in ("ok", "reference")}},
                changes={"status": "done", "status_code": 200, "status_description": None, "followup": followup},
                operation="auth.certificate_login", ok=proof["ok"], reference=proof.get("reference"),
            )
    return request
