"""`klucznik check-expiry` through the real console script: the JSON contract, exit statuses, unseal paths."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from tests.process.test_admin_cli import ADMIN
from tests.process.test_admin_cli import run
from tests.support.defaults import NOW
from tests.support.status import add_client
from tests.support.status import add_credential

D = timedelta(days=1)
AT = "2026-12-01T09:00:00Z"


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    store = Store(path, kdf=TEST_KDF)
    store.setup("admin", "admin-password-1", at=NOW)
    with store.write() as db:
        alfa = add_client(db, "5261040828", "Alfa sp. z o.o.", method="portal_certs", at=NOW)
        add_credential(db, alfa, slot="online", serial="0A1", not_before=NOW - 700 * D, not_after=NOW + 10 * D)
        add_credential(db, alfa, slot="offline", serial="0A2", not_before=NOW - 700 * D, not_after=NOW + 300 * D)
        add_credential(db, alfa, slot="online", serial="0A0", not_before=NOW - 900 * D, not_after=NOW + 2 * D,
                       status="superseded")
    return path


def test_json_lists_only_active_items_within_the_window_and_exits_1(instance: Path) -> None:
    result = run(["check-expiry", "--json", "--at", AT], instance, **ADMIN)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == {
        "checked_at": AT,
        "days": 30,
        "items": [{"nip": "5261040828", "name": "Alfa sp. z o.o.", "method": "portal_certs", "kind": "certificate",
                   "ksef_type": "Authentication", "serial": "0A1", "valid_to": "2026-12-11T09:00:00Z",
                   "days_left": 10, "status": "Unchecked"}],
    }


def test_nothing_within_a_short_window_exits_0_in_words(instance: Path) -> None:
    result = run(["check-expiry", "--days", "5", "--at", AT], instance, **ADMIN)
    assert result.returncode == 0, result.stderr
    assert "Nic nie wygasa w ciągu 5 dni" in result.stdout
    text = run(["check-expiry", "--at", AT], instance, **ADMIN)
    assert text.returncode == 1 and "0A1" in text.stdout and "zostało dni: 10" in text.stdout


@pytest.mark.parametrize("args", [["check-expiry", "--days", "abc"], ["check-expiry", "--days", "-1"],
                                  ["check-expiry", "--at", "yesterday"], ["check-expiry", "--bogus"]])
def test_wrong_usage_exits_2(instance: Path, args: list[str]) -> None:
    assert run(args, instance, **ADMIN).returncode == 2


def test_unseals_with_the_unattended_key_file_or_refuses_a_wrong_password(instance: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "unseal.key"
    assert run(["unseal-key", str(key_file)], instance, **ADMIN).returncode == 0
    result = run(["check-expiry", "--json", "--at", AT], instance, KLUCZNIK_UNSEAL_KEY_FILE=str(key_file))
    assert result.returncode == 1 and json.loads(result.stdout)["items"][0]["serial"] == "0A1"
    wrong = run(["check-expiry", "--at", AT], instance, KLUCZNIK_USER="admin", KLUCZNIK_PASSWORD="wrong password!")
    assert wrong.returncode == 1 and "Nieprawidłowy login lub hasło" in wrong.stderr and not wrong.stdout
