"""The sealed SQLCipher store: setup, seal/unseal, restarts, snapshots, recovery of a damaged live file.

Every test works on a real instance folder (SQLCipher file, keyring.json, snapshots/). "Restart" means a
new :class:`Store` object over the same folder, as after a process restart.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import time
from pathlib import Path

import pytest

from klucznik.clock import iso
from klucznik.errors import InstanceDamaged
from klucznik.errors import Sealed
from klucznik.errors import StorageError
from klucznik.errors import ValidationError
from klucznik.errors import WrongCredentials
from klucznik.instance import segments
from klucznik.instance import snapshots
from klucznik.instance import walfile
from klucznik.instance.database import generation
from klucznik.instance.database import integrity_report
from klucznik.instance.database import open_database
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import add_clients
from tests.support.instances import nips
from tests.support.instances import tree


def restart(store: Store, **kwargs) -> Store:  # noqa: ANN003
    """A new Store over the same folder: sealed, as after a process restart."""
    return Store(store.path, kdf=TEST_KDF, **kwargs)


def client_names(store: Store) -> list[str]:
    db = store.connect()
    try:
        return [row[0] for row in db.execute("SELECT name FROM clients ORDER BY id")]
    finally:
        db.close()


def restart_and_login(store: Store) -> Store:
    again = restart(store)
    again.login(ADMIN, ADMIN_PASSWORD)
    return again


def current_generation(store: Store) -> int:
    db = store.connect()
    try:
        return generation(db)
    finally:
        db.close()


# -- setup ------------------------------------------------------------------------------------------------


def test_new_folder_is_new_and_setup_creates_the_instance(instance_path: Path) -> None:
    store = Store(instance_path, kdf=TEST_KDF)
    assert store.state() == "new"
    assert not instance_path.exists()
    code = store.setup("Admin", ADMIN_PASSWORD, at=NOW)
    assert store.state() == "unsealed"
    assert sorted(p.name for p in instance_path.iterdir() if not p.name.startswith("klucznik.db-")) == [
        "keyring.json",
        "klucznik.db",
        "snapshots",
    ]
    assert sorted(p.name for p in store.snapshot_path.iterdir()) == ["changes.log", store.snapshot_file.name]
    info = store.snapshot_info()
    assert info["snapshot_generation"] == 0 and info["log_generation"] == 1  # the first write is in the log
    assert current_generation(store) == 1
    assert len(code.replace("-", "")) == 26
    db = store.connect()
    try:
        assert [(r["username"], r["role"], r["must_change_password"]) for r in db["users"].rows] == [
            ("admin", "admin", 0)
        ]
        assert [r["action"] for r in db["audit_log"].rows] == ["instance.setup"]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA cipher_version").fetchone()[0]  # really SQLCipher
    finally:
        db.close()


def test_setup_twice_is_refused(store: Store) -> None:
    with pytest.raises(ValidationError):
        store.setup("other", "other-password-1", at=NOW)
    with pytest.raises(ValidationError):
        restart(store).setup("other", "other-password-1", at=NOW)
    assert store.keyring().usernames() == [ADMIN]


def test_setup_validates_before_creating_anything(instance_path: Path) -> None:
    store = Store(instance_path, kdf=TEST_KDF)
    with pytest.raises(ValidationError):
        store.setup("admin", "short", at=NOW)
    with pytest.raises(ValidationError):
        store.setup("Łucja Nowak", ADMIN_PASSWORD, at=NOW)
    assert not instance_path.exists()
    assert store.state() == "new"


# -- seal, unseal, restart -----------------------------------------------------------------------------------


def test_sealed_store_refuses_connections(store: Store) -> None:
    store.seal()
    assert store.state() == "sealed"
    with pytest.raises(Sealed):
        store.connect()
    with pytest.raises(Sealed), store.write():
        pass
    store.login(ADMIN, ADMIN_PASSWORD)
    assert store.state() == "unsealed"


def test_login_after_restart_sees_the_data(store: Store) -> None:
    add_clients(store, [("Piekarnia Żurek", nips(1)[0])])
    again = restart(store)
    assert again.state() == "sealed"
    with pytest.raises(Sealed):
        again.connect()
    with pytest.raises(WrongCredentials):
        again.login(ADMIN, "wrong-password-1")
    assert again.state() == "sealed"
    again.login(ADMIN, ADMIN_PASSWORD)
    assert client_names(again) == ["Piekarnia Żurek"]
    assert again.last_unseal is not None and again.last_unseal.restored_from is None


def test_unseal_with_recovery_code_after_restart(store: Store) -> None:
    add_clients(store, [("Firma A", nips(1)[0])])
    again = restart(store)
    with pytest.raises(WrongCredentials):
        again.unseal_with_recovery("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GG")
    again.unseal_with_recovery(store.recovery_code.lower())  # type: ignore[attr-defined]
    assert client_names(again) == ["Firma A"]


def test_wrong_key_or_foreign_database_is_damaged_and_nothing_changes(store: Store, tmp_path: Path) -> None:
    add_clients(store, [("Firma A", nips(1)[0])])
    before = tree(store.path)
    again = restart(store)
    with pytest.raises(InstanceDamaged) as info:
        again.unseal(secrets.token_bytes(32))
    assert "kopii zapasowej" in info.value.message_pl
    assert again.is_sealed
    assert tree(store.path) == before  # nothing created, moved or deleted

    # Another instance's database (and snapshots) next to our keyring: our password opens our keyring
    # but the key does not open the database.
    other = Store(tmp_path / "other", kdf=TEST_KDF)
    other.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    add_clients(other, [("Obca firma", nips(1, start=50)[0])])
    other.seal()
    shutil.rmtree(store.path / "snapshots")
    shutil.copytree(other.path / "snapshots", store.path / "snapshots")
    shutil.copyfile(other.path / "klucznik.db", store.path / "klucznik.db")
    before = tree(store.path)
    foreign = restart(store)
    with pytest.raises(InstanceDamaged):
        foreign.login(ADMIN, ADMIN_PASSWORD)
    assert foreign.is_sealed
    assert tree(store.path) == before


def test_open_database_never_creates_a_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    with pytest.raises(InstanceDamaged):
        open_database(missing, secrets.token_bytes(32))
    assert not missing.exists()


def test_plain_file_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8000))
    with pytest.raises(InstanceDamaged):
        open_database(path, secrets.token_bytes(32))


def test_missing_keyring_is_a_clear_damage(store: Store) -> None:
    store.keyring_path.unlink()
    again = restart(store)
    with pytest.raises(InstanceDamaged) as info:
        again.state()
    assert "keyring.json" in info.value.message_pl and "keyring.json" in info.value.message_en
    with pytest.raises(InstanceDamaged):
        again.login(ADMIN, ADMIN_PASSWORD)


def test_missing_database_and_snapshots_is_a_clear_damage(store: Store) -> None:
    store.seal()
    store.db_path.unlink()
    shutil.rmtree(store.snapshot_path)
    again = restart(store)
    with pytest.raises(InstanceDamaged) as info:
        again.state()
    assert "brakuje bazy danych" in info.value.message_pl
    with pytest.raises(InstanceDamaged):
        again.login(ADMIN, ADMIN_PASSWORD)
    assert not again.db_path.exists()  # not silently re-created


# -- snapshots ------------------------------------------------------------------------------------------------


def rebuilt_names(store: Store) -> list[str]:
    """The client names in the database rebuilt from the snapshot and the log alone (as a copy would be)."""
    rebuilt = snapshots.rebuild(store.snapshot_path, [store._require_dmk()])
    assert rebuilt is not None
    try:
        with open_database(rebuilt.path, rebuilt.key, readonly_checks=True) as db:
            assert integrity_report(db)["ok"]
            return [row[0] for row in db.execute("SELECT name FROM clients ORDER BY id")]
    finally:
        snapshots.remove_database(rebuilt.path)


def test_every_write_is_appended_to_the_log_and_the_snapshot_stays(store: Store) -> None:
    start = current_generation(store)
    snapshot = store.snapshot_file.stat()
    log_size = store.log_path.stat().st_size
    names = [f"Firma {i}" for i in range(4)]
    add_clients(store, list(zip(names, nips(4), strict=True)))
    assert current_generation(store) == start + 4
    info = store.snapshot_info()
    assert info["log_generation"] == start + 4 and info["snapshot_generation"] == 0
    # O(change): the snapshot file was not rewritten, the log grew by a few pages per write.
    assert store.snapshot_file.stat().st_ino == snapshot.st_ino
    grown = store.log_path.stat().st_size - log_size
    assert 0 < grown < 4 * 16 * 4096
    # Snapshot + log alone restore every write, checked.
    assert rebuilt_names(store) == names
    assert not list(store.snapshot_path.glob(".tmp-*"))


def test_failed_write_changes_nothing_and_appends_nothing(store: Store) -> None:
    gen = current_generation(store)
    log_size = store.log_path.stat().st_size
    with pytest.raises(RuntimeError), store.write() as db:
        clients.create_client(db, clients.validate(nip=nips(1)[0], name="Firma"), actor=ADMIN, at=NOW)
        raise RuntimeError("boom")
    assert current_generation(store) == gen
    assert store.log_path.stat().st_size == log_size
    assert client_names(store) == []


def test_the_log_is_merged_and_a_new_snapshot_taken_as_it_grows(instance_path: Path) -> None:
    store = Store(instance_path, kdf=TEST_KDF, snapshot_min_age=0.0, snapshot_min_bytes=200 * 1024)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    names = [f"Firma {i} " + "x" * 250 for i in range(120)]
    add_clients(store, list(zip(names, nips(120), strict=True)))
    info = store.snapshot_info()
    assert info["snapshot_generation"] > 0  # at least one new snapshot
    assert info["log_generation"] == current_generation(store)
    assert info["log_bytes"] < 400 * 1024  # merged, never a page image per write for long
    assert rebuilt_names(store) == names
    assert restart_and_login(store).check()["ok"]


def test_a_replaced_snapshot_still_restores_with_the_new_log_for_a_while(instance_path: Path) -> None:
    """A copy that got the snapshot before a new one replaced it, and the log after: still complete."""
    store = Store(instance_path, kdf=TEST_KDF, snapshot_min_age=0.3, snapshot_min_bytes=1)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    add_clients(store, [("Firma 0", nips(1)[0])])
    old_snapshot = store.snapshot_file.read_bytes()
    time.sleep(0.35)
    add_clients(store, [("Firma 1", nips(1, start=1)[0])])  # old enough: this write takes a new snapshot
    assert store.snapshot_file.read_bytes() != old_snapshot
    copy = instance_path.parent / "copy"
    shutil.copytree(instance_path, copy)
    (copy / "snapshots" / store.snapshot_file.name).write_bytes(old_snapshot)
    for name in ("klucznik.db", "klucznik.db-wal", "klucznik.db-shm"):
        (copy / name).unlink(missing_ok=True)
    restored = Store(copy, kdf=TEST_KDF)
    restored.login(ADMIN, ADMIN_PASSWORD)
    assert client_names(restored) == ["Firma 0", "Firma 1"]
    # After the grace, the replaced snapshot's chunk is dropped at the next new log.
    time.sleep(0.35)
    add_clients(store, [("Firma 2", nips(1, start=2)[0])])
    time.sleep(0.35)
    add_clients(store, [("Firma 3", nips(1, start=3)[0])])
    chunks = segments.read(store.log_path)
    assert chunks is not None and all(time.time() - c.retired_at < 1.0 for c in chunks.chunks if c.retired_at)


def test_a_torn_tail_of_the_log_is_refused(store: Store) -> None:
    """A kill during an append leaves half a chunk: it is ignored, never applied."""
    add_clients(store, [("Firma 0", nips(1)[0])])
    complete = store.log_path.stat().st_size
    add_clients(store, [("Firma 1", nips(1, start=1)[0])])
    store.seal()
    whole = store.log_path.read_bytes()
    with open(store.log_path, "r+b") as fh:
        fh.truncate(complete + (len(whole) - complete) // 2)
    for name in ("klucznik.db", "klucznik.db-wal", "klucznik.db-shm"):
        Path(store.path / name).unlink(missing_ok=True)
    again = restart_and_login(store)
    assert client_names(again) == ["Firma 0"]  # the torn write was never acknowledged
    assert again.check()["ok"]
    # The next write does not append after the torn chunk: the log is whole again.
    add_clients(again, [("Firma 2", nips(1, start=2)[0])])
    state = segments.read(again.log_path)
    assert state is not None and not state.torn
    assert client_names(restart_and_login(again)) == ["Firma 0", "Firma 2"]


def test_a_flipped_byte_in_the_log_stops_the_replay_there(store: Store) -> None:
    add_clients(store, [("Firma 0", nips(1)[0])])
    complete = store.log_path.stat().st_size
    add_clients(store, [("Firma 1", nips(1, start=1)[0]), ("Firma 2", nips(1, start=2)[0])])
    store.seal()
    data = bytearray(store.log_path.read_bytes())
    data[complete + 200] ^= 0x01
    store.log_path.write_bytes(bytes(data))
    state = segments.read(store.log_path)
    assert state is not None and state.torn and state.valid_size == complete


def test_instance_files_are_private(store: Store) -> None:
    add_clients(store, [("Firma", nips(1)[0])])
    for path in [store.path, *store.path.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


# -- a damaged live database ----------------------------------------------------------------------------------


def _names_then_seal(store: Store, count: int) -> list[str]:
    names = [f"Firma {i}" for i in range(count)]
    add_clients(store, list(zip(names, nips(count), strict=True)))
    store.seal()  # every connection is closed: the WAL is checkpointed into klucznik.db
    assert not Path(f"{store.db_path}-wal").exists() or Path(f"{store.db_path}-wal").stat().st_size == 0
    return names


def _check_restored(store: Store, names: list[str], damaged: bytes | None) -> Path:
    again = restart(store)
    again.login(ADMIN, ADMIN_PASSWORD)
    result = again.last_unseal
    assert result is not None
    assert result.restored_from == store.snapshot_files()[0].name
    assert result.moved_aside is not None
    aside = Path(result.moved_aside)
    assert aside.parent == store.path and aside.name.startswith("damaged-")
    if damaged is not None:
        assert (aside / "klucznik.db").read_bytes() == damaged  # moved aside, never deleted
    assert client_names(again) == names
    assert again.check()["ok"]
    return aside / "klucznik.db"


def test_truncated_live_database_is_restored_from_the_newest_snapshot(store: Store) -> None:
    names = _names_then_seal(store, 5)
    size = store.db_path.stat().st_size
    with open(store.db_path, "r+b") as fh:
        fh.truncate(size // 2)
    _check_restored(store, names, store.db_path.read_bytes())


def test_flipped_bytes_in_live_database_are_detected_and_restored(store: Store) -> None:
    names = _names_then_seal(store, 5)
    data = bytearray(store.db_path.read_bytes())
    page = 4096
    assert len(data) >= 3 * page
    for offset in (page + 100, 2 * page + 2000):  # inside encrypted pages: the page HMAC fails
        data[offset] ^= 0xFF
    store.db_path.write_bytes(bytes(data))
    _check_restored(store, names, bytes(data))


def test_deleted_live_database_is_restored_from_snapshots(store: Store) -> None:
    names = _names_then_seal(store, 3)
    store.db_path.unlink()
    again = restart(store)
    assert again.state() == "sealed"
    again.login(ADMIN, ADMIN_PASSWORD)
    assert again.last_unseal is not None
    assert again.last_unseal.restored_from is not None
    assert again.last_unseal.moved_aside is None
    assert client_names(again) == names


def test_older_live_database_loses_to_a_newer_snapshot(store: Store) -> None:
    """A live file that is valid but older (e.g. a torn copy missing its WAL) is replaced."""
    first, second = nips(2)
    add_clients(store, [("Firma 0", first)])
    store.seal()
    older = store.db_path.read_bytes()
    store.login(ADMIN, ADMIN_PASSWORD)
    add_clients(store, [("Firma 1", second)])
    store.seal()
    store.db_path.write_bytes(older)
    for suffix in ("-wal", "-shm"):
        Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
    aside = _check_restored(store, ["Firma 0", "Firma 1"], None)
    # Checking the older file switched it to WAL mode (so not byte-identical), but it is kept, whole.
    kept = open_database(aside, restart_and_login(store)._require_dmk(), readonly_checks=True)
    try:
        assert kept.execute("SELECT name FROM clients").fetchall() == [("Firma 0",)]
    finally:
        kept.close()


def test_damaged_live_and_no_valid_snapshot_is_a_clear_damage_and_keeps_files(store: Store) -> None:
    _names_then_seal(store, 2)
    with open(store.db_path, "r+b") as fh:
        fh.truncate(4096)
    for path in store.snapshot_files():
        path.write_bytes(b"not a database")
    before = tree(store.path)
    again = restart(store)
    with pytest.raises(InstanceDamaged) as info:
        again.login(ADMIN, ADMIN_PASSWORD)
    assert "snapshots" in info.value.message_pl
    assert tree(store.path) == before


def test_damaged_snapshot_with_a_valid_live_database_is_moved_aside_and_taken_again(store: Store) -> None:
    names = _names_then_seal(store, 3)
    (snapshot,) = store.snapshot_files()
    damaged = snapshot.read_bytes()[:4096]
    snapshot.write_bytes(damaged)
    again = restart_and_login(store)
    assert again.last_unseal is not None and again.last_unseal.restored_from is None
    assert again.last_unseal.moved_aside is not None
    assert (Path(again.last_unseal.moved_aside) / snapshot.name).read_bytes() == damaged  # never deleted
    assert client_names(again) == names
    assert again.check()["ok"]  # a new snapshot was taken


# -- check, backup, unattended key file -----------------------------------------------------------------------


def test_check_reports_both_integrity_checks(store: Store) -> None:
    add_clients(store, [("Firma", nips(1)[0])])
    report = store.check()
    assert report["ok"] is True
    assert report["database"]["integrity_check"] == ["ok"]
    assert report["database"]["cipher_integrity_check"] == []
    assert report["snapshot"]["name"] == store.snapshot_file.name
    assert report["snapshot"]["generation"] == current_generation(store)
    assert report["generation"] == current_generation(store)


def test_backup_restores_on_a_new_machine(store: Store, tmp_path: Path) -> None:
    add_clients(store, [("Biuro Łódź", nips(1)[0])])
    dest = tmp_path / "backup"
    report = store.backup(dest)
    assert report["ok"] is True and report["generation"] == current_generation(store)
    assert sorted(p.name for p in dest.iterdir()) == ["keyring.json", "klucznik.db"]
    restored = Store(tmp_path / "elsewhere", kdf=TEST_KDF)
    shutil.copytree(dest, restored.path)
    assert restored.state() == "sealed"
    restored.login(ADMIN, ADMIN_PASSWORD)
    assert client_names(restored) == ["Biuro Łódź"]
    assert restored.check()["ok"]


def test_backup_into_an_empty_existing_folder(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "empty"
    dest.mkdir()
    assert store.backup(dest)["ok"] is True


def test_backup_refuses_a_non_empty_folder(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "something.txt").write_text("keep me")
    with pytest.raises(ValidationError) as info:
        store.backup(dest)
    assert "nie jest pusty" in info.value.message_pl
    assert [p.name for p in dest.iterdir()] == ["something.txt"]


@pytest.mark.parametrize("inside", ["", "backup", "snapshots/backup"])
def test_backup_refuses_a_folder_inside_instance(store: Store, inside: str) -> None:
    dest = store.path / inside if inside else store.path
    before = tree(store.path)
    with pytest.raises(ValidationError):
        store.backup(dest)
    assert tree(store.path) == before


def test_backup_needs_the_portal_unsealed(store: Store, tmp_path: Path) -> None:
    store.seal()
    with pytest.raises(Sealed):
        store.backup(tmp_path / "b")


def test_unattended_key_file_outside_instance(store: Store, tmp_path: Path) -> None:
    key_file = tmp_path / "unseal.key"
    store.create_unseal_key_file(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_text = key_file.read_text().strip()
    assert key_text.encode() not in store.keyring_path.read_bytes()
    again = restart(store)
    again.unseal_with_key_file(key_file)
    assert again.state() == "unsealed"
    other = tmp_path / "other.key"
    other.write_text(secrets.token_hex(32))
    with pytest.raises(WrongCredentials):
        restart(store).unseal_with_key_file(other)
    with pytest.raises(WrongCredentials):
        restart(store).unseal_with_key_file(tmp_path / "missing.key")


@pytest.mark.parametrize("inside", ["unseal.key", "snapshots/unseal.key"])
def test_unattended_key_file_refused_inside_instance(store: Store, inside: str) -> None:
    with pytest.raises(ValidationError) as info:
        store.create_unseal_key_file(store.path / inside)
    assert "instance/" in info.value.message_pl
    assert not (store.path / inside).exists()
    assert "unattended" not in store.keyring().data


def test_iso_is_utc_with_z() -> None:
    from datetime import datetime
    from datetime import timedelta
    from datetime import timezone

    warsaw = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 6, 1, 14, 30, 5, 999, tzinfo=warsaw)) == "2026-06-01T12:30:05Z"


def test_stale_temporary_snapshot_files_are_removed(store: Store) -> None:
    """A kill during ``VACUUM INTO`` leaves ``.tmp-*.db`` behind (seen in the kill -9 fault test)."""
    old_tmp = store.snapshot_path / ".tmp-0123456789ab.db"
    old_journal = store.snapshot_path / ".tmp-0123456789ab.db-journal"
    old_keyring = store.path / ".keyring.json.0a1b2c3d.tmp"  # a kill during the keyring's atomic write
    young_tmp = store.snapshot_path / ".tmp-ba9876543210.db"
    for path in (old_tmp, old_journal, old_keyring, young_tmp):
        path.write_bytes(b"partial file")
    old = time.time() - 3600
    for path in (old_tmp, old_journal, old_keyring):
        os.utime(path, (old, old))
    store.seal()
    restart_and_login(store)  # every unseal (and every new snapshot) removes old leftovers
    assert not old_tmp.exists() and not old_journal.exists() and not old_keyring.exists()
    assert young_tmp.exists()  # might be a snapshot being written right now


def test_a_commit_whose_log_append_failed_is_not_acknowledged_and_joins_the_log_before_the_next_write(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk filled up between SQLite's commit and the log's fsync (tests/faults/test_full_disk.py does
    it on a real small filesystem; here the moment is pinned): the write is refused with the plain message,
    and the next write first appends the missing commit, so the log restores the database exactly again."""
    add_clients(store, [("Firma 0", nips(1)[0])])
    real_append = segments.append

    def disk_full(*_args, **_kwargs) -> None:  # noqa: ANN002, ANN003
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segments, "append", disk_full)
    with pytest.raises(StorageError) as info:
        add_clients(store, [("Firma 1", nips(1, start=1)[0])])
    assert "zabrakło miejsca" in info.value.text.pl
    monkeypatch.setattr(segments, "append", real_append)
    assert store.snapshot_info()["log_generation"] == current_generation(store) - 1
    add_clients(store, [("Firma 2", nips(1, start=2)[0])])
    assert store.snapshot_info()["log_generation"] == current_generation(store)
    assert rebuilt_names(store) == client_names(store) == ["Firma 0", "Firma 1", "Firma 2"]


# -- the commit's own frames and the idle connections ------------------------------------------------------


def test_capture_commit_reads_exactly_the_one_commit_after_the_position(store: Store) -> None:
    """The write path reads its own commit up to its commit frame; capture() reads every commit."""
    values = nips(3)
    add_clients(store, [("Firma A", values[0])])
    with open(store.wal_path, "rb") as fh:
        salt = walfile.read_header(fh).salt  # type: ignore[union-attr]
    first = walfile.capture(store.wal_path, salt, 0)  # every commit in SQLite's log so far
    add_clients(store, [("Firma B", values[1])])
    b = walfile.capture_commit(store.wal_path, salt, first.position)
    assert b is not None and b.db_pages and b.pages
    assert (b.pages, b.db_pages, b.position) == _as_tuple(walfile.capture(store.wal_path, salt, first.position))
    add_clients(store, [("Firma C", values[2])])
    with open(store.wal_path, "rb") as fh:
        assert walfile.read_header(fh).salt == salt  # type: ignore[union-attr] - SQLite did not restart it
    # Two commits after the position: the frame after B's commit continues the chain, so it says so (None)
    # and the store reads the whole log instead.
    assert walfile.capture_commit(store.wal_path, salt, first.position) is None
    c = walfile.capture_commit(store.wal_path, salt, b.position)
    assert c is not None
    assert (c.pages, c.db_pages, c.position) == _as_tuple(walfile.capture(store.wal_path, salt, b.position))
    # Nothing after the last commit frame: no commit found, the position stays.
    after = walfile.capture_commit(store.wal_path, salt, c.position)
    assert after is not None and (after.pages, after.db_pages, after.position) == ({}, 0, c.position)
    # A position from a log SQLite has restarted since (other salts) reads from the start of the log.
    assert walfile.capture_commit(store.wal_path, b"\0" * 8, c.position) is None
    assert rebuilt_names(store) == ["Firma A", "Firma B", "Firma C"]


def _as_tuple(found: walfile.Capture) -> tuple[dict[int, bytes], int, int]:
    return found.pages, found.db_pages, found.position


def test_a_commit_that_bypassed_the_store_still_reaches_the_log_with_the_next_write(store: Store) -> None:
    """Every write goes through store.write(); if something committed beside it, the next write's chunk
    holds that commit too (the frame after the first commit frame continues the chain: whole log read)."""
    values = nips(3)
    add_clients(store, [("Firma A", values[0])])
    with open_database(store.db_path, store._require_dmk()) as stray:
        clients.create_client(stray, clients.validate(nip=values[1], name="Firma obok"), actor=ADMIN, at=NOW)
    add_clients(store, [("Firma C", values[2])])
    assert rebuilt_names(store) == ["Firma A", "Firma obok", "Firma C"]


def test_idle_connections_are_reused_but_never_across_a_key_change_or_a_seal(store: Store) -> None:
    db = store.connect()
    db.close()
    again = store.connect()
    assert again is db  # kept open for the next request: no new key setup
    # A connection handed back inside a transaction is closed, never handed out again.
    again.execute("BEGIN")
    again.close()
    fresh = store.connect()
    assert fresh is not again
    with pytest.raises(Exception, match="closed"):
        again.execute("SELECT 1")
    fresh.close()
    # A key rotation closes every idle connection; the ones after it have the new key. A connection the
    # rotating request held open across it (opened with the old key) is closed when handed back.
    store.add_user_slot("bartek", "Haslo-bartka-123")
    held = store.connect()
    assert held is fresh
    idle = store.connect()
    idle.close()
    store.rotate_key(drop_user="bartek")
    with pytest.raises(Exception, match="closed"):
        idle.execute("SELECT 1")
    held.close()
    with pytest.raises(Exception, match="closed"):
        held.execute("SELECT 1")
    after = store.connect()
    assert after is not held and after is not idle
    assert after.execute("SELECT count(*) FROM clients").fetchone()[0] == 0
    after.close()
    store.seal()
    with pytest.raises(Exception, match="closed"):
        after.execute("SELECT 1")
    with pytest.raises(Sealed):
        store.connect()


def test_writes_of_two_processes_in_turn_each_reach_the_log(store: Store) -> None:
    """The portal and a console command write the same instance in turn: each one's commit is appended
    whole, although SQLite's log holds the other's commits after the position this one remembered."""
    other = restart_and_login(store)  # a second process on the same folder
    values = nips(6)
    names = []
    for i, nip in enumerate(values):
        writer = store if i % 2 == 0 else other
        names.append(f"Firma {'AB'[i % 2]}{i}")
        add_clients(writer, [(names[-1], nip)])
    assert client_names(store) == names
    assert rebuilt_names(store) == names
    other.seal()
