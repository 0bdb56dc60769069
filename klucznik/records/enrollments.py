"""The ``enrollments`` table: one row per certificate requested in method 2, written before the request is sent.

A row's life: ``prepared`` (key and CSR stored) → ``sent`` (``sent_at`` written just before the request goes
out) → ``accepted`` (KSeF's reference number) → ``issued`` (the serial) → ``retrieved`` (the certificate,
checked against the key) → ``stored`` (a ``credentials`` row); or ``failed``. The private key is in the row from
the first moment, so whatever KSeF issues for it always finds its key. Every function runs inside the
caller's transaction and takes an explicit ``at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from klucznik import clock

STATUSES = ("prepared", "sent", "accepted", "issued", "retrieved", "stored", "failed")


@dataclass(frozen=True)
class Enrollment:
    """One certificate request of method 2."""

    id: int
    auth_request_id: int
    client_id: int
    ksef_environment: str
    certificate_type: str
    slot: str
    certificate_name: str
    key_algorithm: str
    private_key: bytes
    csr: bytes
    status: str
    reference_number: str | None
    serial: str | None
    certificate: bytes | None
    credential_id: int | None
    error: str | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    "id, auth_request_id, client_id, ksef_environment, certificate_type, slot, certificate_name, key_algorithm, "
    "private_key, csr, status, reference_number, serial, certificate, credential_id, error, sent_at, created_at, "
    "updated_at"
)


def _row(row: tuple) -> Enrollment:
    v = list(row)
    return Enrollment(
        id=v[0], auth_request_id=v[1], client_id=v[2], ksef_environment=v[3], certificate_type=v[4], slot=v[5],
        certificate_name=v[6], key_algorithm=v[7], private_key=bytes(v[8]), csr=bytes(v[9]), status=v[10],
        reference_number=v[11], serial=v[12], certificate=bytes(v[13]) if v[13] is not None else None,
        credential_id=v[14], error=v[15], sent_at=clock.parse_optional(v[16]), created_at=clock.parse(v[17]),
        updated_at=clock.parse(v[18]),
    )


def for_request(db: Database, auth_request_id: int) -> list[Enrollment]:
    """The request's certificate requests, in the order they were prepared."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM enrollments WHERE auth_request_id = ? ORDER BY id",
                      [auth_request_id]).fetchall()
    return [_row(r) for r in rows]


def get(db: Database, enrollment_id: int) -> Enrollment:
    """One row by id."""
    return _row(db.execute(f"SELECT {_COLUMNS} FROM enrollments WHERE id = ?", [enrollment_id]).fetchone())


def prepare(
    db: Database,
    *,
    auth_request_id: int,
    client_id: int,
    ksef_environment: str,
    certificate_type: str,
    slot: str,
    certificate_name: str,
    key_algorithm: str,
    private_key: bytes,
    csr: bytes,
    at: datetime,
) -> int:
    """Store a new key and its CSR (status ``prepared``) before anything is sent; returns the row id."""
    return (
        db["enrollments"]
        .insert(
            {
                "auth_request_id": auth_request_id,
                "client_id": client_id,
                "ksef_environment": ksef_environment,
                "certificate_type": certificate_type,
                "slot": slot,
                "certificate_name": certificate_name,
                "key_algorithm": key_algorithm,
                "private_key": private_key,
                "csr": csr,
                "status": "prepared",
                "created_at": clock.iso(at),
                "updated_at": clock.iso(at),
            }
        )
        .last_pk
    )


def update(db: Database, enrollment_id: int, *, at: datetime, **values: Any) -> None:
    """Change a row's columns (``status``, ``reference_number``, ``serial``, ...) as of ``at``."""
    if "status" in values and values["status"] not in STATUSES:
        raise ValueError(f"unknown enrollment status {values['status']!r}")
    if isinstance(values.get("sent_at"), datetime):
        values["sent_at"] = clock.iso(values["sent_at"])
    values["updated_at"] = clock.iso(at)
    db["enrollments"].update(enrollment_id, values)


def claim_for_sending(db: Database, enrollment_id: int, *, at: datetime) -> bool:
    """``prepared`` → ``sent`` (with ``sent_at``) only if still prepared: one process sends a request, never two."""
    return bool(
        db.execute(
            "UPDATE enrollments SET status = 'sent', sent_at = ?, updated_at = ? WHERE id = ? AND status = 'prepared'",
            [clock.iso(at), clock.iso(at), enrollment_id],
        ).rowcount
    )


def unfinished_requests(db: Database) -> list[int]:
    """Login attempts past the login whose work has not finished (to resume them after a restart)."""
    return [
        r[0]
        for r in db.execute(
            "SELECT id FROM auth_requests WHERE status IN ('authenticated', 'granting', 'enrolling') ORDER BY id"
        ).fetchall()
    ]
