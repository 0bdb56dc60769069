"""``klucznik backup``, ``check`` and ``unseal-key``: the instance's admin commands.

Like every command that opens the instance, they unseal it with ``KLUCZNIK_UNSEAL_KEY_FILE`` or an
administrator's login (``KLUCZNIK_USER``/``KLUCZNIK_PASSWORD`` or a prompt).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from klucznik.errors import PortalError
from klucznik.instance.store import Store


def instance_path() -> Path:
    """``KLUCZNIK_INSTANCE`` or ``./instance``."""
    return Path(os.environ.get("KLUCZNIK_INSTANCE") or Path.cwd() / "instance")


def print_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False))


def open_store_unsealed() -> Store:
    """The instance, unsealed with ``KLUCZNIK_UNSEAL_KEY_FILE`` or an administrator's password (prompted)."""
    store = Store(instance_path())
    if store.state() == "new":
        raise click.ClickException(
            "Brak instancji: najpierw uruchom portal (make run) i utwórz administratora. "
            "/ No instance yet: start the portal and create the administrator first."
        )
    key_file = os.environ.get("KLUCZNIK_UNSEAL_KEY_FILE")
    if key_file:
        store.unseal_with_key_file(Path(key_file))
        return store
    username = os.environ.get("KLUCZNIK_USER") or click.prompt("Login")
    password = os.environ.get("KLUCZNIK_PASSWORD") or click.prompt("Hasło / Password", hide_input=True)
    store.login(username, password)
    return store


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
def backup(dest: Path) -> None:
    """Make a checked hot backup of the instance into the new or empty folder DEST.

    Example: klucznik backup /mnt/backup/klucznik-2026-11-24
    """
    try:
        store = open_store_unsealed()
        print_json(store.backup(dest))
    except PortalError as exc:
        raise click.ClickException(exc.text.both()) from None


@click.command()
def check() -> None:
    """Run integrity_check and cipher_integrity_check on the database and on snapshot + change log."""
    try:
        store = open_store_unsealed()
        report = store.check()
    except PortalError as exc:
        raise click.ClickException(exc.text.both()) from None
    repaired = store.last_unseal
    if repaired is not None and (repaired.restored_from or repaired.moved_aside):
        # Opening the instance found something damaged or old and repaired it: say so, and fail this once.
        report["repaired"] = {"restored_from": repaired.restored_from, "moved_aside": repaired.moved_aside}
        report["ok"] = False
    print_json(report)
    sys.exit(0 if report["ok"] else 1)


@click.command("unseal-key")
@click.argument("key_file", type=click.Path(path_type=Path))
def unseal_key(key_file: Path) -> None:
    """Create KEY_FILE (outside instance/) for unattended unseal via KLUCZNIK_UNSEAL_KEY_FILE."""
    try:
        store = open_store_unsealed()
        store.create_unseal_key_file(key_file)
    except PortalError as exc:
        raise click.ClickException(exc.text.both()) from None
    click.echo(
        f"Zapisano {key_file}. Ustaw KLUCZNIK_UNSEAL_KEY_FILE={key_file}. / Written; set the variable."
    )
