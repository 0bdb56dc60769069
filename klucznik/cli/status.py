"""``klucznik check-expiry`` and ``check-clients``: the status page's facts and live checks, for cron.

They unseal the instance like the other admin commands (``KLUCZNIK_UNSEAL_KEY_FILE``, or
``KLUCZNIK_USER``/``KLUCZNIK_PASSWORD``, or a prompt). Exit status: 0 nothing to report, 1 something expires
within the window (or failed its check, or an error), 2 wrong usage.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click

from klucznik import clock
from klucznik.authorize import office as office_identity
from klucznik.authorize.session import ksef_client_for
from klucznik.cli.admin import open_store_unsealed
from klucznik.cli.admin import print_json
from klucznik.cli.common import IsoDateTime
from klucznik.cli.common import now
from klucznik.errors import PortalError
from klucznik.ids import normalize_nip
from klucznik.status import expiry
from klucznik.status import jobs
from klucznik.status import reminders
from klucznik.status.results import CheckOutcome

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


def _outcome_json(outcome: CheckOutcome, client: tuple[str, str]) -> dict[str, object]:
    error = None
    if not outcome.ok:
        error = {
            "code": outcome.error_code,
            "http_status": outcome.http_status,
            "ksef_code": outcome.ksef_code,
            "ksef_text": outcome.ksef_text,
            "message_pl": outcome.message.pl if outcome.message else "",
            "message_en": outcome.message.en if outcome.message else "",
        }
    return {
        "nip": client[0],
        "name": client[1],
        "method": outcome.method,
        "ok": outcome.ok,
        "grant_state": outcome.grant_state,
        "certificates": {serial: dict(item) for serial, item in outcome.certificates.items()},
        "error": error,
    }


@click.command("check-clients")
@click.option("--all", "check_all", is_flag=True, help="Check every current client connected to KSeF.")
@click.option("--nip", "nips", multiple=True, help="Check the client with this NIP (repeat for more).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stable contract).")
@click.option("--concurrency", type=click.IntRange(1, 16), default=4, show_default=True,
              help="How many clients are checked at once.")
def check_clients(check_all: bool, nips: tuple[str, ...], as_json: bool, concurrency: int) -> None:
    """Live checks: log in to KSeF with what is stored for each client, read the certificates' KSeF status
    (exit 1 if any check failed).

    Example (cron, every night): klucznik check-clients --all --json
    """
    if check_all == bool(nips):
        raise click.UsageError("Podaj --all albo --nip NIP. / Give either --all or --nip NIP.")
    try:
        wanted = [normalize_nip(n) for n in nips]
    except PortalError as exc:
        raise click.UsageError(exc.text.both()) from None
    try:
        store = open_store_unsealed()
        with store.connect() as db:
            if check_all:
                ids = jobs.checkable_clients(db)
            else:
                ids = []
                for nip in wanted:
                    row = db.execute("SELECT id FROM clients WHERE nip = ?", [nip]).fetchone()
                    if row is None:
                        raise click.ClickException(
                            f"Nie ma klienta z NIP {nip}. / No client with NIP {nip}."
                        )
                    ids.append(row[0])
            names = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, nip, name FROM clients")}

        def ksef_factory():
            with store.connect() as db:
                return ksef_client_for(db)

        moment = now()
        office_login = office_identity.login_in_context(store.connect, clock=now)
        outcomes = jobs.CheckRunner(
            store, ksef_factory=ksef_factory, office_login=office_login, concurrency=concurrency
        ).run(ids)
    except PortalError as exc:
        raise click.ClickException(exc.text.both()) from None
    order = {client_id: i for i, client_id in enumerate(ids)}
    outcomes.sort(key=lambda o: order[o.client_id])
    if as_json:
        print_json({"checked_at": clock.iso(moment),
                    "items": [_outcome_json(o, names[o.client_id]) for o in outcomes]})
    else:
        for outcome in outcomes:
            nip, name = names[outcome.client_id]
            result = "OK" if outcome.ok else (outcome.message.both() if outcome.message else outcome.error_code)
            click.echo(f"{nip}  {name}: {result}")
        if not outcomes:
            click.echo("Brak klientów połączonych z KSeF. / No clients connected to KSeF.")
    sys.exit(0 if all(o.ok for o in outcomes) else 1)


@click.command("remind")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stable contract).")
@click.option("--at", type=IsoDateTime(), default=None, help="Judge at this moment instead of now (ISO-8601).")
def remind(as_json: bool, at: datetime | None) -> None:
    """E-mail the office about certificates expiring within 30, 14, 7 and 1 days (each reminder once).

    Example (cron, every morning): klucznik remind
    """
    moment = at or now()
    try:
        store = open_store_unsealed()
        result = reminders.remind(store, at=moment)
    except PortalError as exc:
        raise click.ClickException(exc.text.both()) from None
    if as_json:
        print_json({
            "sent_at": clock.iso(moment),
            "recipients": list(result.recipients) if result.reminders else [],
            "items": [{**r.item.as_dict(), "threshold": r.threshold} for r in result.reminders],
        })
    elif result.reminders:
        click.echo(f"Wysłano przypomnienie o {len(result.reminders)} pozycjach do: {', '.join(result.recipients)}. "
                   f"/ Reminder about {len(result.reminders)} items sent.")
    else:
        click.echo("Nie ma nowych przypomnień do wysłania. / No new reminders to send.")
