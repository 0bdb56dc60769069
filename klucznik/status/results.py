"""Live-check outcomes in the database: one ``status_checks`` row each, written in batches.

Every write of the instance ends with a checked snapshot, so a check of a thousand clients must not cost a
thousand writes: :func:`record_outcomes` stores any number of outcomes in one transaction (history row,
each client's ``status_latest``, and the ``ksef_operations`` row the client's "KSeF errors" list reads).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from klucznik import clock
from klucznik.text import Text

#: ``grant_state`` of a method-1 check: the office's permissions still stand, or are gone.
GRANT_STATES = ("granted", "missing")


@dataclass(frozen=True)
class CheckOutcome:
    """What one live check of one client found.

    ``certificates`` maps a serial to ``{"type", "status", "valid_to"}`` (KSeF's status from
    ``/certificates/query``; ``offline_signature`` true/false for the Offline certificate's KOD II test).
    A failed check carries KSeF's HTTP status, code and own words, and the plain-words ``message``.
    """

    client_id: int
    at: datetime
    ok: bool
    method: str | None = None
    grant_state: str | None = None
    certificates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limits: Mapping[str, Any] | None = None
    error_code: str | None = None
    http_status: int | None = None
    ksef_code: int | None = None
    ksef_text: str = ""
    message: Text | None = None
    retry_after: float | None = None


def record_outcomes(db: Database, outcomes: Iterable[CheckOutcome], *, job_id: int | None = None) -> int:
    """Store ``outcomes`` inside the caller's ``store.write()``; returns how many were stored.

    The KSeF operation log (the client's "KSeF errors") gets a row for every check that reached a KSeF answer or
    failed talking to KSeF; a finding of the check itself (a revoked certificate, a withdrawn grant) stays in the
    check's history and its message.
    """
    count = 0
    for outcome in outcomes:
        check_id = (
            db["status_checks"]
            .insert(
                {
                    "client_id": outcome.client_id,
                    "job_id": job_id,
                    "at": clock.iso(outcome.at),
                    "ok": int(outcome.ok),
                    "method": outcome.method,
                    "grant_state": outcome.grant_state,
                    "certificates": json.dumps(outcome.certificates, ensure_ascii=False, sort_keys=True),
                    "limits": json.dumps(outcome.limits) if outcome.limits is not None else None,
                    "error_code": outcome.error_code,
                    "http_status": outcome.http_status,
                    "ksef_code": outcome.ksef_code,
                    "ksef_text": outcome.ksef_text,
                    "message_pl": outcome.message.pl if outcome.message else "",
                    "message_en": outcome.message.en if outcome.message else "",
                }
            )
            .last_pk
        )
        db.execute(
            "INSERT INTO status_latest (client_id, check_id, at, ok, grant_state) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (client_id) DO UPDATE SET check_id = excluded.check_id, at = excluded.at, "
            "ok = excluded.ok, grant_state = excluded.grant_state",
            [outcome.client_id, check_id, clock.iso(outcome.at), int(outcome.ok), outcome.grant_state],
        )
        if not outcome.ok and not (outcome.error_code or "").startswith("ksef"):
            count += 1  # not an error KSeF answered (a revoked certificate, no office login, ...): history only
            continue
        db["ksef_operations"].insert(
            {
                "client_id": outcome.client_id,
                "at": clock.iso(outcome.at),
                "operation": "status.check",
                "reference_number": None,
                "ok": int(outcome.ok),
                "http_status": outcome.http_status,
                "ksef_code": outcome.ksef_code,
                "description": outcome.ksef_text,
                "details": json.dumps(
                    {"check_id": check_id, "error_code": outcome.error_code, **({"job_id": job_id} if job_id else {})},
                    ensure_ascii=False,
                ),
            }
        )
        count += 1
    return count


@dataclass(frozen=True)
class StoredCheck:
    """One stored live check, as the pages read it."""

    id: int
    client_id: int
    job_id: int | None
    at: datetime
    ok: bool
    method: str | None
    grant_state: str | None
    certificates: dict[str, dict[str, Any]]
    limits: dict[str, Any] | None
    error_code: str | None
    http_status: int | None
    ksef_code: int | None
    ksef_text: str
    message: Text | None


_COLUMNS = (
    "id, client_id, job_id, at, ok, method, grant_state, certificates, limits, error_code, http_status, "
    "ksef_code, ksef_text, message_pl, message_en"
)


def _stored(row: tuple) -> StoredCheck:
    (id_, client_id, job_id, at, ok, method, grant_state, certificates, limits, error_code, http_status,
     ksef_code, ksef_text, message_pl, message_en) = row
    return StoredCheck(
        id=id_,
        client_id=client_id,
        job_id=job_id,
        at=clock.parse(at),
        ok=bool(ok),
        method=method,
        grant_state=grant_state,
        certificates=json.loads(certificates or "{}"),
        limits=json.loads(limits) if limits else None,
        error_code=error_code,
        http_status=http_status,
        ksef_code=ksef_code,
        ksef_text=ksef_text or "",
        message=Text(message_pl, message_en) if (message_pl or message_en) else None,
    )


def latest_checks(db: Database, client_ids: Iterable[int]) -> dict[int, StoredCheck]:
    """Each client's newest live check (clients never checked are missing from the answer)."""
    ids = list(client_ids)
    if not ids:
        return {}
    rows = db.execute(
        f"SELECT {', '.join('s.' + c.strip() for c in _COLUMNS.split(','))} FROM status_latest l "
        f"JOIN status_checks s ON s.id = l.check_id WHERE l.client_id IN ({','.join('?' * len(ids))})",
        ids,
    ).fetchall()
    return {row[1]: _stored(row) for row in rows}


def history(db: Database, client_id: int, *, limit: int = 20) -> list[StoredCheck]:
    """The client's live checks, newest first."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM status_checks WHERE client_id = ? ORDER BY id DESC LIMIT ?", [client_id, limit]
    ).fetchall()
    return [_stored(row) for row in rows]
