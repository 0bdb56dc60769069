"""Rows for the status-page tests: clients with stored credentials at chosen dates (no KSeF needed)."""

from __future__ import annotations

from datetime import datetime

from klucznik import clock
from klucznik.records import clients


def add_client(db, nip: str, name: str, *, method: str | None = None, at: datetime) -> int:
    client = clients.create_client(db, clients.validate(nip=nip, name=name), actor="admin", at=at)
    if method:
        clients.set_auth_method(db, client.id, method, at=at)
    return client.id


def add_credential(db, client_id: int, *, slot: str, serial: str, not_before: datetime, not_after: datetime,
                   status: str = "active", subject: str = "CN=Firma,2.5.4.97=VATPL-5261040828") -> int:
    return db["credentials"].insert({
        "client_id": client_id, "slot": slot, "origin": "generated", "certificate": b"DER",
        "private_key": b"KEY", "key_password": None,
        "ksef_type": "Authentication" if slot == "online" else "Offline", "serial": serial, "subject": subject,
        "issuer": "CN=TEST CCK KSeF", "fingerprint": serial, "not_before": clock.iso(not_before),
        "not_after": clock.iso(not_after), "status": status, "created_at": clock.iso(not_before),
        "ksef_environment": "test",
    }).last_pk


def enroll_in_sandbox(server, store, client_id: int, nip: str, *, at: datetime, method: str = "portal_certs"):
    """Method 2 the short way: log in as the company (its sandbox seal), enroll an Authentication and an Offline
    certificate with fresh keys, store both as the client's active credentials. Returns ``{type: serial}``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from klucznik import certs
    from klucznik.authorize.enroll import build_csr
    from klucznik.authorize.enroll import new_key
    from klucznik.records import credentials

    ksef = server.login(nip)
    subject = ksef.enrollment_data().x509_name()
    made = {}
    for ksef_type in ("Authentication", "Offline"):
        key = new_key()
        accepted = ksef.enroll(name=f"Test {ksef_type}", certificate_type=ksef_type, csr_der=build_csr(subject, key))
        serial = ksef.wait_for_enrollment(accepted.reference_number, interval=0.0).certificate_serial_number
        made[ksef_type] = (serial, key)
    retrieved = {c.serial_number: c for c in ksef.retrieve([s for s, _ in made.values()])}
    ksef.revoke_current()
    with store.write() as db:
        clients.set_auth_method(db, client_id, method, at=at)
        for ksef_type, (serial, key) in made.items():
            cert = x509.load_der_x509_certificate(retrieved[serial].certificate_der)
            credentials.add_credential(
                db, client_id=client_id, slot="online" if ksef_type == "Authentication" else "offline",
                origin="generated", info=certs.summarise(cert), ksef_type=ksef_type,
                private_key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()),
                key_password=None, ksef_environment="sandbox", actor="admin", at=at)
    return {t: s for t, (s, _) in made.items()}
