"""Pieces shared by the ``klucznik`` check commands (``certs check``, ``xml check``).

Both commands take moments in time the same way (``--at`` and friends) and read an uploaded file the same
way (at most one byte more than the limit, so a huge file is refused without being read whole); keeping one
implementation here means the two commands cannot drift apart in how they parse or refuse input.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from pathlib import Path

import click

from klucznik import clock


class IsoDateTime(click.ParamType):
    """An ISO-8601 date-time (``2026-06-01T12:00:00Z``); a value without a zone is taken as UTC."""

    name = "ISO-8601"

    def convert(self, value, param, ctx):
        """Parse ``value`` or fail as a usage error (exit status 2)."""
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 date-time, e.g. 2026-06-01T12:00:00Z", param, ctx)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_limited(path: Path, *, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``path``, so a file over the limit is refused without reading it whole."""
    with path.open("rb") as handle:
        return handle.read(limit + 1)


def now() -> datetime:
    """The current time in UTC (used only when ``--at`` is not given)."""
    return clock.utcnow()
