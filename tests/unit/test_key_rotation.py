"""Removing a user rotates the database key (docs/KEYS.md), crash-safely and without stopping the portal.

Real SQLCipher files, real keyring, real ``PRAGMA rekey``; interrupted rotations are produced by running
the rotation's own steps up to the point of the crash, then opening the folder with a new Store.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from klucznik.errors import InstanceDamaged
from klucznik.errors import NotFound
from klucznik.errors import StorageError
from klucznik.errors import ValidationError
from klucznik.errors import WrongCredentials
from klucznik.instance.database import open_database
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.keyring import Keyring
from klucznik.instance.store import Store
from klucznik.records import audit
from klucznik.records import clients
from klucznik.records import users
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import nips

BARTEK = "bartek"
BARTEK_PASSWORD = "bartek-password-1"


def add_client(store: Store, nip: str, name: str) -> None:
    with store.write() as db:
        clients.create_client(db, clients.validate(nip=nip, name=name), actor=ADMIN, at=NOW)


def client_names(store: Store) -> set[str]:
    with store.connect() as db:
        return {row[0] for row in db.execute("SELECT name FROM clients")}


def reopen(store: Store, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> Store:
    again = Store(store.path, kdf=TEST_KDF)
    again.login(username, password)
    return again


@pytest.fixture
def with_bartek(store: Store) -> Store:
    users.create_user(store, username=BARTEK, role="staff", password=BARTEK_PASSWORD, actor=ADMIN, at=NOW)
    return store


def test_removed_user_with_an_old_keyring_copy_opens_nothing_written_after_removal(
    with_bartek: Store, tmp_path: Path
) -> None:
    store = with_bartek
    nip_before, nip_after = nips(2, start=10)
    add_client(store, nip_before, "Przed usunięciem")
    stolen_ring = tmp_path / "stolen-keyring.json"
    shutil.copyfile(store.keyring_path, stolen_ring)
    old_key = Keyring.load(stolen_ring).unlock_user(BARTEK, BARTEK_PASSWORD)

    users.remove_user(store, username=BARTEK, actor=ADMIN, at=NOW)
    add_client(store, nip_after, "Po usunięciu")

    with pytest.raises(WrongCredentials):
        store.keyring().user_keys(BARTEK, BARTEK_PASSWORD)
    with pytest.raises(InstanceDamaged):
        open_database(store.db_path, old_key)
    # Snapshots from before the removal still open with the old key (bartek could read those anyway);
    # none of them holds anything written after it.
    for snap in store.snapshot_files():
        try:
            db = open_database(snap, old_key, readonly_checks=True)
        except InstanceDamaged:
            continue
        with db:
            assert "Po usunięciu" not in {row[0] for row in db.execute("SELECT name FROM clients")}
    assert client_names(reopen(store)) == {"Przed usunięciem", "Po usunięciu"}


def test_rotation_keeps_every_remaining_way_in(store: Store, tmp_path: Path) -> None:
    key_file = tmp_path / "unseal.key"
    store.create_unseal_key_file(key_file)
    users.create_user(store, username=BARTEK, role="staff", password=BARTEK_PASSWORD, actor=ADMIN, at=NOW)
    users.create_user(store, username="celina", role="admin", password="celina-password-1", actor=ADMIN, at=NOW)
    add_client(store, nips(1, start=20)[0], "Klient")
    epoch = store.keyring().epoch

    users.remove_user(store, username="celina", actor=ADMIN, at=NOW)

    ring = store.keyring()
    assert ring.epoch == epoch + 1 and not ring.rotation_pending
    assert ring.usernames() == [ADMIN, BARTEK]
    assert client_names(reopen(store)) == {"Klient"}
    assert client_names(reopen(store, BARTEK, BARTEK_PASSWORD)) == {"Klient"}
    by_code = Store(store.path, kdf=TEST_KDF)
    by_code.unseal_with_recovery(store.recovery_code)  # type: ignore[attr-defined]
    assert client_names(by_code) == {"Klient"}
    by_file = Store(store.path, kdf=TEST_KDF)
    by_file.unseal_with_key_file(key_file)
    assert client_names(by_file) == {"Klient"}
    with pytest.raises(WrongCredentials):
        reopen(store, "celina", "celina-password-1")
    report = store.check()
    assert report["ok"], report


def test_removal_is_audited_and_the_removed_user_is_inactive(with_bartek: Store) -> None:
    store = with_bartek
    users.remove_user(store, username=BARTEK, actor=ADMIN, ip="10.0.0.5", at=NOW)
    with store.connect() as db:
        assert users.get_user(db, BARTEK) is None
        entry = audit.query(db, action="users.remove").entries[0]
    assert (entry.actor, entry.object_id, entry.ip) == (ADMIN, BARTEK, "10.0.0.5")
    assert entry.details == {"database_key": "rotated"}


@pytest.mark.parametrize(
    ("username", "actor", "error"),
    [("nikt", ADMIN, NotFound), (ADMIN, ADMIN, ValidationError)],
)
def test_refused_removal_changes_neither_key_nor_data(with_bartek: Store, username, actor, error) -> None:
    store = with_bartek
    ring_before = store.keyring_path.read_bytes()
    db_key_before = store._require_dmk()  # noqa: SLF001
    with pytest.raises(error):
        users.remove_user(store, username=username, actor=actor, at=NOW)
    assert store.keyring_path.read_bytes() == ring_before
    assert store._require_dmk() == db_key_before  # noqa: SLF001


def test_last_administrator_cannot_be_removed(with_bartek: Store) -> None:
    store = with_bartek
    with pytest.raises(ValidationError, match="last administrator"):
        users.remove_user(store, username=ADMIN, actor=BARTEK, at=NOW)
    assert store.keyring().has_user(ADMIN)


# --- interrupted rotations ---------------------------------------------------------------------------


def crash_after_keyring_step(store: Store, *, rekeyed: bool) -> bytes:
    """Run a rotation's first step (and the rekey, if asked), then 'crash': the process forgets its key."""
    old = store._require_dmk()  # noqa: SLF001
    new = b"\x42" * 32
    ring = store.keyring()
    ring.begin_rotation(new, drop_user=BARTEK)
    ring.save()
    if rekeyed:
        with open_database(store.db_path, old) as db:
            db.execute(f"PRAGMA rekey = \"x'{new.hex()}'\"")
    store.seal()
    return new


@pytest.mark.parametrize("rekeyed", [False, True], ids=["before-rekey", "after-rekey"])
def test_interrupted_rotation_is_settled_at_the_next_login(with_bartek: Store, rekeyed: bool) -> None:
    store = with_bartek
    add_client(store, nips(1, start=30)[0], "Zapisany przed awarią")
    new = crash_after_keyring_step(store, rekeyed=rekeyed)

    again = reopen(store)
    assert client_names(again) == {"Zapisany przed awarią"}
    assert again.last_unseal is not None and again.last_unseal.moved_aside is None
    ring = again.keyring()
    assert not ring.rotation_pending
    assert (again._require_dmk() == new) is rekeyed  # noqa: SLF001
    assert ring.user_keys(ADMIN, ADMIN_PASSWORD).current == again._require_dmk()  # noqa: SLF001
    # The slot was dropped in the first step either way: a half-done removal fails closed.
    with pytest.raises(WrongCredentials):
        reopen(store, BARTEK, BARTEK_PASSWORD)
    assert again.check()["ok"]


def test_copy_with_a_pre_rotation_keyring_and_a_rekeyed_database_restores_from_a_snapshot(
    with_bartek: Store, tmp_path: Path
) -> None:
    # The order a backup tool copies files in is not ours to choose: keyring.json may be copied before
    # the rotation and the database after it.
    store = with_bartek
    add_client(store, nips(1, start=40)[0], "Przed kopią")
    old_ring = store.keyring_path.read_bytes()
    users.remove_user(store, username=BARTEK, actor=ADMIN, at=NOW)
    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    (copy / "keyring.json").write_bytes(old_ring)

    restored = Store(copy, kdf=TEST_KDF)
    restored.login(ADMIN, ADMIN_PASSWORD)
    assert client_names(restored) == {"Przed kopią"}
    assert restored.last_unseal is not None and restored.last_unseal.restored_from is not None


def test_copy_whose_keyring_was_copied_after_two_more_rotations_still_opens(
    with_bartek: Store, tmp_path: Path
) -> None:
    # A backup tool copied the database and the snapshots, then (two removals later) keyring.json.
    store = with_bartek
    users.create_user(store, username="celina", role="staff", password="celina-password-1", actor=ADMIN, at=NOW)
    add_client(store, nips(1, start=60)[0], "Przed kopią")
    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    users.remove_user(store, username=BARTEK, actor=ADMIN, at=NOW)
    users.remove_user(store, username="celina", actor=ADMIN, at=NOW)
    shutil.copyfile(store.keyring_path, copy / "keyring.json")

    restored = Store(copy, kdf=TEST_KDF)
    restored.login(ADMIN, ADMIN_PASSWORD)
    assert client_names(restored) == {"Przed kopią"}
    # The copy now runs under the keyring's current key, not under a key a removed user once had.
    assert restored._require_dmk() == restored.keyring().user_keys(ADMIN, ADMIN_PASSWORD).current  # noqa: SLF001
    assert restored.check()["ok"]


# --- concurrency -------------------------------------------------------------------------------------


def test_rotation_waits_for_other_threads_connections_and_gives_up_cleanly(with_bartek: Store) -> None:
    store = with_bartek
    store.rotation_wait = 0.3
    opened = threading.Event()
    release = threading.Event()

    def reader() -> None:
        with store.connect() as db:
            db.execute("SELECT count(*) FROM clients").fetchone()
            opened.set()
            release.wait(10)

    thread = threading.Thread(target=reader)
    thread.start()
    opened.wait(10)
    ring_before = store.keyring_path.read_bytes()
    try:
        with pytest.raises(StorageError, match="busy"):
            users.remove_user(store, username=BARTEK, actor=ADMIN, at=NOW)
    finally:
        release.set()
        thread.join(10)
    assert store.keyring_path.read_bytes() == ring_before
    with store.connect() as db:
        assert users.get_user(db, BARTEK) is not None
    users.remove_user(store, username=BARTEK, actor=ADMIN, at=NOW)  # free now
    assert not store.keyring().has_user(BARTEK)


def test_connections_opened_during_a_rotation_wait_and_get_the_new_key(with_bartek: Store) -> None:
    store = with_bartek
    add_client(store, nips(1, start=50)[0], "Klient")
    results: list[object] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                with store.connect() as db:
                    results.append(db.execute("SELECT count(*) FROM clients").fetchone()[0])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        users.remove_user(store, username=BARTEK, actor=ADMIN, at=NOW)
        users.create_user(store, username="darek", role="staff", password="darek-password-1", actor=ADMIN, at=NOW)
        users.remove_user(store, username="darek", actor=ADMIN, at=NOW)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == []
    assert results and set(results) == {1}
    assert store.keyring().epoch == 3


def test_a_login_whose_slot_was_read_before_a_rotation_still_succeeds(with_bartek: Store) -> None:
    store = with_bartek
    keys_read_before = store.keyring().user_keys(ADMIN, ADMIN_PASSWORD)  # Argon2id takes ~0.3 s in production
    users.remove_user(store, username=BARTEK, actor=ADMIN, at=NOW)
    store.unseal(keys_read_before)  # no "key does not match" for a login that raced the removal
    assert store._require_dmk() != keys_read_before.current  # noqa: SLF001


def test_another_process_unsealing_mid_rotation_reads_the_keyring_again_instead_of_restoring(
    with_bartek: Store,
) -> None:
    # A second process (here: a second Store, e.g. `klucznik check`) read keyring.json just before the
    # portal rotated the key. Its old key opens only old snapshots; it must not "restore" over the live file.
    store = with_bartek
    add_client(store, nips(1, start=70)[0], "Klient")
    other = Store(store.path, kdf=TEST_KDF)
    stale = other.keyring().user_keys(ADMIN, ADMIN_PASSWORD)
    users.remove_user(store, username=BARTEK, actor=ADMIN, at=NOW)
    add_client(store, nips(1, start=71)[0], "Po rotacji")

    result = other.unseal(stale, reload=lambda: other.keyring().user_keys(ADMIN, ADMIN_PASSWORD))
    assert result.restored_from is None and result.moved_aside is None
    assert client_names(other) == {"Klient", "Po rotacji"}
    assert not list(store.path.glob("damaged-*"))


def test_password_changes_during_rotations_are_neither_lost_nor_lose_the_new_key(with_bartek: Store) -> None:
    # keyring.json is read, changed and saved by both; one change at a time, so neither overwrites the other.
    store = with_bartek
    passwords = [BARTEK_PASSWORD, *(f"bartek-password-{n}x" for n in range(2, 12))]
    errors: list[BaseException] = []

    def change_passwords() -> None:
        try:
            for old, new in zip(passwords, passwords[1:], strict=False):
                store.change_password(BARTEK, old, new)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=change_passwords)
    thread.start()
    for n in range(5):
        users.create_user(store, username=f"tymczasowy{n}", role="staff", password="temporary-pass-1", actor=ADMIN, at=NOW)
        users.remove_user(store, username=f"tymczasowy{n}", actor=ADMIN, at=NOW)
    thread.join(30)
    assert errors == []
    ring = store.keyring()
    assert ring.usernames() == [ADMIN, BARTEK]
    assert ring.user_keys(BARTEK, passwords[-1]).current == store._require_dmk()  # noqa: SLF001
    assert client_names(reopen(store, BARTEK, passwords[-1])) == set()
