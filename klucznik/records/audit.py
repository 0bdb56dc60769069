"""The audit log: an append-only table (triggers refuse UPDATE and DELETE).

Logins and failed logins, every change to clients, credentials and users, and every KSeF operation are
recorded here, inside the same write transaction as the change they describe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from klucznik.clock import iso


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: str
    actor: str | None
    ip: str | None
    action: str
    object_type: str | None
    object_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditPage:
    """A page of entries, newest first."""

    entries: list[AuditEntry]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def record(
    db: Database,
    *,
    actor: str | None,
    action: str,
    object_type: str | None = None,
    object_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
    at: datetime,
) -> None:
    """Append one entry; call it inside ``store.write()`` so it commits with the change."""
    # One statement: every write records, and ``db["audit_log"].insert`` would list the views and tables first.
    db.execute(
        "INSERT INTO audit_log (at, actor, ip, action, object_type, object_id, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            iso(at),
            actor,
            ip,
            action,
            object_type,
            None if object_id is None else str(object_id),
            json.dumps(details or {}, ensure_ascii=False, sort_keys=True),
        ],
    )


def actions(db: Database) -> list[str]:
    """Every action name that occurs, for the filter list."""
    return [row[0] for row in db.execute("SELECT DISTINCT action FROM audit_log ORDER BY action").fetchall()]


def query(
    db: Database,
    *,
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    page: int = 1,
    per_page: int = 50,
) -> AuditPage:
    """Entries matching the filters (``action`` matches a prefix such as ``clients.``)."""
    where, params = ["1 = 1"], []
    if action:
        where.append("(action = ? OR action LIKE ?)")
        params += [action, action.rstrip(".") + ".%"]
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if since:
        where.append("at >= ?")
        params.append(since)
    if until:
        where.append("at < ?")
        params.append(until)
    clause = " AND ".join(where)
    total = db.execute(f"SELECT count(*) FROM audit_log WHERE {clause}", params).fetchone()[0]
    page = max(1, page)
    rows = db.execute(
        f"SELECT id, at, actor, ip, action, object_type, object_id, details FROM audit_log WHERE {clause} "
        "ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, per_page, (page - 1) * per_page],
    ).fetchall()
    entries = [AuditEntry(*row[:7], details=json.loads(row[7] or "{}")) for row in rows]
    return AuditPage(entries=entries, total=total, page=page, per_page=per_page)
