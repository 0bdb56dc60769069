"""``klucznik check-expiry`` (and the live checks' ``check-clients``): the status page's facts for cron.

They unseal the instance like the other admin commands (``KLUCZNIK_UNSEAL_KEY_FILE``, or
``KLUCZNIK_USER``/``KLUCZNIK_PASSWORD``, or a prompt). Exit status: 0 nothing to report, 1 something expires
within the window (or failed its check, or an error), 2 wrong usage.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click

from klucznik import clock
from klucznik.cli.admin import open_store_unsealed
from klucznik.cli.admin import print_json
from klucznik.cli.common import IsoDateTime
from klucznik.cli.common import now
from klucznik.errors import PortalError
from klucznik.status import expiry

_KINDS_PL = {"certificate": "certyfikat", "grant": "uprawnienie", "token": "token"}


@click.command("check-expiry")
@click.option("--days", type=click.IntRange(0, 3650), default=expiry.RENEWAL_DAYS, show_default=True,
              help="The window: what expires within this many days (expired items count too).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stable contract).")
@click.option("--at", type=IsoDateTime(), default=None, help="Judge at this moment instead of now (ISO-8601).")
def check_expiry(days: int, as_json: bool, at: datetime | None) -> None:
    """List the active certificates of current clients that expire within --days (exit 1 if any).

    Example (cron, every morning): klucznik check-expiry --days 30 --json
    """
    moment = at or now()
    try:
        store = open_store_unsealed()
        with store.connect() as db:
            items = expiry.expiring(db, at=moment, days=days)
    except PortalError as exc:
        raise click.ClickException(exc.text.both()) from None
    if as_json:
        print_json({"checked_at": clock.iso(moment), "days": days, "items": [i.as_dict() for i in items]})
    elif not items:
        click.echo(f"Nic nie wygasa w ciągu {days} dni. / Nothing expires within {days} days.")
    else:
        for item in items:
            when = clock.date_pl(item.valid_to)
            left = (f"wygasł {when}" if item.days_left < 0 or item.valid_to <= moment
                    else f"ważny do {when}, zostało dni: {item.days_left}")
            what = " ".join(x for x in (_KINDS_PL[item.kind], item.ksef_type or "", item.serial or "") if x)
            click.echo(f"{item.nip}  {item.name}: {what}: {left} ({item.status})")
    sys.exit(1 if items else 0)
