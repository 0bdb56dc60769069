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
    }).last_pk
