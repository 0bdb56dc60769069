"""Staff accounts: create (must change password), remove (slot deleted), last admin, password change, reset."""

from __future__ import annotations

import pytest

from klucznik.errors import NotFound
from klucznik.errors import ValidationError
from klucznik.errors import WrongCredentials
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import users
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW


def _actions(store: Store) -> list[tuple[str, str, str]]:
    db = store.connect()
    try:
        return [tuple(r) for r in db.execute("SELECT actor, action, object_id FROM audit_log ORDER BY id")]
    finally:
        db.close()


def test_create_user_must_change_password_and_can_log_in(store: Store) -> None:
    user = users.create_user(store, username="Ewa", role="staff", password="initial-password", actor=ADMIN, at=NOW)
    assert (user.username, user.role, user.must_change_password, user.active) == ("ewa", "staff", True, True)
    assert not user.is_admin
    assert store.keyring().usernames() == [ADMIN, "ewa"]
    assert (ADMIN, "users.create", "ewa") in _actions(store)
    again = Store(store.path, kdf=TEST_KDF)
    again.login("ewa", "initial-password")  # the new slot opens the database after a restart
    db = again.connect()
    try:
        assert [u.username for u in users.list_users(db)] == [ADMIN, "ewa"]
    finally:
        db.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": "x", "role": "staff", "password": "long-enough-pw"}, "username"),
        ({"username": "ewa", "role": "staff", "password": "short"}, "password"),
        ({"username": "ewa", "role": "owner", "password": "long-enough-pw"}, "role"),
        ({"username": ADMIN, "role": "staff", "password": "long-enough-pw"}, "username"),
    ],
)
def test_create_user_refusals_change_nothing(store: Store, kwargs: dict[str, str], field: str) -> None:
    ring_before = store.keyring_path.read_bytes()
    actions_before = _actions(store)
    with pytest.raises(ValidationError) as info:
        users.create_user(store, actor=ADMIN, at=NOW, **kwargs)
    assert info.value.field == field
    assert store.keyring_path.read_bytes() == ring_before
    assert _actions(store) == actions_before


def test_remove_user_deletes_the_slot(store: Store) -> None:
    users.create_user(store, username="ewa", role="staff", password="initial-password", actor=ADMIN, at=NOW)
    users.remove_user(store, username="ewa", actor=ADMIN, at=NOW)
    assert store.keyring().usernames() == [ADMIN]
    db = store.connect()
    try:
        assert users.get_user(db, "ewa") is None
        row = db.execute("SELECT active, removed_at FROM users WHERE username = 'ewa'").fetchone()
    finally:
        db.close()
    assert row[0] == 0 and row[1]  # kept for the audit log, inactive
    with pytest.raises(WrongCredentials):
        Store(store.path, kdf=TEST_KDF).login("ewa", "initial-password")
    assert (ADMIN, "users.remove", "ewa") in _actions(store)
    # The username is not given out again (the audit log would mix two people).
    with pytest.raises(ValidationError):
        users.create_user(store, username="ewa", role="staff", password="another-password", actor=ADMIN, at=NOW)


def test_last_admin_cannot_be_removed(store: Store) -> None:
    users.create_user(store, username="szef", role="admin", password="initial-password", actor=ADMIN, at=NOW)
    with pytest.raises(ValidationError) as own:
        users.remove_user(store, username=ADMIN, actor=ADMIN, at=NOW)
    assert "własnego" in own.value.message_pl
    users.remove_user(store, username=ADMIN, actor="szef", at=NOW)  # another admin remains
    users.create_user(store, username="ewa", role="staff", password="initial-password", actor="szef", at=NOW)
    with pytest.raises(ValidationError) as last:
        users.remove_user(store, username="szef", actor="ewa", at=NOW)
    assert "ostatni administrator" in last.value.message_pl
    assert store.keyring().usernames() == ["ewa", "szef"]


def test_remove_missing_user(store: Store) -> None:
    with pytest.raises(NotFound):
        users.remove_user(store, username="nikt", actor=ADMIN, at=NOW)


def test_change_password(store: Store) -> None:
    users.create_user(store, username="ewa", role="staff", password="initial-password", actor=ADMIN, at=NOW)
    with pytest.raises(WrongCredentials):
        users.change_password(store, username="ewa", old="not-the-password", new="my own password", at=NOW)
    with pytest.raises(ValidationError):
        users.change_password(store, username="ewa", old="initial-password", new="initial-password", at=NOW)
    with pytest.raises(ValidationError):
        users.change_password(store, username="ewa", old="initial-password", new="short", at=NOW)
    users.change_password(store, username="ewa", old="initial-password", new="my own password", at=NOW)
    db = store.connect()
    try:
        assert users.get_user(db, "ewa").must_change_password is False  # type: ignore[union-attr]
    finally:
        db.close()
    again = Store(store.path, kdf=TEST_KDF)
    with pytest.raises(WrongCredentials):
        again.login("ewa", "initial-password")
    again.login("ewa", "my own password")
    again.seal()
    again.login(ADMIN, ADMIN_PASSWORD)  # the other slot is untouched
    assert ("ewa", "users.password_change", "ewa") in _actions(again)


def test_reset_with_recovery_code_after_restart(store: Store) -> None:
    code = store.recovery_code  # type: ignore[attr-defined]
    again = Store(store.path, kdf=TEST_KDF)
    with pytest.raises(WrongCredentials):
        users.reset_password(
            again, username=ADMIN, recovery_code="ABCD" * 6 + "EF", new_password="forgotten-and-new", at=NOW
        )
    assert again.is_sealed
    with pytest.raises(ValidationError):
        users.reset_password(again, username=ADMIN, recovery_code=code, new_password="short", at=NOW)
    users.reset_password(
        again, username=ADMIN, recovery_code=code.lower().replace("-", " "), new_password="forgotten-and-new", at=NOW
    )
    assert not again.is_sealed
    third = Store(store.path, kdf=TEST_KDF)
    with pytest.raises(WrongCredentials):
        third.login(ADMIN, ADMIN_PASSWORD)
    third.login(ADMIN, "forgotten-and-new")
    assert (ADMIN, "users.password_reset", ADMIN) in _actions(third)


def test_reset_for_unknown_user(store: Store) -> None:
    ring_before = store.keyring_path.read_bytes()
    with pytest.raises(NotFound):
        users.reset_password(
            store,
            username="nikt",
            recovery_code=store.recovery_code,  # type: ignore[attr-defined]
            new_password="forgotten-and-new", at=NOW
        )
    assert store.keyring_path.read_bytes() == ring_before


def test_staff_user_has_own_slot_with_store_parameters(store: Store) -> None:
    users.create_user(store, username="ewa", role="staff", password="initial-password", actor=ADMIN, at=NOW)
    slot = store.keyring().data["users"]["ewa"]
    assert slot["kdf"]["time_cost"] == TEST_KDF.time_cost
    assert slot["public_key"] != store.keyring().data["users"][ADMIN]["public_key"]
