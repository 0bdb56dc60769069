"""The ``klucznik`` admin commands that need no web framework (backup, check, certs, xml, ...).

Each command is a thin adapter: parse arguments, call one domain function, print the result.
The top-level ``cli.py`` adds the web and sandbox commands and is the console script.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from klucznik.cli_certs import certs
from klucznik.cli_xml import xml
from klucznik.errors import PortalError
from klucznik.storage import Store


def instance_path() -> Path:
    """``KLUCZNIK_INSTANCE`` or ``./instance``."""
    return Path(os.environ.get("KLUCZNIK_INSTANCE") or Path.cwd() / "instance")


def print_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False))


def open_store_unsealed() -> Store:
    """The instance, unsealed with ``KLUCZNIK_UNSEAL_KEY_FILE`` or an administrator's password (prompted)."""
    store = Store(instance_path())
    if store.state() == "new":
        raise click.ClickException("Brak instancji: najpierw uruchom portal (make run) i utwórz administratora. "
                                   "/ No instance yet: start the portal and create the administrator first.")
    key_file = os.environ.get("KLUCZNIK_UNSEAL_KEY_FILE")
    if key_file:
        store.unseal_with_key_file(Path(key_file))
        return store
    username = os.environ.get("KLUCZNIK_USER") or click.prompt("Login")
    password = os.environ.get("KLUCZNIK_PASSWORD") or click.prompt("Hasło / Password", hide_input=True)
    store.login(username, password)
    return store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Klucznik: KSeF credentials for an accounting office's clients."""


@main.command()
@click.argument("dest", type=click.Path(path_type=Path))
def backup(dest: Path) -> None:
    """Make a checked hot backup of the instance into the new or empty folder DEST.

    Example: klucznik backup /mnt/backup/klucznik-2026-11-24
    """
    try:
        store = open_store_unsealed()
        print_json(store.backup(dest))
    except PortalError as exc:
        raise click.ClickException(f"{exc.message_pl} / {exc.message_en}") from None


@main.command()
def check() -> None:
    """Run integrity_check and cipher_integrity_check on the database and the newest snapshot."""
    try:
        store = open_store_unsealed()
        report = store.check()
    except PortalError as exc:
        raise click.ClickException(f"{exc.message_pl} / {exc.message_en}") from None
    print_json(report)
    sys.exit(0 if report["ok"] else 1)


@main.command("unseal-key")
@click.argument("key_file", type=click.Path(path_type=Path))
def unseal_key(key_file: Path) -> None:
    """Create KEY_FILE (outside instance/) for unattended unseal via KLUCZNIK_UNSEAL_KEY_FILE."""
    try:
        store = open_store_unsealed()
        store.create_unseal_key_file(key_file)
    except PortalError as exc:
        raise click.ClickException(f"{exc.message_pl} / {exc.message_en}") from None
    click.echo(f"Zapisano {key_file}. Ustaw KLUCZNIK_UNSEAL_KEY_FILE={key_file}. / Written; set the variable.")


main.add_command(certs)  # issue 3: klucznik certs check
main.add_command(xml)  # issue 5: klucznik xml check
