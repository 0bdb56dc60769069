"""The status page's data: one row per client, the filters, a client's timeline and its KSeF errors.

Everything is judged at an explicit ``at``. The table is filtered, sorted and paged in SQL (the page stays
fast with ten thousand clients); only the rows of the page shown are then read in detail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta

from sqlite_utils import Database

from klucznik import clock
from klucznik import ids
from klucznik.ksef import errors as ksef_errors
from klucznik.ksef import statuses as ksef_statuses
from klucznik.records import clients as client_records
from klucznik.status.expiry import KSEF_ENDS_BEFORE
from klucznik.status.expiry import METHODS
from klucznik.status.expiry import RENEWAL_DAYS
from klucznik.status.expiry import SLOT_TYPES
from klucznik.status.expiry import band
from klucznik.status.expiry import certificate_status
from klucznik.status.expiry import days_left
from klucznik.status.expiry import effective_valid_to
from klucznik.status.results import StoredCheck
from klucznik.status.results import latest_checks
from klucznik.text import Text

FILTERS = ("", "expiring", "errors", "unauthorized")
SORTS = ("name", "expiry", "checked")
METHOD_FILTERS = ("", "grant", "portal_certs", "user_certs", "none")


@dataclass(frozen=True)
class CertificateCell:
    """One active certificate in a row of the table."""

    ksef_type: str
    serial: str
    subject: str
    valid_to: datetime
    days_left: int
    band: str
    ksef_status: str


@dataclass(frozen=True)
class KsefErrorEntry:
    """One KSeF error met with a client: its code, KSeF's own words and what to do."""

    at: datetime
    operation: str
    http_status: int | None
    ksef_code: int | None
    ksef_text: str
    advice: Text


@dataclass(frozen=True)
class StatusRow:
    """One client on the status page."""

    client_id: int
    nip: str
    name: str
    method: str | None
    certificates: tuple[CertificateCell, ...]
    last_check: StoredCheck | None
    last_error: KsefErrorEntry | None

    @property
    def nip_formatted(self) -> str:
        return ids.format_nip(self.nip)

    @property
    def method_number(self) -> int | None:
        return METHODS.get(self.method or "")

    @property
    def identifies(self) -> str:
        """Who the stored credentials identify (the Authentication certificate's subject first)."""
        for cell in self.certificates:
            if cell.ksef_type == "Authentication":
                return cell.subject
        return self.certificates[0].subject if self.certificates else ""

    @property
    def worst_band(self) -> str | None:
        order = ("expired", "urgent", "soon", "ok")
        bands = [c.band for c in self.certificates]
        return next((b for b in order if b in bands), None)

    @property
    def grant_state(self) -> str | None:
        return self.last_check.grant_state if self.last_check else None


@dataclass(frozen=True)
class StatusPage:
    """One page of the status table."""

    rows: list[StatusRow]
    total: int
    page: int
    per_page: int
    at: datetime
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class Banner:
    """What the banner on every page warns about (both zero: no banner)."""

    expiring: int
    failed: int

    @property
    def shown(self) -> bool:
        return bool(self.expiring or self.failed)


def banner(db: Database, *, at: datetime) -> Banner:
    """How many current clients have an active certificate expiring within 30 days, and how many failed
    their last live check."""
    limit = clock.iso(clock.to_utc(at) + timedelta(days=RENEWAL_DAYS))
    expiring = db.execute(
        "SELECT count(DISTINCT cr.client_id) FROM credentials cr JOIN clients c ON c.id = cr.client_id "
        f"WHERE cr.status = 'active' AND (cr.not_after < ? OR cr.id IN ({KSEF_ENDS_BEFORE})) AND c.archived_at IS NULL",
        [limit, limit],
    ).fetchone()[0]
    failed = db.execute(
        "SELECT count(*) FROM status_latest l JOIN clients c ON c.id = l.client_id "
        "WHERE l.ok = 0 AND c.archived_at IS NULL"
    ).fetchone()[0]
    return Banner(expiring=expiring, failed=failed)


def has_clients(db: Database) -> bool:
    """True once the office has at least one current client (the status page is then the start page)."""
    return db.execute("SELECT 1 FROM clients WHERE archived_at IS NULL LIMIT 1").fetchone() is not None


def status_page(
    db: Database,
    *,
    at: datetime,
    query: str = "",
    show: str = "",
    method: str = "",
    sort: str = "name",
    page: int = 1,
    per_page: int = 25,
) -> StatusPage:
    """The filtered, sorted page of the table (unknown filter values are ignored, never an error)."""
    show = show if show in FILTERS else ""
    method = method if method in METHOD_FILTERS else ""
    sort = sort if sort in SORTS else "name"
    limit = clock.iso(clock.to_utc(at) + timedelta(days=RENEWAL_DAYS))
    where = ["c.archived_at IS NULL"]
    params: list[object] = []
    for word in (query or "").casefold().split()[:5]:
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("c.search_text LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    # unary + keeps SQLite on the (client_id, ...) index: one seek per client, never a scan of all active rows
    active = "SELECT {what} FROM credentials cr WHERE cr.client_id = c.id AND +cr.status = 'active'"
    if show == "expiring":
        where.append("c.id IN (SELECT client_id FROM credentials WHERE status = 'active' AND not_after < ? "
                     f"UNION SELECT client_id FROM credentials WHERE id IN ({KSEF_ENDS_BEFORE}))")
        params += [limit, limit]
    elif show == "errors":
        where.append("l.ok = 0")
    elif show == "unauthorized":
        where.append(f"(c.auth_method IS NULL OR (c.auth_method != 'grant' AND NOT EXISTS ({active.format(what='1')})) "
                     "OR l.grant_state = 'missing')")
    if method == "none":
        where.append("c.auth_method IS NULL")
    elif method:
        where.append("c.auth_method = ?")
        params.append(method)
    order = {
        "name": "c.sort_key, c.id",
        "expiry": "e.next_expiry IS NULL, e.next_expiry, c.sort_key, c.id",
        "checked": "l.at IS NULL, l.ok, l.at, c.sort_key, c.id",
    }[sort]
    joins = "LEFT JOIN status_latest l ON l.client_id = c.id"
    if sort == "expiry":  # one pass over the active credentials, joined (cheaper than a subquery per client)
        joins += (" LEFT JOIN (SELECT client_id, MIN(not_after) AS next_expiry FROM credentials "
                  "WHERE status = 'active' GROUP BY client_id) e ON e.client_id = c.id")
    source = f"FROM clients c {joins} WHERE " + " AND ".join(where)
    total = db.execute(f"SELECT count(*) {source}", params).fetchone()[0]
    page = max(1, min(page, max(1, -(-total // per_page))))
    found = db.execute(
        f"SELECT c.id, c.nip, c.name, c.auth_method {source} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, per_page, (page - 1) * per_page],
    ).fetchall()
    rows = _rows(db, found, at=at)
    return StatusPage(rows=rows, total=total, page=page, per_page=per_page, at=at,
                      filters={"q": query, "show": show, "method": method, "sort": sort})


def client_row(db: Database, client_id: int, *, at: datetime) -> StatusRow | None:
    """One client's row of the table (``None`` when there is no such client)."""
    found = db.execute("SELECT id, nip, name, auth_method FROM clients WHERE id = ?", [client_id]).fetchall()
    rows = _rows(db, found, at=at)
    return rows[0] if rows else None


def _rows(db: Database, found: list[tuple], *, at: datetime) -> list[StatusRow]:
    ids = [row[0] for row in found]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    checks = latest_checks(db, ids)
    cells: dict[int, list[CertificateCell]] = {i: [] for i in ids}
    for client_id, slot, ksef_type, serial, subject, not_after in db.execute(
        "SELECT client_id, slot, ksef_type, serial, subject, not_after FROM credentials "
        f"WHERE status = 'active' AND client_id IN ({marks}) ORDER BY client_id, slot DESC, id DESC",
        ids,
    ).fetchall():
        check = checks.get(client_id)
        item = (check.certificates.get(serial) or {}) if check else {}
        known = item.get("status")
        valid_to = effective_valid_to(clock.parse(not_after), item.get("valid_to"))
        cells[client_id].append(
            CertificateCell(
                ksef_type=ksef_type or SLOT_TYPES.get(slot, slot),
                serial=serial,
                subject=subject,
                valid_to=valid_to,
                days_left=days_left(valid_to, at=at),
                band=band(valid_to, at=at),
                ksef_status=certificate_status(valid_to, known, at=at),
            )
        )
    last_errors: dict[int, KsefErrorEntry] = {}
    for row in db.execute(
        "SELECT o.client_id, o.at, o.operation, o.http_status, o.ksef_code, o.description, o.details "
        "FROM ksef_operations o JOIN (SELECT client_id, MAX(id) AS id FROM ksef_operations "
        f"WHERE ok = 0 AND client_id IN ({marks}) GROUP BY client_id) m ON m.id = o.id",
        ids,
    ).fetchall():
        last_errors[row[0]] = _error_entry(row[1:])
    return [
        StatusRow(
            client_id=client_id,
            nip=nip,
            name=name,
            method=method,
            certificates=tuple(cells[client_id]),
            last_check=checks.get(client_id),
            last_error=last_errors.get(client_id),
        )
        for client_id, nip, name, method in found
    ]


def _error_entry(row: tuple) -> KsefErrorEntry:
    at, operation, http_status, ksef_code, description, details = row
    extra = json.loads(details or "{}")
    ksef_text = "; ".join(extra.get("ksef") or ()) or description or ""
    if ksef_code is not None and operation == "auth.status":
        advice = ksef_statuses.explain_auth_status(ksef_code, ksef_text).text
    elif ksef_code is not None and operation.endswith("_status") and ksef_code < 1000:
        advice = ksef_statuses.explain_operation_status(ksef_code, ksef_text).text
    elif http_status is None and ksef_code is None:
        advice = Text(
            "Portal nie dostał odpowiedzi z KSeF (brak połączenia albo przekroczony czas). Sprawdź komunikaty o "
            "dostępności KSeF u góry tej strony i spróbuj ponownie później.",
            "The portal got no answer from KSeF (no connection or a timeout). Check KSeF's availability at the "
            "top of this page and try again later.",
        )
    else:
        advice = ksef_errors.explain(http_status, (ksef_code,) if ksef_code is not None else ())
    return KsefErrorEntry(
        at=clock.parse(at),
        operation=operation,
        http_status=http_status,
        ksef_code=ksef_code,
        ksef_text=ksef_text,
        advice=advice,
    )


def ksef_errors_of(db: Database, client_id: int, *, limit: int = 50) -> list[KsefErrorEntry]:
    """Every KSeF error met with this client (newest first): code, KSeF's text, what to do."""
    return [
        _error_entry(row)
        for row in db.execute(
            "SELECT at, operation, http_status, ksef_code, description, details FROM ksef_operations "
            "WHERE client_id = ? AND ok = 0 ORDER BY id DESC LIMIT ?",
            [client_id, limit],
        ).fetchall()
    ]


# -- the timeline --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineBar:
    """One certificate's validity on the timeline (x and width in the SVG's units)."""

    label: str
    serial: str
    ksef_type: str
    state: str  # active | superseded | revoked
    band: str
    x: float
    width: float
    y: float
    not_before: datetime
    not_after: datetime
    window_x: float | None
    window_width: float


@dataclass(frozen=True)
class Timeline:
    """A client's certificates on one time axis: bars, today's line, the renewal windows, year ticks."""

    width: float
    height: float
    bars: tuple[TimelineBar, ...]
    today_x: float
    ticks: tuple[tuple[float, str], ...]
    at: datetime


LABEL_WIDTH = 190.0
CHART_WIDTH = 560.0
ROW_HEIGHT = 26.0
TOP = 22.0


def timeline(db: Database, client_id: int, *, at: datetime) -> Timeline | None:
    """Every certificate the client ever had (current and superseded), on a common axis; ``None`` if none."""
    rows = db.execute(
        "SELECT slot, ksef_type, serial, not_before, not_after, status FROM credentials WHERE client_id = ? "
        "ORDER BY status = 'active' DESC, slot, not_before DESC, id DESC",
        [client_id],
    ).fetchall()
    if not rows:
        return None
    at = clock.to_utc(at)
    check = latest_checks(db, [client_id]).get(client_id)
    known = check.certificates if check else {}
    starts = [clock.parse(r[3]) for r in rows]
    ends = [
        effective_valid_to(clock.parse(r[4]), (known.get(r[2]) or {}).get("valid_to")) if r[5] == "active"
        else clock.parse(r[4])
        for r in rows
    ]
    low = min([*starts, at - timedelta(days=RENEWAL_DAYS)])
    high = max([*ends, at + timedelta(days=RENEWAL_DAYS)])
    span = (high - low).total_seconds() or 1.0

    def x_of(moment: datetime) -> float:
        return round(LABEL_WIDTH + CHART_WIDTH * (moment - low).total_seconds() / span, 1)

    bars = []
    for index, ((slot, ksef_type, serial, _nb, _na, state), start, end) in enumerate(
        zip(rows, starts, ends, strict=True)
    ):
        kind = ksef_type or SLOT_TYPES.get(slot, slot)
        window_start = end - timedelta(days=RENEWAL_DAYS)
        window_x = x_of(max(window_start, low)) if state == "active" else None
        bars.append(
            TimelineBar(
                label=f"{kind} …{serial[-6:]}",
                serial=serial,
                ksef_type=kind,
                state=state,
                band=band(end, at=at) if state == "active" else state,
                x=x_of(start),
                width=max(1.0, round(x_of(end) - x_of(start), 1)),
                y=TOP + index * ROW_HEIGHT,
                not_before=start,
                not_after=end,
                window_x=window_x,
                window_width=round(x_of(end) - window_x, 1) if window_x is not None else 0.0,
            )
        )
    ticks = []
    for year in range(low.year + 1, high.year + 1):
        moment = datetime(year, 1, 1, tzinfo=at.tzinfo)
        ticks.append((x_of(moment), str(year)))
    return Timeline(
        width=LABEL_WIDTH + CHART_WIDTH + 10,
        height=TOP + len(bars) * ROW_HEIGHT + 8,
        bars=tuple(bars),
        today_x=x_of(at),
        ticks=tuple(ticks),
        at=at,
    )


def client_name(db: Database, client_id: int) -> client_records.Client:
    """The client (NotFound when there is none)."""
    return client_records.get_client(db, client_id)
