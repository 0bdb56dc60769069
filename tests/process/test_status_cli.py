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


# -- check-clients: the live checks, against the sandbox -------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path, sandbox_server):
    from klucznik.records import office
    from tests.fixtures.sandbox import OFFICE_NIP
    from tests.support.status import enroll_in_sandbox

    path = tmp_path / "live"
    store = Store(path, kdf=TEST_KDF)
    store.setup("admin", "admin-password-1", at=NOW)
    at = sandbox_server.state.now()
    with store.write() as db:
        office.save_office(db, office.OfficeProfile(name="Biuro Test", nip=OFFICE_NIP, ksef_environment="sandbox",
                                                    sandbox_url=sandbox_server.url), actor="admin", at=at)
        alfa = add_client(db, "5261040828", "Alfa sp. z o.o.", at=at)
        add_client(db, "7740001454", "Beta S.A.", method="grant", at=at)
    serials = enroll_in_sandbox(sandbox_server, store, alfa, "5261040828", at=at)
    return path, serials


def test_check_clients_by_nip_prints_the_ksef_statuses(live) -> None:
    path, serials = live
    result = run(["check-clients", "--nip", "526-104-08-28", "--json"], path, **ADMIN)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (item,) = report["items"]
    assert (item["nip"], item["method"], item["ok"], item["error"]) == ("5261040828", "portal_certs", True, None)
    assert item["certificates"][serials["Authentication"]]["status"] == "Active"
    assert item["certificates"][serials["Offline"]]["offline_signature"] is True


def test_check_clients_all_reports_a_failure_and_exits_1(live) -> None:
    path, _ = live
    result = run(["check-clients", "--all", "--json"], path, **ADMIN)
    assert result.returncode == 1, result.stderr
    items = {i["nip"]: i for i in json.loads(result.stdout)["items"]}
    assert items["5261040828"]["ok"] is True
    # method 1 logs in with the office's own certificate, which this office has not uploaded yet
    assert items["7740001454"]["error"]["code"] == "office_certificate_missing"
    assert "certyfikatu KSeF" in items["7740001454"]["error"]["message_pl"]
    text = run(["check-clients", "--all"], path, **ADMIN)
    assert text.returncode == 1 and "5261040828  Alfa sp. z o.o.: OK" in text.stdout


@pytest.mark.parametrize("args", [["check-clients"], ["check-clients", "--all", "--nip", "5261040828"],
                                  ["check-clients", "--nip", "123"]])
def test_check_clients_wrong_usage_exits_2(live, args) -> None:
    path, _ = live
    assert run(args, path, **ADMIN).returncode == 2


def test_check_clients_unknown_nip_is_an_error(live) -> None:
    path, _ = live
    result = run(["check-clients", "--nip", "1132853869"], path, **ADMIN)
    assert result.returncode == 1 and "Nie ma klienta z NIP 1132853869" in result.stderr


# -- remind: e-mail through a real local SMTP server ------------------------------------------------------------------


def test_remind_sends_once_per_threshold_through_smtp(instance: Path) -> None:
    from klucznik.records import smtp
    from tests.support.smtp import smtp_server

    with smtp_server() as box:
        store = Store(instance, kdf=TEST_KDF)
        store.login("admin", "admin-password-1")
        with store.write() as db:
            smtp.save_smtp(db, smtp.SmtpSettings(host="127.0.0.1", port=box.port, security="none",
                                                 sender="portal@biuro.test", recipients=("szef@biuro.test",)),
                           actor="admin", at=NOW)
        store.seal()
        first = run(["remind", "--json", "--at", AT], instance, **ADMIN)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert report["recipients"] == ["szef@biuro.test"]
        assert [(i["serial"], i["threshold"], i["days_left"]) for i in report["items"]] == [("0A1", 14, 10)]
        again = run(["remind", "--at", AT], instance, **ADMIN)
        assert again.returncode == 0 and "Nie ma nowych przypomnień" in again.stdout
        assert len(box.messages) == 1 and "0A1" in box.messages[0][2].get_content()


def test_remind_without_mail_settings_fails_plainly(instance: Path) -> None:
    result = run(["remind", "--at", AT], instance, **ADMIN)
    assert result.returncode == 1 and "Poczta nie jest skonfigurowana" in result.stderr
