"""`klucznik backup`, `klucznik check` and `klucznik unseal-key` through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import NOW

KLUCZNIK = str(Path(sys.executable).with_name("klucznik"))


def run(args: list[str], instance: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KLUCZNIK_")}
    environ.update({"KLUCZNIK_INSTANCE": str(instance), **env})
    return subprocess.run([KLUCZNIK, *args], env=environ, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60)


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    store = Store(path, kdf=TEST_KDF)
    store.setup("admin", "admin-password-1", at=NOW)
    with store.write() as db:
        clients.create_client(db, clients.validate(nip="5261040828", name="Firma z kopii"), actor="admin", at=NOW)
    return path


ADMIN = {"KLUCZNIK_USER": "admin", "KLUCZNIK_PASSWORD": "admin-password-1"}


def test_backup_then_restore_on_a_new_machine(instance: Path, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    result = run(["backup", str(dest)], instance, **ADMIN)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["integrity_check"] == ["ok"] and report["cipher_integrity_check"] == []
    assert sorted(p.name for p in dest.iterdir()) == ["keyring.json", "klucznik.db"]
    # Restore = copy the folder onto a new machine and log in.
    new_machine = tmp_path / "new-machine"
    new_machine.mkdir()
    restored = Store(dest.rename(new_machine / "instance"))
    restored.login("admin", "admin-password-1")
    db = restored.connect()
    try:
        assert [c.name for c in clients.search(db).clients] == ["Firma z kopii"]
    finally:
        db.close()


def test_backup_with_a_wrong_password_fails_plainly(instance: Path, tmp_path: Path) -> None:
    result = run(["backup", str(tmp_path / "b")], instance, KLUCZNIK_USER="admin", KLUCZNIK_PASSWORD="wrong password!")
    assert result.returncode == 1
    assert "Nieprawidłowy login lub hasło" in result.stderr
    assert not (tmp_path / "b").exists()


def test_check_reports_both_integrity_checks(instance: Path) -> None:
    result = run(["check"], instance, **ADMIN)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["database"]["integrity_check"] == ["ok"]
    assert report["snapshot"]["cipher_integrity_check"] == []


def test_check_fails_on_a_tampered_snapshot(instance: Path) -> None:
    (newest,) = (instance / "snapshots").glob("snapshot-*.db")
    data = bytearray(newest.read_bytes())
    data[5000:5004] = b"\xff\x00\xff\x00"
    newest.write_bytes(bytes(data))
    result = run(["check"], instance, **ADMIN)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    # Unsealing found it, moved it aside (never deleted) and took a new snapshot: the check says so and fails.
    assert report["ok"] is False
    moved = Path(report["repaired"]["moved_aside"])
    assert (moved / newest.name).read_bytes() == bytes(data)
    assert report["snapshot"]["ok"] is True and report["database"]["ok"] is True
    again = run(["check"], instance, **ADMIN)
    assert again.returncode == 0, again.stdout


def test_unseal_key_file_unseals_without_a_password(instance: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "outside" / "unseal.key"
    key_file.parent.mkdir()
    assert run(["unseal-key", str(key_file)], instance, **ADMIN).returncode == 0
    result = run(["check"], instance, KLUCZNIK_UNSEAL_KEY_FILE=str(key_file))
    assert result.returncode == 0, result.stderr
    assert key_file.stat().st_mode & 0o077 == 0


def test_unseal_key_file_inside_instance_is_refused(instance: Path) -> None:
    result = run(["unseal-key", str(instance / "unseal.key")], instance, **ADMIN)
    assert result.returncode == 1
    assert "instance/" in result.stderr
    assert not (instance / "unseal.key").exists()


def test_commands_on_a_missing_instance_say_what_to_do(tmp_path: Path) -> None:
    result = run(["check"], tmp_path / "nothing", **ADMIN)
    assert result.returncode == 1
    assert "make run" in result.stderr
