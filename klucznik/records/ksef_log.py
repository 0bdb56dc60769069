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
