"""The ``credentials`` table: how a client's certificate + private key pairs are stored.

Credentials arrive two ways — uploaded by the user (method 3, :mod:`klucznik.authorize.upload`) and generated
by the portal through KSeF enrollment (method 2, :mod:`klucznik.authorize.enroll`) — but they must be stored the
same way: the certificate as DER, the key bytes exactly as they came, the summary columns the pages and
the backup check read, and the rule that older active credentials become ``superseded`` (never deleted).
Keeping that in one place means a new column or a change of the rule cannot reach only one of the two
paths. Every function runs inside the caller's ``store.write()`` transaction and takes an explicit ``at``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlite_utils import Database

from klucznik.clock import iso


class CertificateFacts(Protocol):
    """What a credentials row keeps of a certificate (:class:`klucznik.certs.model.CertificateInfo` has it)."""

    der: bytes
    serial: str
    subject: str
    issuer: str
    fingerprint: str
    not_before: datetime
    not_after: datetime


def supersede_active(
    db: Database, client_id: int, *, at: datetime, slots: tuple[str, ...] = ("online", "offline")
) -> int:
    """Mark the client's active credentials of ``slots`` ``superseded`` as of ``at``; returns how many."""
    marks = ", ".join("?" for _ in slots)
    return db.execute(
        "UPDATE credentials SET status = 'superseded', superseded_at = ? WHERE client_id = ? AND status = 'active' "
        f"AND slot IN ({marks})",
        [iso(at), client_id, *slots],
    ).rowcount


def active_slots(db: Database, client_id: int) -> tuple[str, ...]:
    """The slots (``online``, ``offline``) in which the client has an active credential."""
    rows = db.execute(
        "SELECT DISTINCT slot FROM credentials WHERE client_id = ? AND status = 'active'", [client_id]
    ).fetchall()
    found = {row[0] for row in rows}
    return tuple(slot for slot in ("online", "offline") if slot in found)


def add_credential(
    db: Database,
    *,
    client_id: int,
    slot: str,
    origin: str,
    info: CertificateFacts,
    ksef_type: str | None,
    private_key: bytes,
    key_password: str | None,
    actor: str | None,
    at: datetime,
    ksef_environment: str,
) -> int:
    """Insert one active ``credentials`` row (certificate DER + key bytes as given) and return its id.

    ``ksef_environment`` is the KSeF environment the certificate belongs to (it is never used in another).
    """
    return (
        db["credentials"]
        .insert(
            {
                "client_id": client_id,
                "slot": slot,
                "origin": origin,
                "certificate": info.der,
                "private_key": private_key,
                "key_password": key_password,
                "ksef_type": ksef_type,
                "serial": info.serial,
                "subject": info.subject,
                "issuer": info.issuer,
                "fingerprint": info.fingerprint,
                "not_before": iso(info.not_before),
                "not_after": iso(info.not_after),
                "status": "active",
                "created_at": iso(at),
                "created_by": actor,
                "ksef_environment": ksef_environment,
            }
        )
        .last_pk
    )


#: What the client page shows of each credential (never the key or its password).
SUMMARY_COLUMNS = (
    "id, slot, origin, ksef_type, serial, subject, issuer, not_before, not_after, status, created_at, "
    "created_by, superseded_at, ksef_environment, old_nip"
)


def summaries(db: Database, client_id: int) -> list[dict]:
    """The client's credentials without secrets: active ones first, then the history, newest first."""
    return list(
        db.query(
            f"SELECT {SUMMARY_COLUMNS} FROM credentials WHERE client_id = ? "
            "ORDER BY status = 'active' DESC, id DESC",
            [client_id],
        )
    )
