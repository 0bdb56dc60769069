"""An instance written before the package layout opens with the current code (issue 8: the instance format
stays as it was). tests/data/instances/pre-layout-2026-11/README.md says how it was made."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.migrations import migrations
from klucznik.instance.store import Store
from tests.process.test_admin_cli import run

DATA = Path(__file__).resolve().parents[1] / "data"
OLD = DATA / "instances" / "pre-layout-2026-11"


@pytest.fixture
def old_instance(tmp_path: Path) -> Path:
    dest = tmp_path / "instance"
    shutil.copytree(OLD / "instance", dest)
    return dest


def test_the_pre_layout_instance_opens_with_its_clients_users_and_key(old_instance: Path) -> None:
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
        key, password = db.execute(
            "SELECT c.private_key, c.key_password FROM credentials c JOIN clients k ON k.id = c.client_id "
            "WHERE k.nip = '5795955811' AND c.status = 'active'"
        ).fetchone()
        assert key == (DATA / "certs" / "mf-test-authentication.key").read_bytes()
        load_pem_private_key(key, password.encode())
    finally:
        db.close()
    Store(old_instance, kdf=TEST_KDF).login("ksiegowa", "staff-password-1")
    recovered = Store(old_instance, kdf=TEST_KDF)
    recovered.unseal_with_recovery((OLD / "recovery-code.txt").read_text("ascii").strip())
    assert recovered.check()["ok"] is True


def test_klucznik_check_passes_on_the_pre_layout_instance(old_instance: Path) -> None:
    result = run(["check"], old_instance, KLUCZNIK_USER="admin", KLUCZNIK_PASSWORD="admin-password-1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
