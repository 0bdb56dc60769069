"""``klucznik xml check``: the check the wizard runs on an uploaded signed file, for scripts and support staff.

Support can ask a client for the file they uploaded and see exactly what the portal saw. The output is one
JSON object with a stable shape (a public contract: ``{"ok", "signer", "problems"}``); exit status 0 = the file can be
sent, 1 = at least one problem, 2 = wrong usage (click's usage errors use 2 too).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from klucznik import ids
from klucznik import xades
from klucznik.cli.common import IsoDateTime
from klucznik.cli.common import now
from klucznik.cli.common import read_limited
from klucznik.errors import ValidationError


def _nip(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The ``--nip`` option normalised to 10 digits, or a usage error in both languages."""
    try:
        return ids.normalize_nip(value)
    except ValidationError as exc:
        raise click.BadParameter(exc.text.both()) from None


def _challenge(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The ``--challenge`` option when it has KSeF's challenge format, or a usage error."""
    if not xades.CHALLENGE_RE.fullmatch(value):
        raise click.BadParameter("expected a KSeF challenge like 20250604-CR-461EA5B000-537A6BA15D-D7")
    return value


@click.group("xml")
def xml() -> None:
    """Check signed KSeF login files (AuthTokenRequest)."""


@xml.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--challenge", required=True, callback=_challenge, help="The challenge the portal issued.")
@click.option("--nip", required=True, callback=_nip, help="The company's NIP the file must be for.")
@click.option("--at", "at", type=IsoDateTime(), default=None, help="Check at this moment instead of now.")
@click.option(
    "--expires-at",
    "expires_at",
    type=IsoDateTime(),
    default=None,
    help="When the challenge expires (issued + 10 min); without it expiry is not checked.",
)
def check(file: Path, challenge: str, nip: str, at: datetime | None, expires_at: datetime | None) -> None:
    """Check a signed AuthTokenRequest FILE and print a JSON verdict.

    Exit status: 0 the file can be sent to KSeF, 1 a problem, 2 wrong usage.

    Example: klucznik xml check "AuthTokenRequest (1).xml" --challenge 20250604-CR-461EA5B000-537A6BA15D-D7
    --nip 5261040828
    """
    data = read_limited(file, limit=xades.MAX_BYTES)
    result = xades.check_signed_request(
        data, challenge=challenge, nip=nip, at=at or now(), challenge_expires_at=expires_at
    )
    click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    sys.exit(0 if result.ok else 1)
