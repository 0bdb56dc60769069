"""The encrypted database file itself: opening it with its raw key, checking it, and its generation.

No module but this one imports ``sqlcipher3``: its errors are translated here, so the rest of the domain
sees :class:`~klucznik.errors.InstanceDamaged` and the two error classes re-exported below.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import sqlcipher3
from sqlite_utils import Database

from klucznik.errors import InstanceDamaged
from klucznik.errors import StorageError
from klucznik.instance.files import private_file
from klucznik.text import Text

DatabaseError = sqlcipher3.dbapi2.DatabaseError
IntegrityError = sqlcipher3.dbapi2.IntegrityError

DISK_FULL = Text(
    "Na dysku serwera zabrakło miejsca, więc tej zmiany nie zapisano trwale. Zwolnij miejsce na dysku i "
    "spróbuj ponownie; wcześniej zapisane dane są bezpieczne.",
    "The server's disk is full, so this change was not saved durably. Free some disk space and try "
    "again; the data saved before is safe.",
)

WAL_AUTOCHECKPOINT = 64
"""Pages in SQLite's log before a commit checkpoints it into the main file (256 KiB)."""


class Connection(Database):
    """A :class:`Database` the store hands out; it tells the store when it is closed (see ``rotate_key``).

    With ``on_close`` set, :meth:`close` hands the connection to it: the store either keeps it open for
    the next :meth:`Store.connect` (its pool of idle connections) or closes it with :meth:`discard`, then
    wakes a key rotation waiting for connections to close.
    """

    on_close: Callable[[Connection], None] | None = None
    key: bytes = b""  # the key it was opened with (the store's pool hands out only the current one's)

    def close(self) -> None:
        hook, self.on_close = self.on_close, None
        if hook is None:
            super().close()
            return
        try:
            hook(self)
        except BaseException:
            super().close()
            raise

    def discard(self) -> None:
        """Close for good."""
        self.on_close = None
        super().close()


def open_database(path: Path, dmk: bytes, *, readonly_checks: bool = False) -> Database:
    """Open ``path`` with the raw key ``dmk``; :class:`InstanceDamaged` if it does not open.

    Never creates a file: SQLCipher would silently make an empty database at a wrong path.
    """
    path = Path(path)
    if not path.is_file():
        raise InstanceDamaged(
            Text(f"Brak pliku bazy danych {path.name}.", f"The database file {path.name} is missing.")
        )
    private_file(path)
    conn = sqlcipher3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
    try:
        conn.execute(f"PRAGMA key = \"x'{dmk.hex()}'\"")
        conn.execute("PRAGMA cipher_compatibility = 4")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if not readonly_checks:
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL: SQLite fsyncs its log at checkpoints, not at every commit. A commit is durable once
            # the store has fsynced its pages in snapshots/changes.log, and every unseal rebuilds the
            # database from snapshot + log, so a power cut that drops the last commits from SQLite's log
            # loses nothing acknowledged (docs/ARCHITECTURE.md, "Storage").
            conn.execute("PRAGMA synchronous = NORMAL")
            # A short SQLite log: checkpoints are cheap and instance/ stays small (docs/ARCHITECTURE.md).
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_AUTOCHECKPOINT * 4096}")
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
    except DatabaseError as exc:
        conn.close()
        if "full" in str(exc):
            raise StorageError(DISK_FULL) from None
        raise InstanceDamaged(
            Text(
                "Plik bazy danych jest uszkodzony albo nie pasuje do pliku keyring.json. Przywróć cały folder "
                "instance/ z kopii zapasowej.",
                "The database file is damaged or does not belong with keyring.json. Restore the whole "
                "instance/ folder from a backup.",
            )
        ) from None
    return Connection(conn)


def open_immutable(path: Path, dmk: bytes) -> Database:
    """Open the file ``path`` that nobody writes (a snapshot) read-only, without creating -wal or -shm files."""
    path = Path(path)
    if not path.is_file():
        raise InstanceDamaged(
            Text(f"Brak pliku bazy danych {path.name}.", f"The database file {path.name} is missing.")
        )
    conn = sqlcipher3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA key = \"x'{dmk.hex()}'\"")
        conn.execute("PRAGMA cipher_compatibility = 4")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except DatabaseError:
        conn.close()
        raise InstanceDamaged(
            Text("Plik kopii nie otwiera się tym kluczem.", "The copy does not open with this key.")
        ) from None
    return Database(conn)


def integrity_report(db: Database, *, checkpoint: bool = True) -> dict[str, object]:
    """``integrity_check`` and ``cipher_integrity_check`` of ``db`` (the WAL is checkpointed first, if asked).

    The live database of a running instance is checked without a checkpoint: only the store's writer may
    restart SQLite's log (docs/ARCHITECTURE.md, "Storage").
    """
    try:
        if checkpoint:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        integrity = [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
        cipher = [row[0] for row in db.execute("PRAGMA cipher_integrity_check").fetchall()]
    except DatabaseError as exc:
        return {"ok": False, "integrity_check": [str(exc)], "cipher_integrity_check": []}
    return {
        "ok": integrity == ["ok"] and not cipher,
        "integrity_check": integrity,
        "cipher_integrity_check": cipher,
    }


def generation(db: Database) -> int:
    return int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def create_database(path: Path, dmk: bytes) -> None:
    """A new, empty SQLCipher 4 database at ``path`` keyed with the raw key ``dmk``, in WAL mode."""
    private_file(path)
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    try:
        conn.execute(f"PRAGMA key = \"x'{dmk.hex()}'\"")
        conn.execute("PRAGMA cipher_compatibility = 4")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    os.chmod(path, 0o600)


def rekey(path: Path, old: bytes, new: bytes) -> None:
    """``PRAGMA rekey`` of ``path`` from ``old`` to ``new`` (one transaction: old or new, never neither)."""
    with open_database(path, old) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute(f"PRAGMA rekey = \"x'{new.hex()}'\"")
