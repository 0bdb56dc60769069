"""Expiry at an explicit moment: days left, the colour band, and every active item that expires soon.

Only active items count: a superseded or revoked credential is history, never a warning. Archived clients
are left out. The portal stores only short-lived session tokens (refreshed by logging in again), so the
items are certificates; a method-1 grant has no end date in KSeF and is judged by the live check instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from sqlite_utils import Database

from klucznik import clock

#: The renewal window: KSeF accepts a new certificate request at most 30 days before the oldest expires.
RENEWAL_DAYS = 30
URGENT_DAYS = 7
#: KSeF's certificate type of each stored slot.
SLOT_TYPES = {"online": "Authentication", "offline": "Offline"}
METHODS = {"grant": 1, "portal_certs": 2, "user_certs": 3}


def days_left(valid_to: datetime, *, at: datetime) -> int:
    """Whole days from ``at`` until ``valid_to`` (negative once it has passed; 0 on its last day)."""
    return (clock.to_utc(valid_to) - clock.to_utc(at)) // timedelta(days=1)


def band(valid_to: datetime, *, at: datetime) -> str:
    """``expired`` | ``urgent`` (≤ 7 days) | ``soon`` (≤ 30 days) | ``ok`` (> 30 days): the page's colour class."""
    if clock.to_utc(valid_to) <= clock.to_utc(at):
        return "expired"
    left = days_left(valid_to, at=at)
    if left <= URGENT_DAYS:
        return "urgent"
    if left <= RENEWAL_DAYS:
        return "soon"
    return "ok"


def certificate_status(valid_to: datetime, ksef_status: str | None, *, at: datetime) -> str:
    """KSeF's status from the last live check (Active, Blocked, Revoked, Expired), ``Expired`` once the date
    has passed whatever KSeF said before, and ``Unchecked`` when no live check has seen it yet."""
    if clock.to_utc(valid_to) <= clock.to_utc(at) and ksef_status in (None, "Active"):
        return "Expired"
    return ksef_status or "Unchecked"


@dataclass(frozen=True)
class ExpiryItem:
    """One active item that expires within the window (the ``items`` of ``check-expiry --json``)."""

    client_id: int
    nip: str
    name: str
    method: str | None
    kind: str
    ksef_type: str | None
    serial: str | None
    valid_to: datetime
    days_left: int
    status: str

    def as_dict(self) -> dict[str, object]:
        """The JSON contract's item."""
        item: dict[str, object] = {
            "nip": self.nip,
            "name": self.name,
            "method": self.method,
            "kind": self.kind,
        }
        if self.ksef_type is not None:
            item["ksef_type"] = self.ksef_type
        if self.serial is not None:
            item["serial"] = self.serial
        item.update({"valid_to": clock.iso(self.valid_to), "days_left": self.days_left, "status": self.status})
        return item


def last_ksef_items(db: Database, client_ids: list[int] | None = None) -> dict[int, dict[str, dict]]:
    """``{client_id: {serial: {"status", "valid_to", ...}}}`` from each client's latest live check."""
    sql = (
        "SELECT l.client_id, c.certificates FROM status_latest l JOIN status_checks c ON c.id = l.check_id"
    )
    params: list[object] = []
    if client_ids is not None:
        if not client_ids:
            return {}
        sql += f" WHERE l.client_id IN ({','.join('?' * len(client_ids))})"
        params = list(client_ids)
    return {client_id: json.loads(certificates or "{}") for client_id, certificates in db.execute(sql, params)}


def effective_valid_to(stored: datetime, ksef_valid_to: str | None) -> datetime:
    """The end of validity that counts: KSeF's ``validTo`` from the last live check when it is earlier than the
    certificate's own date (KSeF can end a certificate early, e.g. a TEST certificate shortened to expire)."""
    if ksef_valid_to:
        ksef = clock.parse(ksef_valid_to)
        if ksef < stored:
            return ksef
    return stored


#: Ids of active credentials that KSeF, at the latest live check, said end before ``?`` (JSON1 over the check).
KSEF_ENDS_BEFORE = (
    "SELECT cr.id FROM status_latest l JOIN status_checks s ON s.id = l.check_id, json_each(s.certificates) j "
    "JOIN credentials cr ON cr.client_id = l.client_id AND cr.serial = j.key AND cr.status = 'active' "
    "WHERE json_extract(j.value, '$.valid_to') < ?"
)


def expiring(db: Database, *, at: datetime, days: int = RENEWAL_DAYS) -> list[ExpiryItem]:
    """Every active certificate of a current client that expires before ``at + days`` (expired ones too),
    soonest first."""
    limit = clock.iso(clock.to_utc(at) + timedelta(days=days))
    rows = db.execute(
        "SELECT c.id, c.nip, c.name, c.auth_method, cr.slot, cr.ksef_type, cr.serial, cr.not_after "
        "FROM credentials cr JOIN clients c ON c.id = cr.client_id "
        "WHERE cr.status = 'active' AND c.archived_at IS NULL "
        f"AND (cr.not_after < ? OR cr.id IN ({KSEF_ENDS_BEFORE})) "
        "ORDER BY cr.not_after, c.sort_key, cr.slot",
        [limit, limit],
    ).fetchall()
    known = last_ksef_items(db, sorted({row[0] for row in rows}))
    items = []
    for client_id, nip, name, method, slot, ksef_type, serial, not_after in rows:
        item = known.get(client_id, {}).get(serial) or {}
        valid_to = effective_valid_to(clock.parse(not_after), item.get("valid_to"))
        items.append(
            ExpiryItem(
                client_id=client_id,
                nip=nip,
                name=name,
                method=method,
                kind="certificate",
                ksef_type=ksef_type or SLOT_TYPES.get(slot),
                serial=serial,
                valid_to=valid_to,
                days_left=days_left(valid_to, at=at),
                status=certificate_status(valid_to, item.get("status"), at=at),
            )
        )
    items.sort(key=lambda i: (i.valid_to, i.client_id, i.ksef_type or ""))
    return items
