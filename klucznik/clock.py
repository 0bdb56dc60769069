"""Time, in one place: the domain never reads the clock on its own.

Every function that records or judges time takes an explicit moment ``at`` (an aware ``datetime`` in UTC),
so tests pin it and a certificate's validity, a challenge's expiry or an audit entry's time never depends
on when the code happened to run. Only the edges read the real clock: the web layer through its one
injectable clock, the console commands when ``--at`` is not given, and the KSeF client's token refresh
(itself injectable). :func:`utcnow` is that real clock.

Moments are stored in the database in one text form (:func:`iso`: UTC, whole seconds, ``Z``) and read
back with :func:`parse`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from datetime import datetime

#: A source of the current moment (``utcnow``, or a fixed/advancing clock in tests).
Clock = Callable[[], datetime]

_FRACTION = re.compile(r"(\.\d{6})\d+")


def utcnow() -> datetime:
    """The real current time in UTC."""
    return datetime.now(UTC)


def to_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive value is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """The one text form of a moment stored in the database: UTC, whole seconds, ``Z``."""
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime:
    """An ISO-8601 date-time (``Z`` or an offset or none, up to 7 fractional digits) as aware UTC."""
    text = _FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00"))
    return to_utc(datetime.fromisoformat(text))


def parse_optional(value: str | None) -> datetime | None:
    """:func:`parse` for a value that may be missing (``None`` or empty → ``None``)."""
    return parse(value) if value else None


def date_pl(moment: datetime) -> str:
    """``21.01.2028``: the usual Polish way to write a date."""
    return moment.strftime("%d.%m.%Y")


def date_en(moment: datetime) -> str:
    """``2028-01-21``."""
    return moment.strftime("%Y-%m-%d")
