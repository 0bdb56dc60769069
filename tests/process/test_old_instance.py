"""An instance written by an older main opens with the current code and is converted (issue 10).

tests/data/instances/main-2026-12/README.md says how the instance was made and with which login.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from klucznik.errors import WrongCredentials
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.migrations import migrations
from klucznik.instance.store import Store
from tests.process.test_admin_cli import run

OLD = Path(__file__).resolve().parents[1] / "data" / "instances" / "main-2026-12"
ADMIN = {"KLUCZNIK_USER": "admin", "KLUCZNIK_PASSWORD": "admin-password-1"}


@pytest.fixture
def old_instance(tmp_path: Path) -> Path:
    dest = tmp_path / "instance"
    shutil.copytree(OLD / "instance", dest)
    return dest


def test_the_old_instance_opens_with_everything_in_it(old_instance: Path) -> None:
    store = Store(old_instance, kdf=TEST_KDF)
    store.login("admin", "admin-password-1")
    db = store.connect()
    try:
        assert migrations.pending(db) == []
        assert sorted(r[0] for r in db.execute("SELECT nip FROM clients")) == [
            "5261040828",
            "5795955811",
            "6852332948",
        ]
        users = {r[0]: (r[1], r[2]) for r in db.execute("SELECT username, role, removed_at FROM users")}
        assert users["admin"] == ("admin", None) and users["ksiegowa"] == ("staff", None)
        assert users["odszedl"][1] is not None
        key, password, serial = db.execute(
            "SELECT c.private_key, c.key_password, c.serial FROM credentials c "
            "JOIN clients k ON k.id = c.client_id WHERE k.nip = '5795955811' AND c.status = 'active'"
        ).fetchone()
        assert serial == "01C311C507F83E0C"
        stored = (
            Path(__file__).resolve().parents[1] / "data" / "certs" / "mf-test-authentication.key"
        ).read_bytes()
        assert key == stored
        load_pem_private_key(key, password.encode())  # the stored key still opens with its stored password
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY id")]
        assert actions[0] == "instance.setup" and actions.count("clients.create") == 3
    finally:
        db.close()
    assert store.check()["ok"] is True
    # The removed user's slot is gone, the staff user's remains.
    with pytest.raises(WrongCredentials):
        Store(old_instance, kdf=TEST_KDF).login("odszedl", "staff-password-2")
    Store(old_instance, kdf=TEST_KDF).login("ksiegowa", "staff-password-1")


def test_the_old_instance_opens_with_its_recovery_code(old_instance: Path) -> None:
    store = Store(old_instance, kdf=TEST_KDF)
    store.unseal_with_recovery((OLD / "recovery-code.txt").read_text("ascii").strip())
    assert store.check()["ok"] is True


def test_klucznik_check_passes_on_the_old_instance(old_instance: Path) -> None:
    result = run(["check"], old_instance, **ADMIN)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["database"]["integrity_check"] == ["ok"]
    # And a write afterwards works and is kept.
    store = Store(old_instance, kdf=TEST_KDF)
    store.login("admin", "admin-password-1")
    with store.write() as db:
        db.execute("UPDATE clients SET notes = 'po konwersji' WHERE nip = '5261040828'")
    store.seal()
    again = Store(old_instance, kdf=TEST_KDF)
    again.login("admin", "admin-password-1")
    db = again.connect()
    try:
        assert (
            db.execute("SELECT notes FROM clients WHERE nip = '5261040828'").fetchone()[0] == "po konwersji"
        )
    finally:
        db.close()
