"""``klucznik certs check``: the upload checks of the web form, for scripts and support staff.

The output is one JSON object with a stable shape (a public contract, see the README) and the exit status says whether
anything blocks the upload: 0 = no error (warnings allowed), 1 = at least one error, 2 = wrong usage.
The key password never appears on the command line (it would land in shell history and ``ps``):
it comes from ``KLUCZNIK_KEY_PASSWORD`` or, when the key is encrypted and stdin is a terminal,
from a hidden prompt.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import click

from klucznik import certs
from klucznik.cli.common import IsoDateTime
from klucznik.cli.common import now
from klucznik.cli.common import read_limited

PASSWORD_VARIABLE = "KLUCZNIK_KEY_PASSWORD"


@click.group("certs")
def certs_group() -> None:
    """Check KSeF certificates and private keys before uploading them."""


@certs_group.command("check")
@click.option(
    "--slot",
    type=click.Choice(certs.SLOTS),
    required=True,
    help="online = Authentication certificate, offline = Offline certificate.",
)
@click.option(
    "--crt",
    "crt_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The certificate file (.crt, PEM or DER).",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The private key file (.key).",
)
@click.option("--nip", default=None, help="The company's NIP the certificate must identify.")
@click.option(
    "--at",
    "at",
    type=IsoDateTime(),
    default=None,
    help="Check validity at this moment instead of now (ISO-8601).",
)
def check(slot: str, crt_path: Path, key_path: Path, nip: str | None, at: datetime | None) -> None:
    """Check one certificate + key pair and print a JSON verdict.

    The key password is read from KLUCZNIK_KEY_PASSWORD or prompted for (hidden) when the key is
    encrypted and stdin is a terminal. Exit status: 0 no error, 1 an error, 2 wrong usage.

    Example: KLUCZNIK_KEY_PASSWORD=... klucznik certs check --slot online --crt a.crt --key a.key --nip 5261040828
    """
    crt = read_limited(crt_path, limit=certs.MAX_FILE_SIZE)
    key = read_limited(key_path, limit=certs.MAX_FILE_SIZE)
    nip_value, nip_problems = (None, ()) if nip is None else certs.check_nip(nip)
    result = certs.check_pair(
        slot=slot, crt=crt, key=key, password=_password_for(key), at=at or now(), nip=nip_value
    )
    if nip_problems:
        result = dataclasses.replace(result, problems=result.problems + nip_problems)
    ok = result.ok and not nip_problems
    output = {**result.as_dict(), "ok": ok}
    click.echo(json.dumps(output, ensure_ascii=False, indent=2))
    sys.exit(0 if ok else 1)


def _password_for(key: bytes) -> str | None:
    """The key password from the environment, a hidden prompt (encrypted key, terminal) or ``None``."""
    if PASSWORD_VARIABLE in os.environ:
        return os.environ[PASSWORD_VARIABLE]
    if certs.is_key_encrypted(key) and sys.stdin.isatty():
        return click.prompt(
            "Hasło klucza / Key password", hide_input=True, err=True, default="", show_default=False
        )
    return None
