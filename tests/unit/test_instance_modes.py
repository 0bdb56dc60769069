"""Every file in instance/ is the owner's only (0600) and every folder 0700, whatever the umask (issue 9, item 6)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import users
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import add_clients
from tests.support.instances import nips


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask of a desktop session (files 0644, folders 0755 unless the portal says otherwise)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, str]:
    """Relative path → octal mode of ``root`` and of everything under it."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in sorted(root.rglob("*")):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def assert_private(root: Path) -> None:
    found = modes(root)
    wrong = {
        name: mode
        for name, mode in found.items()
        if mode != ("0o700" if (root / name).is_dir() else "0o600")
    }
    assert not wrong, wrong
    assert any(name.endswith(".db") for name in found)  # the check looked at real files


def test_a_new_instance_and_its_snapshots_are_private(tmp_path: Path, loose_umask: None) -> None:
    store = Store(tmp_path / "instance", kdf=TEST_KDF)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    add_clients(store, [("Firma A", nips(1)[0])])
    users.create_user(store, username="ewa", role="staff", password="initial-password", actor=ADMIN, at=NOW)
    users.remove_user(store, username="ewa", actor=ADMIN, at=NOW)  # a key rotation rewrites the files
    assert (tmp_path / "instance" / "snapshots").is_dir()
    assert_private(tmp_path / "instance")


def test_a_backup_folder_is_private_too(tmp_path: Path, loose_umask: None) -> None:
    store = Store(tmp_path / "instance", kdf=TEST_KDF)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    store.backup(tmp_path / "copy")
    files = [p for p in (tmp_path / "copy").rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


def test_an_older_instance_with_loose_modes_is_tightened_when_opened(tmp_path: Path, loose_umask: None) -> None:
    store = Store(tmp_path / "instance", kdf=TEST_KDF)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    store.connect().close()
    root = tmp_path / "instance"
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    reopened = Store(root, kdf=TEST_KDF)
    reopened.login(ADMIN, ADMIN_PASSWORD)
    add_clients(reopened, [("Firma B", nips(1, start=5)[0])])
    db_files = [p for p in root.iterdir() if p.name.startswith("klucznik.db")]
    assert db_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in db_files)
    reopened.take_snapshot()  # files written after the change have the private mode too
    assert_private(root)
