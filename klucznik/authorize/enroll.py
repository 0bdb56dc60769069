"""Method 2: the portal makes two key pairs and enrolls the client's Authentication and Offline certificates.

The subject of each certificate request is exactly what KSeF dictates (``/certificates/enrollments/data``);
the certificates belong to whoever signed the login file. The private keys are generated here and stored,
encrypted with the whole database, next to the certificates KSeF issues for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from klucznik import certs
from klucznik.authorize.requests import CERTIFICATE_TYPES
from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import WizardError
from klucznik.authorize.requests import get_request
from klucznik.authorize.requests import log_step
from klucznik.authorize.requests import record_ksef
from klucznik.authorize.requests import update_request
from klucznik.authorize.session import client_with_tokens
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.records import clients
from klucznik.records import credentials
from klucznik.records import office
from klucznik.text import Text


def new_key() -> ec.EllipticCurvePrivateKey:
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


def start_enrollments(
    store: Store,
    request: AuthRequest,
    *,
    ksef: KsefClient,
    actor: str,
    at: datetime,
    ip: str | None,
) -> AuthRequest:
    """Check the limits and request the Authentication and Offline certificates with new keys."""
    with store.connect() as db:
        client_nip = clients.get_client(db, request.client_id).nip
    limits = ksef.limits()
    if not limits.can_request or min(limits.enrollment_remaining, limits.certificate_remaining) < len(
        CERTIFICATE_TYPES
    ):
        raise WizardError(
            Text(
                "KSeF nie pozwala tej firmie teraz wystąpić o dwa certyfikaty (wykorzystany limit wniosków lub "
                "certyfikatów). Unieważnij niepotrzebne certyfikaty KSeF firmy albo wybierz inną metodę.",
                "KSeF does not let this company request two certificates now (the limit of requests or "
                "certificates is used up). Revoke certificates the company no longer needs, or choose another method.",
            ),
            code="certificate_limit",
        )
    data = ksef.enrollment_data()
    subject = data.x509_name()
    enrollments: dict[str, dict[str, Any]] = {}
    for ksef_type, slot in CERTIFICATE_TYPES:
        key = new_key()
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
            record_ksef(
                db,
                client_id=request.client_id,
                at=at,
                operation="certificates.enroll",
                ok=True,
                reference=accepted.reference_number,
                details={"type": ksef_type},
            )
            update_request(db, request.id, at, followup={"stage": "operation", "enrollments": enrollments})
    with store.write() as db:
        return log_step(
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


def poll_enrollments(
    store: Store, request: AuthRequest, *, ksef: KsefClient, actor: str, at: datetime, ip: str | None
) -> AuthRequest:
    """Ask KSeF for each enrollment's status; once both are issued, store them as credentials."""
    ksef = client_with_tokens(store, request, ksef)
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
                return log_step(
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
                update_request(
                    db, request.id, at, followup={"stage": "operation", "enrollments": enrollments}
                )
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
                info=certs.summarise(cert),
                ksef_type=ksef_type,
                private_key=item["key"].encode("ascii"),
                key_password=None,
                actor=actor,
                at=at,
                ksef_environment=request.ksef_environment or office.get_office(db).ksef_environment,
            )
        clients.set_auth_method(db, request.client_id, "portal_certs", at=at)
        followup = {
            "stage": "operation",
            "enrollments": {t: {k: v for k, v in e.items() if k != "key"} for t, e in enrollments.items()},
        }  # keys now in credentials
        return log_step(
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
