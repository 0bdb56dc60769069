"""The keyring: user slots, the recovery slot, the unattended slot, rotation and damaged files.

Real Argon2id (cheap parameters), real X25519/AES-GCM; nothing is mocked. The "unknown user costs a
KDF" test wraps the real derivation to count calls, it does not replace it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from klucznik.errors import InstanceDamaged
from klucznik.errors import ValidationError
from klucznik.errors import WrongCredentials
from klucznik.instance import keyring as keyring_module
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.keyring import Keyring
from klucznik.instance.keyring import Keys
from klucznik.instance.keyring import new_recovery_code
from klucznik.instance.keyring import validate_password
from klucznik.instance.keyring import validate_username
from klucznik.instance.keyring import write_atomic


@pytest.fixture
def dmk() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def ring(tmp_path: Path, dmk: bytes) -> Keyring:
    ring, code = Keyring.create(tmp_path / "keyring.json", dmk)
    ring.recovery_code = code  # type: ignore[attr-defined]
    ring.add_user("anna", "anna-password-1", dmk, TEST_KDF)
    ring.add_user("bartek", "bartek-password-1", dmk, TEST_KDF)
    ring.save()
    return ring


def test_create_and_unlock_after_reload(ring: Keyring, dmk: bytes) -> None:
    loaded = Keyring.load(ring.path)
    assert loaded.usernames() == ["anna", "bartek"]
    assert loaded.epoch == 1
    assert loaded.unlock_user("anna", "anna-password-1") == dmk
    assert loaded.unlock_user("bartek", "bartek-password-1") == dmk


def test_file_holds_no_key_or_password(ring: Keyring, dmk: bytes) -> None:
    text = ring.path.read_bytes()
    for secret in (dmk, dmk.hex().encode(), b"anna-password-1", ring.recovery_code.encode()):  # type: ignore[attr-defined]
        assert secret not in text
    stored = json.loads(text)
    assert stored["users"]["anna"]["kdf"] == {
        "alg": "argon2id",
        "time_cost": 1,
        "memory_kib": 1024,
        "parallelism": 1,
    }


@pytest.mark.parametrize("password", ["anna-password-2", "ANNA-PASSWORD-1", "", "anna-password-1 "])
def test_wrong_password_is_wrong_credentials(ring: Keyring, password: str) -> None:
    with pytest.raises(WrongCredentials) as info:
        ring.unlock_user("anna", password)
    assert "Caps Lock" in info.value.message_en
    assert "Nieprawidłowy login lub hasło" in info.value.message_pl


def test_unknown_user_costs_a_key_derivation_and_says_the_same(
    ring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int]] = []
    real = keyring_module.derive_password_key

    def counting(password, salt, kdf):  # noqa: ANN001, ANN202 - same signature as the real one
        calls.append((kdf.time_cost, kdf.memory_kib, kdf.parallelism))
        return real(password, salt, kdf)

    monkeypatch.setattr(keyring_module, "derive_password_key", counting)
    with pytest.raises(WrongCredentials) as unknown:
        ring.unlock_user("nobody", "whatever-password")
    with pytest.raises(WrongCredentials) as wrong:
        ring.unlock_user("anna", "whatever-password")
    # One derivation each, with the stored (same) parameters: the two cannot be told apart.
    assert calls == [(1, 1024, 1), (1, 1024, 1)]
    assert unknown.value.message_en == wrong.value.message_en
    assert unknown.value.message_pl == wrong.value.message_pl


def test_change_password_keeps_other_slots_and_the_key(ring: Keyring, dmk: bytes) -> None:
    before = json.loads(ring.path.read_text())
    ring.change_password("anna", "anna-password-1", "a brand new password")
    ring.save()
    after = Keyring.load(ring.path)
    assert after.unlock_user("anna", "a brand new password") == dmk
    with pytest.raises(WrongCredentials):
        after.unlock_user("anna", "anna-password-1")
    assert after.data["users"]["bartek"] == before["users"]["bartek"]
    assert after.data["recovery"] == before["recovery"]
    assert after.data["users"]["anna"]["public_key"] == before["users"]["anna"]["public_key"]
    assert after.data["users"]["anna"]["dmk"] == before["users"]["anna"]["dmk"]
    assert after.data["users"]["anna"]["salt"] != before["users"]["anna"]["salt"]
    assert after.unlock_user("bartek", "bartek-password-1") == dmk


def test_change_password_needs_the_current_one(ring: Keyring) -> None:
    before = json.dumps(ring.data, sort_keys=True)
    with pytest.raises(WrongCredentials):
        ring.change_password("anna", "not-the-password", "a brand new password")
    assert json.dumps(ring.data, sort_keys=True) == before


def test_recovery_code_unlocks_and_is_normalised(ring: Keyring, dmk: bytes) -> None:
    code: str = ring.recovery_code  # type: ignore[attr-defined]
    assert len(code.replace("-", "")) == 26
    assert set(code.replace("-", "")) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert ring.unlock_recovery(code) == dmk
    assert ring.unlock_recovery(code.lower()) == dmk
    assert ring.unlock_recovery(code.replace("-", "")) == dmk
    assert ring.unlock_recovery("  " + code.replace("-", " ") + "\n") == dmk


def test_recovery_code_wrong_short_or_bad_characters(ring: Keyring) -> None:
    other = new_recovery_code()
    with pytest.raises(WrongCredentials) as wrong:
        ring.unlock_recovery(other)
    assert "nie pasuje" in wrong.value.message_pl
    with pytest.raises(WrongCredentials) as short:
        ring.unlock_recovery("ABCD-EFGH")
    assert "26" in short.value.message_pl
    with pytest.raises(WrongCredentials) as bad:
        ring.unlock_recovery("9" * 26)  # 9 is not base32 (0, 1 and 8 are read as the letters O, I and B)
    assert "liter A–Z i cyfr 2–7" in bad.value.message_pl


def test_recovery_codes_are_random() -> None:
    assert len({new_recovery_code() for _ in range(50)}) == 50


def test_unattended_key(ring: Keyring, dmk: bytes) -> None:
    machine_key = secrets.token_bytes(32)
    with pytest.raises(WrongCredentials):
        ring.unlock_unattended(machine_key)  # not configured yet
    ring.set_unattended(machine_key, dmk)
    ring.save()
    loaded = Keyring.load(ring.path)
    assert loaded.unlock_unattended(machine_key) == dmk
    with pytest.raises(WrongCredentials):
        loaded.unlock_unattended(secrets.token_bytes(32))
    assert machine_key.hex().encode() not in ring.path.read_bytes()


def test_rotation_seals_the_new_key_to_every_remaining_slot_and_never_to_the_dropped_user(
    ring: Keyring, dmk: bytes
) -> None:
    machine_key = secrets.token_bytes(32)
    ring.set_unattended(machine_key, dmk)
    new_dmk = secrets.token_bytes(32)
    ring.begin_rotation(new_dmk, drop_user="bartek")
    ring.save()

    pending = Keyring.load(ring.path)
    assert pending.rotation_pending and pending.epoch == 1
    assert pending.user_keys("anna", "anna-password-1") == Keys(dmk, new_dmk)
    assert pending.recovery_keys(ring.recovery_code) == Keys(dmk, new_dmk)  # type: ignore[attr-defined]
    assert pending.unattended_keys(machine_key) == Keys(dmk, new_dmk)
    with pytest.raises(WrongCredentials):
        pending.user_keys("bartek", "bartek-password-1")

    pending.finish_rotation(dmk, new_dmk)
    pending.save()
    done = Keyring.load(ring.path)
    assert not done.rotation_pending and done.epoch == 2
    assert done.user_keys("anna", "anna-password-1") == Keys(new_dmk, None, (dmk,))
    assert done.recovery_keys(ring.recovery_code) == Keys(new_dmk, None, (dmk,))  # type: ignore[attr-defined]
    assert done.unattended_keys(machine_key) == Keys(new_dmk, None, (dmk,))
    assert done.usernames() == ["anna"]
    text = ring.path.read_bytes()
    assert new_dmk not in text and new_dmk.hex().encode() not in text


def test_previous_keys_are_kept_for_a_day_newest_first_and_the_newest_always(ring: Keyring, dmk: bytes) -> None:
    keys = [dmk, *(secrets.token_bytes(32) for _ in range(3))]
    start = 1_800_000_000.0
    for n, (old, new) in enumerate(zip(keys, keys[1:], strict=False)):
        ring.begin_rotation(new)
        ring.finish_rotation(old, new, now=start + n * 60)
    assert ring.user_keys("anna", "anna-password-1") == Keys(keys[3], None, (keys[2], keys[1], keys[0]))
    # A day later the next rotation keeps only the key it retires and those retired within the day.
    newest = secrets.token_bytes(32)
    ring.begin_rotation(newest)
    ring.finish_rotation(keys[3], newest, now=start + 120 + keyring_module.RETAIN_PREVIOUS_SECONDS)
    assert ring.user_keys("anna", "anna-password-1") == Keys(newest, None, (keys[3],))
    assert ring.epoch == 5


def test_abandoned_rotation_forgets_the_pending_key(ring: Keyring, dmk: bytes) -> None:
    ring.begin_rotation(secrets.token_bytes(32))
    ring.abandon_rotation()
    ring.save()
    loaded = Keyring.load(ring.path)
    assert not loaded.rotation_pending and loaded.epoch == 1
    assert loaded.user_keys("anna", "anna-password-1") == Keys(dmk)
    assert "pending_dmk" not in ring.path.read_text()


def test_pending_and_previous_copies_are_bound_to_their_role(ring: Keyring, dmk: bytes) -> None:
    # A pending (or previous) copy moved into the current field must not open: the AAD names the role.
    new_dmk = secrets.token_bytes(32)
    ring.begin_rotation(new_dmk)
    slot = ring.data["users"]["anna"]
    slot["dmk"] = slot["pending_dmk"]
    with pytest.raises(InstanceDamaged):
        ring.user_keys("anna", "anna-password-1")
    ring.data["users"]["bartek"]["pending_dmk"] = ring.data["users"]["bartek"]["dmk"]
    with pytest.raises(InstanceDamaged):
        ring.user_keys("bartek", "bartek-password-1")


def test_slot_bound_to_its_user_and_epoch(ring: Keyring) -> None:
    # Copying anna's sealed key into bartek's slot must not open: the AAD binds user and epoch.
    ring.data["users"]["bartek"]["dmk"] = ring.data["users"]["anna"]["dmk"]
    with pytest.raises(InstanceDamaged):
        ring.unlock_user("bartek", "bartek-password-1")
    ring.data["epoch"] = 7
    with pytest.raises(InstanceDamaged):
        ring.unlock_user("anna", "anna-password-1")


def test_remove_user(ring: Keyring) -> None:
    ring.remove_user("bartek")
    ring.save()
    loaded = Keyring.load(ring.path)
    assert loaded.usernames() == ["anna"]
    with pytest.raises(WrongCredentials):
        loaded.unlock_user("bartek", "bartek-password-1")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\xff garbage \x81",
        b"{not json",
        b"[]",
        b'{"format": "something-else", "version": 1, "epoch": 1, "users": {}}',
        b'{"format": "klucznik-keyring", "version": 99, "epoch": 1, "users": {}}',
        b'{"format": "klucznik-keyring", "version": 1, "epoch": "1", "users": {}}',
        b'{"format": "klucznik-keyring", "version": 1, "epoch": 1, "users": []}',
    ],
)
def test_damaged_or_foreign_keyring_is_instance_damaged(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keyring.json"
    path.write_bytes(content)
    with pytest.raises(InstanceDamaged) as info:
        Keyring.load(path)
    assert "keyring.json" in info.value.message_pl


def test_missing_keyring_is_instance_damaged(tmp_path: Path) -> None:
    with pytest.raises(InstanceDamaged):
        Keyring.load(tmp_path / "keyring.json")


def test_truncated_keyring_is_instance_damaged(ring: Keyring) -> None:
    data = ring.path.read_bytes()
    ring.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InstanceDamaged):
        Keyring.load(ring.path)


def test_tampered_slot_fields_are_instance_damaged(ring: Keyring) -> None:
    del ring.data["users"]["anna"]["private_key"]
    with pytest.raises(InstanceDamaged):
        ring.unlock_user("anna", "anna-password-1")
    ring.data["users"]["bartek"]["salt"] = "not base64!"
    with pytest.raises(InstanceDamaged):
        ring.unlock_user("bartek", "bartek-password-1")


def test_atomic_write_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "keyring.json"
    for i in range(20):
        write_atomic(target, f"version {i}".encode())
    assert target.read_bytes() == b"version 19"
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]
    assert target.stat().st_mode & 0o777 == 0o600


def test_save_leaves_only_the_keyring(ring: Keyring) -> None:
    for _ in range(5):
        ring.save()
    assert sorted(p.name for p in ring.path.parent.iterdir()) == ["keyring.json"]


@pytest.mark.parametrize("name", ["Anna", " anna ", "a.b-c_d", "x1"])
def test_valid_usernames_are_lower_cased(name: str) -> None:
    assert validate_username(name) == name.strip().lower()


@pytest.mark.parametrize("name", ["", "a", "łukasz", "anna kowalska", "-anna", "a" * 33, "anna@biuro"])
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_username(name)
    assert info.value.field == "username"


def test_password_rules() -> None:
    assert validate_password("twelve chars") == "twelve chars"
    assert validate_password("🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑") == "🔑" * 12
    for bad in ("", "eleven char", "x" * 1025):
        with pytest.raises(ValidationError):
            validate_password(bad)
