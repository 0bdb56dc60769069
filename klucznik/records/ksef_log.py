"""The ``ksef_operations`` table: the outcome of every KSeF call made for a client.

One row per call (challenge, submission, status poll, grant, enrollment, ...): when, what, whether it
succeeded, the HTTP status and KSeF's code and words when it did not. The status page and the client's
"KSeF errors" list read it; nothing ever updates or deletes a row.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from klucznik import clock


def record_operation(
    db: Database,
    *,
    client_id: int | None,
    at: datetime,
    operation: str,
    ok: bool,
    reference: str | None = None,
    http_status: int | None = None,
    ksef_code: int | None = None,
    description: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one call's outcome (inside the caller's ``store.write()``)."""
    db["ksef_operations"].insert(
        {
            "client_id": client_id,
            "at": clock.iso(at),
            "operation": operation,
            "reference_number": reference,
            "ok": int(ok),
            "http_status": http_status,
            "ksef_code": ksef_code,
            "description": description,
            "details": json.dumps(details or {}, ensure_ascii=False),
        }
    )


#: The ``operation`` of a row that records a KSeF technical warning (``X-System-Warning``).
SYSTEM_WARNING = "system_warning"


def record_warning(
    db: Database, *, client_id: int | None, at: datetime, code: str, message: str, operation: str
) -> None:
    """Append one KSeF technical warning (``X-System-Warning``): KSeF's code and words, and the call."""
    record_operation(
        db,
        client_id=client_id,
        at=at,
        operation=SYSTEM_WARNING,
        ok=True,
        description=message,
        details={"code": code, "operation": operation},
    )


def warnings_since(db: Database, client_id: int, since: datetime | None = None) -> list[dict[str, str]]:
    """The client's recorded warnings (oldest first), from ``since`` on: ``{"at", "code", "message",
    "operation"}``."""
    sql = "SELECT at, description, details FROM ksef_operations WHERE client_id = ? AND operation = ?"
    params: list[Any] = [client_id, SYSTEM_WARNING]
    if since is not None:
        sql += " AND at >= ?"
        params.append(clock.iso(since))
    out = []
    for at, description, details in db.execute(sql + " ORDER BY id", params).fetchall():
        data = json.loads(details or "{}")
        out.append(
            {
                "at": at,
                "code": data.get("code", ""),
                "message": description,
                "operation": data.get("operation", ""),
            }
        )
    return out
