"""The sealed, encrypted instance: one SQLCipher database, its keyring, its snapshot and its change log.

``instance/`` holds ``klucznik.db`` (SQLCipher 4, raw 32-byte key, in WAL mode), ``keyring.json``
(wrapped copies of that key, see :mod:`klucznik.instance.keyring`) and ``snapshots/`` with two files:
``snapshot-<key id>.db``, a byte copy of the database at one generation, and ``changes.log``, the encrypted pages
each commit changed since then (:mod:`klucznik.instance.segments`).

**Copying ``instance/`` at any moment is a backup.** A raw copy of a live WAL database taken during a
write can be torn or silently old. So every write transaction, before it is acknowledged, also appends
the pages it changed (the frames SQLite wrote to its own log, :mod:`klucznik.instance.walfile`) to
``changes.log`` and fsyncs it: O(change), not O(database). Snapshots are taken rarely (when the log has
grown to a share of the database, or after an hour), written to a temporary file and renamed over the
previous one; the new log keeps, for ``snapshot_min_age`` seconds, one merged chunk per replaced snapshot,
so a copy that got the older snapshot and the newer log still restores. When the instance is unsealed,
the database is rebuilt from snapshot + log and checked (``integrity_check``,
``cipher_integrity_check``); a live database that differs or is damaged is moved aside, never deleted.
docs/ARCHITECTURE.md, "Storage", gives the whole argument.

**Removing a user changes the key** (:meth:`Store.rotate_key`): ``PRAGMA rekey`` under a new key sealed
to the remaining slots, in steps that a crash or a copy may cut at any point, ending with a fresh snapshot
under the new key; the keyring keeps recently retired keys for the remaining slots, and unsealing tries
every key it has, settles an interrupted rotation and re-encrypts a copy found under an older key.

The database file itself (opening, checks, rekey) is :mod:`klucznik.instance.database`.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from klucznik.clock import iso
from klucznik.clock import utcnow
from klucznik.errors import InstanceDamaged
from klucznik.errors import Sealed
from klucznik.errors import StorageError
from klucznik.errors import ValidationError
from klucznik.errors import WrongCredentials
from klucznik.instance import segments
from klucznik.instance import snapshots
from klucznik.instance import walfile
from klucznik.instance.database import DISK_FULL
from klucznik.instance.database import Connection
from klucznik.instance.database import DatabaseError
from klucznik.instance.database import create_database
from klucznik.instance.database import generation
from klucznik.instance.database import integrity_report
from klucznik.instance.database import open_database
from klucznik.instance.database import rekey
from klucznik.instance.files import fsync_dir
from klucznik.instance.files import private_dir
from klucznik.instance.files import private_file
from klucznik.instance.files import write_atomic
from klucznik.instance.keyring import DEFAULT_KDF
from klucznik.instance.keyring import KdfParams
from klucznik.instance.keyring import Keyring
from klucznik.instance.keyring import Keys
from klucznik.instance.keyring import validate_password
from klucznik.instance.keyring import validate_username
from klucznik.instance.migrations import migrations
from klucznik.instance.snapshots import LOG_NAME
from klucznik.text import Text

try:  # advisory locks between processes; Windows has none (one process per instance there)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("klucznik.instance")

DB_NAME = "klucznik.db"
KEYRING_NAME = "keyring.json"
SNAPSHOT_DIR = "snapshots"
_LEGACY_SNAPSHOT_RE = re.compile(r"^klucznik-(\d{12})\.db$")
"""Snapshots of instances written before issue 10 (one ``VACUUM INTO`` copy per write); converted at unseal."""

_RELOAD_PAUSE = 0.5
"""Seconds to wait before reading keyring.json again when the database opens with none of its keys."""

_IDLE_CONNECTIONS = 8
"""Connections kept open for reuse (one per waitress thread): opening one with its key costs about 1.5 ms."""

_COMPACT_MIN = 256 * 1024
"""Bytes of single-commit chunks after which the current snapshot's chunks are merged into one."""

WRITE_FAILED = Text(
    "Nie udało się trwale zapisać zmiany (błąd zapisu na dysku serwera). Spróbuj ponownie; jeśli błąd "
    "wraca, sprawdź dysk serwera. Wcześniej zapisane dane są bezpieczne.",
    "The change could not be saved durably (a write error on the server's disk). Try again; if it "
    "keeps failing, check the server's disk. The data saved before is safe.",
)


def _storage_error(exc: BaseException) -> StorageError:
    """A plain-words error for a failed write to disk (full disk or another I/O error)."""
    full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        isinstance(exc, DatabaseError) and "full" in str(exc)
    )
    return StorageError(DISK_FULL if full else WRITE_FAILED)


class _WouldRestore(Exception):
    """:meth:`Store._recover` would move files aside; the caller may first read the keyring again."""


@dataclass(frozen=True)
class UnsealResult:
    """What happened while unsealing: which copy was used, and what was moved aside."""

    generation: int
    restored_from: str | None = None
    moved_aside: str | None = None


class _FileLock:
    """An advisory ``flock`` on a folder, re-entrant within one :class:`Store` (guarded by the caller's lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0

    def _open(self) -> int | None:
        if fcntl is None:
            return None
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        fd = self._open()
        if self._depth == 0 and fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def try_exclusive(self) -> bool:
        fd = self._open()
        if fd is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def shared(self) -> None:
        fd = self._open()
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._depth = 0

    def __del__(self) -> None:  # a Store dropped without seal() must not keep its locks
        with contextlib.suppress(Exception):
            self.close()


class Store:
    """The instance folder; sealed until :meth:`unseal` is given the database key.

    Thread-safe: waitress serves requests from several threads of one process, and the key lives only
    in this object's memory. Several processes may open the same folder (the portal and a console
    command): writes take an advisory lock on ``snapshots/`` from ``BEGIN`` until the change log is
    fsynced, and an unsealed store holds a shared lock on ``instance/``.
    """

    def __init__(
        self,
        instance_path: Path | str,
        *,
        kdf: KdfParams = DEFAULT_KDF,
        snapshot_min_age: float = 120.0,
        snapshot_ratio: float = 0.25,
        snapshot_min_bytes: int = 1 << 20,
        snapshot_interval: float = 3600.0,
    ) -> None:
        self.path = Path(instance_path)
        self.kdf = kdf
        # A replaced snapshot's changes stay in the log this long (longer than any copy of instance/
        # takes), and snapshots are not taken more often unless the key changes.
        self.snapshot_min_age = snapshot_min_age
        self.snapshot_ratio = snapshot_ratio
        self.snapshot_min_bytes = snapshot_min_bytes
        self.snapshot_interval = snapshot_interval
        self._dmk: bytes | None = None
        self._known: list[bytes] = []  # every key this process opened the instance with, newest first
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._keyring_lock = threading.Lock()
        self.last_unseal: UnsealResult | None = None
        # Connections handed out by connect(), by the thread that opened them; a key rotation waits until
        # only its own thread has any open (see _exclusive).
        self._gate = threading.Condition()
        self._open: dict[int, int] = {}
        self._idle: list[Connection] = []  # closed by their users, kept open for reuse
        self._rotating_thread: int | None = None
        self.rotation_wait = 30.0
        # The change log as this process last saw it (guarded by _write_lock and the writer lock).
        self._writer = _FileLock(self.snapshot_path)
        self._alive = _FileLock(self.path)
        self._log: segments.LogState | None = None
        self._snapshot_id: tuple[int, int] = (0, 0)  # (inode, mtime_ns) of the snapshot when read
        self._base_path: Path | None = None
        self._base_gen = 0
        self._base_size = 0
        self._base_time = 0.0
        self._reached = 0  # the generation snapshot + log restore
        self._wal_salt: bytes | None = None
        self._wal_pos = 0
        # One connection held open while unsealed: SQLite keeps its -wal and -shm files (a connection's close
        # never checkpoints and deletes them), so reading keeps working on a full disk.
        self._keeper: Database | None = None

    # -- paths and state -----------------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def wal_path(self) -> Path:
        return self.path / f"{DB_NAME}-wal"

    @property
    def keyring_path(self) -> Path:
        return self.path / KEYRING_NAME

    @property
    def snapshot_path(self) -> Path:
        """The folder ``snapshots/``."""
        return self.path / SNAPSHOT_DIR

    @property
    def snapshot_file(self) -> Path:
        """The snapshot under the key in use (``snapshot-<key id>.db``)."""
        return self.snapshot_path / snapshots.snapshot_name(self._require_dmk())

    def snapshot_files(self) -> list[Path]:
        """Every snapshot (the current key's, and a replaced key's for a while after a rotation)."""
        return snapshots.snapshot_files(self.snapshot_path) if self.snapshot_path.is_dir() else []

    @property
    def log_path(self) -> Path:
        return self.snapshot_path / LOG_NAME

    def legacy_snapshots(self) -> list[tuple[int, Path]]:
        """``(generation, path)`` of every snapshot an older version left (one per write), newest first."""
        if not self.snapshot_path.is_dir():
            return []
        found = []
        for entry in self.snapshot_path.iterdir():
            match = _LEGACY_SNAPSHOT_RE.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
        return sorted(found, reverse=True)

    def snapshot_info(self) -> dict[str, object]:
        """The snapshot's generation, the generation snapshot + log restore, and the files' sizes."""
        with self._write_lock, self._writer.exclusive():
            self._refresh()
            return {
                "snapshot_generation": self._base_gen,
                "log_generation": self._reached,
                "snapshot_bytes": self._base_size,
                "log_bytes": self._log.valid_size if self._log else 0,
                "log_chunks": len(self._log.chunks) if self._log else 0,
            }

    def state(self) -> str:
        """``new`` (nothing set up), ``sealed`` or ``unsealed``; :class:`InstanceDamaged` if half there."""
        if self._dmk is not None:
            return "unsealed"
        has_keyring = self.keyring_path.exists()
        has_data = self.db_path.exists() or bool(self.snapshot_files()) or bool(self.legacy_snapshots())
        if not has_keyring and not has_data:
            return "new"
        if not has_keyring:
            raise InstanceDamaged(
                Text(
                    "W folderze instance/ brakuje pliku keyring.json: kopia zapasowa musi obejmować cały folder. "
                    "Przywróć go z kopii.",
                    "instance/keyring.json is missing: a backup must hold the whole folder. Restore it.",
                )
            )
        if not has_data:
            raise InstanceDamaged(
                Text(
                    "W folderze instance/ jest keyring.json, ale brakuje bazy danych. Przywróć cały folder z kopii.",
                    "instance/ has keyring.json but no database. Restore the whole folder from a backup.",
                )
            )
        return "sealed"

    @property
    def is_sealed(self) -> bool:
        return self._dmk is None

    def keyring(self) -> Keyring:
        return Keyring.load(self.keyring_path)

    @contextlib.contextmanager
    def _editing_keyring(self) -> Iterator[Keyring]:
        """Read, change and save ``keyring.json``, one change at a time (a rotation holds the lock throughout).

        Whoever holds ``_keyring_lock`` never waits for a connection or for ``_write_lock`` meanwhile, so
        it cannot deadlock with a rotation (which takes ``_lock``, then waits for connections, then
        ``_write_lock``, then ``_keyring_lock``).
        """
        with self._keyring_lock:
            ring = self.keyring()
            yield ring
            ring.save()

    def _harden(self) -> None:
        """Folders 0700, files 0600: only the portal's own account reads instance/ (docs/KEYS.md)."""
        for folder in (self.path, self.snapshot_path):
            with contextlib.suppress(OSError):
                os.chmod(folder, 0o700)
        for folder in (self.path, self.snapshot_path):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                with contextlib.suppress(OSError):
                    if entry.is_file():
                        os.chmod(entry, 0o600)
                    elif entry.is_dir():
                        os.chmod(entry, 0o700)

    # -- setup, unseal, seal ---------------------------------------------------------------------------

    def setup(self, username: str, password: str, *, at: datetime) -> str:
        """Create the instance with its first administrator; returns the recovery code (show it once)."""
        username = validate_username(username)
        validate_password(password)
        with self._lock:
            if self.state() != "new":
                raise ValidationError(
                    Text("Portal jest już skonfigurowany.", "The portal is already set up.")
                )
            private_dir(self.path)
            private_dir(self.snapshot_path)
            dmk = secrets.token_bytes(32)
            ring, code = Keyring.create(self.keyring_path, dmk)
            ring.add_user(username, password, dmk, self.kdf)
            # The database is created only after the keyring exists: never a key nobody can open.
            ring.save()
            create_database(self.db_path, dmk)
            self._dmk = dmk
            self._known = [dmk]
            self._alive.try_exclusive()
            self._alive.shared()
            with self.connect() as db, self._write_lock, self._writer.exclusive():
                migrations.apply(db)
                self._new_snapshot(db)
            moment = iso(at)
            with self.write() as db:
                db["users"].insert(
                    {
                        "username": username,
                        "role": "admin",
                        "active": 1,
                        "must_change_password": 0,
                        "created_at": moment,
                    }
                )
                db["audit_log"].insert(
                    {
                        "at": moment,
                        "actor": username,
                        "action": "instance.setup",
                        "object_type": "user",
                        "object_id": username,
                        "details": "{}",
                    }
                )
            self._harden()
            self._open_keeper()
            self.last_unseal = UnsealResult(generation=1)
            return code

    def unseal(self, keys: bytes | Keys, *, reload: Callable[[], Keys] | None = None) -> UnsealResult:
        """Open the instance with ``keys``; rebuild and check the database (see the module docstring).

        ``keys`` is what a slot opened: besides the current key, the pending key of an interrupted rotation
        and the keys retired by recent ones, so a copy of ``instance/`` taken at any moment of a rotation
        opens. An interrupted rotation is settled here: finished if the database already has the new key,
        abandoned if it still has the old one. ``reload`` reads the slot again: if the live database opens
        with none of ``keys`` (another process may be rotating the key right now), it is called once after
        a pause, before anything would be restored.
        """
        keys = Keys(keys) if isinstance(keys, bytes) else keys
        with self._lock:
            if self._dmk is not None:
                # The slot already proved the credentials; its keys may predate a rotation done meanwhile.
                if not any(
                    hmac.compare_digest(known, key) for known in self._known for key in keys.candidates()
                ):
                    raise InstanceDamaged(
                        Text(
                            "Klucz nie pasuje do otwartej bazy.", "The key does not match the open database."
                        )
                    )
                return self.last_unseal or UnsealResult(generation=-1)
            private_dir(self.snapshot_path)
            with self._write_lock, self._writer.exclusive():
                alone = self._alive.try_exclusive()
                try:
                    try:
                        result, opened = self._recover(keys.candidates(), restore=reload is None, alone=alone)
                    except _WouldRestore:
                        assert reload is not None
                        time.sleep(_RELOAD_PAUSE)
                        keys = reload()
                        result, opened = self._recover(keys.candidates(), restore=True, alone=alone)
                    dmk, rekeyed = self._settle_rotation(keys, opened)
                    self._dmk = dmk
                    self._known = [dmk, *keys.candidates()]
                    with self.connect() as db:
                        changed = bool(migrations.pending(db))
                        if changed:
                            migrations.apply(db)
                        self._refresh()
                        if (
                            changed
                            or rekeyed
                            or not self._chain_matches(dmk)
                            or self._reached != generation(db)
                        ):
                            # An older instance, a rekeyed copy, a migration, or a commit the log never got:
                            # a new snapshot, so the folder is a backup again.
                            self._new_snapshot(db)
                    self._remove_legacy_snapshots()
                    self._harden()
                except BaseException:
                    self._dmk = None
                    self._known = []
                    self._alive.close()
                    raise
                self._alive.shared()
                self._open_keeper()
            self.last_unseal = result
            return result

    def _chain_matches(self, dmk: bytes) -> bool:
        """Whether the snapshot of ``dmk`` (the key the database has now) exists and opens with it."""
        path = self.snapshot_path / snapshots.snapshot_name(dmk)
        return path.is_file() and snapshots.snapshot_key(path, [dmk]) is not None

    def _settle_rotation(self, keys: Keys, opened: bytes) -> tuple[bytes, bool]:
        """The key the database must have after an interrupted rotation, and whether it changed.

        The keyring's pending key wins if the database already has it (the rotation is finished), else
        the pending key is forgotten. Then, if the database opened only with a key other than the
        keyring's current one (a copy whose files come from either side of a rotation), it is rekeyed to
        the current one, so a removed user's old key never opens anything written from now on.
        """
        target = keys.current
        with self._keyring_lock:
            ring = self.keyring()
            if ring.rotation_pending and keys.pending is not None:
                if hmac.compare_digest(opened, keys.pending):
                    ring.finish_rotation(keys.current, keys.pending)
                    target = keys.pending
                else:
                    ring.abandon_rotation()
                ring.save()
        if hmac.compare_digest(opened, target):
            return target, target is keys.pending
        rekey(self.db_path, opened, target)
        return target, True

    def _open_keeper(self) -> None:
        self._close_keeper()
        self._keeper = open_database(self.db_path, self._require_dmk())

    def _close_keeper(self) -> None:
        if self._keeper is not None:
            with contextlib.suppress(DatabaseError):
                self._keeper.close()
            self._keeper = None

    def seal(self) -> None:
        """Forget the key: every page leads to the login again."""
        with self._lock:
            self._dmk = None
            self._known = []
            self._drop_idle()
            with self._write_lock:
                self._close_keeper()
                self._alive.close()
                self._writer.close()
                self._log = None
                self._snapshot_id = (0, 0)
                self._wal_salt = None

    def login(self, username: str, password: str) -> None:
        """Check ``password`` against ``username``'s slot; the first login after a start unseals."""
        self.unseal(
            self.keyring().user_keys(username, password),
            reload=lambda: self.keyring().user_keys(username, password),
        )

    def unseal_with_recovery(self, code: str) -> None:
        self.unseal(self.keyring().recovery_keys(code), reload=lambda: self.keyring().recovery_keys(code))

    def unseal_with_key_file(self, key_file: Path) -> None:
        """Unattended unseal with the key file kept outside ``instance/``."""
        try:
            machine_key = bytes.fromhex(Path(key_file).read_text("ascii").strip())
        except (OSError, ValueError, UnicodeDecodeError):
            raise WrongCredentials(
                Text(
                    f"Nie można odczytać pliku klucza odblokowania {key_file}.",
                    f"Cannot read the unseal key file {key_file}.",
                )
            ) from None
        self.unseal(
            self.keyring().unattended_keys(machine_key),
            reload=lambda: self.keyring().unattended_keys(machine_key),
        )

    def create_unseal_key_file(self, key_file: Path) -> None:
        """Write a new unattended-unseal key to ``key_file`` (outside ``instance/``) and add its slot."""
        key_file = Path(key_file).resolve()
        if self.path.resolve() in key_file.parents:
            raise ValidationError(
                Text(
                    "Plik klucza odblokowania nie może leżeć w folderze instance/ (kopia folderu zdradziłaby klucz).",
                    "The unseal key file must not be inside instance/ (a copy of the folder would reveal it).",
                )
            )
        self._require_dmk()  # sealed: refuse before writing a key file
        machine_key = secrets.token_bytes(32)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, machine_key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._editing_keyring() as ring:
            ring.set_unattended(machine_key, self._require_dmk())

    def _require_dmk(self) -> bytes:
        dmk = self._dmk
        if dmk is None:
            raise Sealed(
                Text(
                    "Portal jest zablokowany: zaloguj się, aby go odblokować.",
                    "The portal is sealed: log in to unseal it.",
                )
            )
        return dmk

    def _candidate(self, path: Path, dmk: bytes) -> int | None:
        """The generation of ``path`` if it opens with ``dmk`` and passes both checks, else None."""
        try:
            with open_database(path, dmk) as db:
                return generation(db) if integrity_report(db)["ok"] else None
        except (InstanceDamaged, DatabaseError):
            return None

    def _open_with(self, path: Path, keys: list[bytes]) -> tuple[int, bytes] | None:
        """``(generation, key)`` for the first of ``keys`` that opens ``path`` as a valid copy."""
        for key in keys:
            gen = self._candidate(path, key)
            if gen is not None:
                return gen, key
        return None

    def _live_files(self) -> list[Path]:
        return [p for p in (Path(f"{self.db_path}{sfx}") for sfx in ("", "-wal", "-shm")) if p.exists()]

    def _move_aside(self, paths: list[Path]) -> str | None:
        """Move ``paths`` into a new ``damaged-<moment>`` folder of instance/ (never deleted); its path."""
        if not paths:
            return None
        aside = self.path / f"damaged-{utcnow().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
        aside.mkdir(mode=0o700)
        for src in paths:
            os.replace(src, aside / src.name)
        fsync_dir(self.snapshot_path)
        fsync_dir(self.path)
        return str(aside)

    def _install(self, rebuilt: Path) -> None:
        """The rebuilt database becomes the live one (the live files were moved aside or are redundant)."""
        for path in self._live_files():
            path.unlink()
        os.replace(rebuilt, self.db_path)
        fsync_dir(self.path)

    def _recover(
        self, keys: list[bytes], *, restore: bool = True, alone: bool = True
    ) -> tuple[UnsealResult, bytes]:
        """Decide which copy becomes the live database; called with the writer lock held.

        With a snapshot present and no other process using the folder (``alone``), the database is
        rebuilt from snapshot + log and checked, and replaces the live file: silently if the live file
        has the same generation and key (a copy of instance/ may hold a torn live file that still
        passes the checks), else moving the live files aside. A live file under another key at the same
        or a higher generation is a rotation that got further than the snapshot: it wins. Without a
        usable snapshot (an instance written before issue 10, a ``klucznik backup`` folder, a damaged
        snapshot) the old rule applies: the valid copy with the highest generation.
        """
        live = self._open_with(self.db_path, keys) if self.db_path.exists() else None
        if not restore and live is None and self.db_path.exists():
            raise _WouldRestore
        if live is not None and not alone:
            return UnsealResult(generation=live[0]), live[1]
        rebuilt = snapshots.rebuild(self.snapshot_path, keys) if self.snapshot_files() else None
        if rebuilt is not None:
            if live is not None and live[1] != rebuilt.key and live[0] >= rebuilt.generation:
                snapshots.remove_database(rebuilt.path)
                return UnsealResult(generation=live[0]), live[1]
            if live is not None and live == (rebuilt.generation, rebuilt.key):
                self._install(rebuilt.path)
                return UnsealResult(generation=rebuilt.generation), rebuilt.key
            moved = self._move_aside(self._live_files())
            self._install(rebuilt.path)
            return (
                UnsealResult(
                    generation=rebuilt.generation, restored_from=rebuilt.snapshot, moved_aside=moved
                ),
                rebuilt.key,
            )
        return self._recover_legacy(keys, live)

    def _recover_legacy(
        self, keys: list[bytes], live: tuple[int, bytes] | None
    ) -> tuple[UnsealResult, bytes]:
        """The rule before issue 10: the valid copy among the live file and the legacy snapshots with the
        highest generation wins; what is newer but does not open (or a snapshot that does not
        rebuild) is moved aside, never deleted.
        """
        best: tuple[int, Path, bytes] | None = None
        unreadable: list[Path] = self.snapshot_files()
        if unreadable and self.log_path.exists():
            unreadable.append(self.log_path)
        for gen, snap in self.legacy_snapshots():
            if live is not None and gen <= live[0]:
                break
            found = self._open_with(snap, keys)
            if found is not None:
                best = (gen, snap, found[1])
                break
            unreadable.append(snap)
        if best is None and live is None:
            raise InstanceDamaged(
                Text(
                    "Baza danych nie otwiera się tym kluczem albo jest uszkodzona, a kopia w "
                    "instance/snapshots/ nie jest poprawna. Przywróć folder instance/ z kopii zapasowej.",
                    "The database does not open with this key or is damaged, and the copy in "
                    "instance/snapshots/ is not valid. Restore the instance/ folder from a backup.",
                )
            )
        to_move = list(unreadable)
        if best is not None:
            to_move += self._live_files()
        moved = self._move_aside(to_move)
        if best is None:
            assert live is not None
            return UnsealResult(generation=live[0], moved_aside=moved), live[1]
        tmp = self.path / f".restore-{secrets.token_hex(4)}.db"
        shutil.copyfile(best[1], tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.db_path)
        fsync_dir(self.path)
        return UnsealResult(generation=best[0], restored_from=best[1].name, moved_aside=moved), best[2]

    # -- connections and writes --------------------------------------------------------------------------

    def connect(self) -> Database:
        """A connection (an idle one kept from before, or a new one); the caller closes it."""
        me = threading.get_ident()
        with self._gate:
            # While a rotation waits or runs, only threads that already hold a connection (which may open
            # a second one) and the rotating thread go on; others wait, so the rotation cannot starve.
            self._gate.wait_for(lambda: self._rotating_thread in (None, me) or me in self._open.values())
            dmk = self._require_dmk()
            db = None
            while self._idle and db is None:
                db = self._idle.pop()
                if db.key != dmk:  # opened before a key change: never used again
                    db.discard()
                    db = None
            if db is None:
                db = open_database(self.db_path, dmk)
                assert isinstance(db, Connection)
                db.key = dmk
            self._open[id(db)] = me
            db.on_close = self._closed
        return db

    def _closed(self, db: Connection) -> None:
        """A connection handed back: kept for the next :meth:`connect` if it is clean, else closed."""
        with self._gate:
            self._open.pop(id(db), None)
            # Only a connection opened with the current key (one held across a rotation has the old one).
            keep = (
                self._dmk is not None
                and db.key == self._dmk
                and self._rotating_thread is None
                and len(self._idle) < _IDLE_CONNECTIONS
                and not db.conn.in_transaction
            )
            if keep:
                self._idle.append(db)
            else:
                with contextlib.suppress(DatabaseError):
                    db.discard()
            self._gate.notify_all()

    def _drop_idle(self) -> None:
        """Close every pooled connection: before a rekey, at seal."""
        with self._gate:
            while self._idle:
                with contextlib.suppress(DatabaseError):
                    self._idle.pop().discard()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Wait until no other thread has a connection open, and let none open one until the block ends.

        From the moment we start waiting, a thread without a connection waits in :meth:`connect`; a
        thread that holds one may open more (a request that holds one connection may open a second), so
        it can finish and close them: no thread ever waits for us while holding a connection we wait for.
        """
        me = threading.get_ident()
        with self._gate:
            self._gate.wait_for(lambda: self._rotating_thread is None)
            self._rotating_thread = me
            self._drop_idle()
            if not self._gate.wait_for(lambda: all(t == me for t in self._open.values()), self.rotation_wait):
                self._rotating_thread = None
                self._gate.notify_all()
                raise StorageError(
                    Text(
                        "Portal jest teraz zajęty innymi operacjami, więc nic nie zmieniono. Spróbuj za chwilę.",
                        "The portal is busy with other work, so nothing was changed. Try again shortly.",
                    )
                )
        try:
            yield
        finally:
            with self._gate:
                self._rotating_thread = None
                self._gate.notify_all()

    @contextlib.contextmanager
    def write(self, db: Database | None = None) -> Iterator[Database]:
        """One write transaction: ``BEGIN IMMEDIATE`` … generation + 1, ``COMMIT``, log append + fsync.

        When the block returns, the change is durable in the database *and* in ``changes.log``, so it may
        be acknowledged to the user. A full disk raises :class:`StorageError` with a plain message and
        nothing is acknowledged; the next write (once there is space) first makes the log whole again.
        """
        own = db is None
        db = db or self.connect()
        try:
            with self._write_lock, self._writer.exclusive():
                try:
                    self._catch_up(db)
                except (OSError, DatabaseError) as exc:
                    raise _storage_error(exc) from None
                with self._transaction(db):
                    yield db
        finally:
            if own:
                db.close()

    @contextlib.contextmanager
    def _transaction(self, db: Database) -> Iterator[None]:
        """The body of :meth:`write`, for a caller that holds ``_write_lock`` and the writer lock."""
        try:
            db.execute("BEGIN IMMEDIATE")
        except DatabaseError as exc:
            raise _storage_error(exc) from None
        try:
            yield
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            db.execute("COMMIT")
        except BaseException as exc:
            if db.conn.in_transaction:
                with contextlib.suppress(DatabaseError):
                    db.execute("ROLLBACK")
            if isinstance(exc, DatabaseError) and "full" in str(exc):
                raise _storage_error(exc) from None
            raise
        self._log_commit(db)

    # -- the change log ------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Read the snapshot's generation and key and the log's chunks again if another writer changed them."""
        try:
            stat = self.snapshot_file.stat()
            snap_id = (stat.st_ino, stat.st_mtime_ns)
        except FileNotFoundError:
            snap_id = (0, 0)
        if snap_id != self._snapshot_id or self._snapshot_id == (0, 0):
            found = (
                snapshots.snapshot_key(self.snapshot_file, [self._require_dmk(), *self._known])
                if snap_id != (0, 0)
                else None
            )
            self._base_path = self.snapshot_file if found is not None else None
            if found is None:
                self._base_gen, self._base_key = -1, b""
                self._base_size, self._base_time = 0, 0.0
            else:
                self._base_key = segments.key_id(found[0])
                self._base_gen = found[1]
                self._base_size = stat.st_size
                self._base_time = stat.st_mtime
            self._snapshot_id = snap_id
            self._log = None
        try:
            stat = self.log_path.stat()
            log_id = (stat.st_ino, stat.st_size)
        except FileNotFoundError:
            log_id = None
        if self._log is None or log_id != self._log.identity:
            self._log = segments.read(self.log_path, with_pages=False) if log_id else None
            # Another writer (a console command) changed the log or the snapshot since this process last
            # did: where SQLite's log ends is no longer known here, so the next capture reads all of it.
            self._wal_salt = None
        chunks = self._log.chunks if self._log else []
        self._reached = segments.replay(chunks, self._base_gen, self._base_key)[0]

    def _current_chunks(self) -> list[segments.Chunk]:
        """The chunks that follow the current snapshot (not those kept from replaced ones)."""
        chunks = self._log.chunks if self._log else []
        return segments.replay(chunks, self._base_gen, self._base_key)[1]

    def _catch_up(self, db: Database) -> None:
        """Before a write: the log must restore exactly the live database, else make it so first.

        A commit whose log append failed (a full disk) is appended now from SQLite's log, if SQLite has
        not restarted its log since; otherwise, or if the snapshot is under another key, a new snapshot.
        """
        self._refresh()
        live = generation(db)
        if self._base_key != segments.key_id(self._require_dmk()) or self._log is None:
            self._new_snapshot(db)
            return
        if live == self._reached:
            return
        if self._wal_salt is not None:
            with open(self.wal_path, "rb") as fh:
                header = walfile.read_header(fh)
            if header is not None and header.salt == self._wal_salt:
                found = walfile.capture(self.wal_path, self._wal_salt, self._wal_pos)
                if found.pages and found.db_pages:
                    self._append(found, live)
                    return
        self._new_snapshot(db)

    def _log_commit(self, db: Database) -> None:
        """After ``COMMIT``: append the commit's pages to the log and fsync, then the log's upkeep."""
        try:
            # With the position known (the log restores exactly the database before this commit), the
            # commit's frames are those up to its commit frame; else every commit SQLite's log holds.
            found = None
            if self._wal_salt is not None:
                found = walfile.capture_commit(self.wal_path, self._wal_salt, self._wal_pos)
            if found is None:
                found = walfile.capture(self.wal_path, self._wal_salt, self._wal_pos)
            if not found.pages or not found.db_pages:
                # Nothing to append means SQLite's log was restarted by someone else: never acknowledge.
                log.error("the commit's pages were not found in SQLite's log; a new snapshot follows")
                raise StorageError(WRITE_FAILED)
            self._append(found, generation(db))
        except (OSError, DatabaseError) as exc:
            raise _storage_error(exc) from None
        try:
            self._upkeep(db)
        except (OSError, DatabaseError, StorageError, InstanceDamaged):
            # The change is durable already; a snapshot or a merge that failed is tried again later.
            log.warning(
                "the change log's upkeep failed; it is tried again after the next write", exc_info=True
            )

    def _append(self, found: walfile.Capture, gen: int) -> None:
        assert self._log is not None
        chunk = segments.Chunk(self._reached, gen, found.db_pages, self._base_key, found.pages)
        if self._log.torn:
            whole = segments.read(self.log_path)
            assert whole is not None
            self._log = segments.rewrite(self.log_path, [*whole.chunks, chunk])
        else:
            segments.append(self.log_path, self._log, chunk)
        self._wal_salt, self._wal_pos = found.salt, found.position
        self._reached = gen

    def _upkeep(self, db: Database) -> None:
        """A new snapshot when the log has grown to a share of the database (or is old), else maybe a merge."""
        current = self._current_chunks()
        if not current:
            return
        size = sum(chunk.size() for chunk in current)
        age = time.time() - self._base_time
        threshold = max(self.snapshot_ratio * self._base_size, self.snapshot_min_bytes)
        # Twice the threshold does not wait for snapshot_min_age: instance/ stays within its bound in a burst.
        if (
            (size > threshold and age >= self.snapshot_min_age)
            or size > 2 * threshold
            or age >= self.snapshot_interval
        ):
            self._new_snapshot(db)
            return
        first = current[0].size()
        if len(current) > 1 and size - first > max(_COMPACT_MIN, first // 2):
            self._compact()

    def _kept_chunks(self, chunks: list[segments.Chunk], now: float) -> list[segments.Chunk]:
        """Chunks of replaced snapshots still within ``snapshot_min_age`` (a copy may need them)."""
        return [c for c in chunks if c.retired_at and now - c.retired_at <= self.snapshot_min_age]

    def _compact(self) -> None:
        """Merge the current snapshot's chunks into one (rewrite of the log by rename)."""
        whole = segments.read(self.log_path)
        if whole is None:
            return
        applied = segments.replay(whole.chunks, self._base_gen, self._base_key)[1]
        kept = self._kept_chunks(whole.chunks, time.time())
        self._log = segments.rewrite(self.log_path, kept + ([segments.compact(applied)] if applied else []))

    def _new_snapshot(self, db: Database, *, refresh: bool = True) -> None:
        """A snapshot of the live database now, and a new log (caller holds the write locks, ``db`` open).

        The new log keeps the chunks of replaced snapshots younger than ``snapshot_min_age`` and one
        merged chunk of the snapshot being replaced (under its key), so a copy of instance/ that got the
        old snapshot and the new log still restores everything up to now. The log is renamed into place
        first, then the snapshot: after a crash between the two, the old snapshot and the new log restore
        the same generation.
        """
        private_dir(self.snapshot_path)
        if refresh:
            self._refresh()
        gen = generation(db)
        tmp = snapshots.temporary(self.snapshot_path)
        try:
            walfile.materialize(self.db_path, self.wal_path, tmp)
            os.chmod(tmp, 0o600)
            found = snapshots.snapshot_key(tmp, [self._require_dmk()])
            if found is None or found[1] != gen:
                raise StorageError(WRITE_FAILED)
            now = time.time()
            whole = segments.read(self.log_path) if self._base_gen >= 0 else None
            chunks: list[segments.Chunk] = []
            if whole is not None:
                chunks = self._kept_chunks(whole.chunks, now)
                applied = segments.replay(whole.chunks, self._base_gen, self._base_key)[1]
                if applied:
                    chunks.append(segments.compact(applied, retired_at=now))
            new_log = segments.rewrite(self.log_path, chunks)
            snapshots.install(tmp, self.snapshot_file)
        except BaseException:
            snapshots.remove_database(tmp)
            raise
        if self._base_path is not None and self._base_path != self.snapshot_file:
            # The key changed: the old key's snapshot is kept for snapshot_min_age from now (its mtime).
            with contextlib.suppress(OSError):
                os.utime(self._base_path)
        self._base_path = self.snapshot_file
        stat = self.snapshot_file.stat()
        self._snapshot_id = (stat.st_ino, stat.st_mtime_ns)
        self._base_gen, self._base_key = gen, segments.key_id(self._require_dmk())
        self._base_size, self._base_time = stat.st_size, stat.st_mtime
        self._log = new_log
        self._reached = gen
        header = None
        with contextlib.suppress(OSError), open(self.wal_path, "rb") as fh:
            header = walfile.read_header(fh)
        # From now on, only frames after the current end of SQLite's log are new.
        found = walfile.capture(self.wal_path, None, 0) if header is not None else None
        self._wal_salt = found.salt if found else None
        self._wal_pos = found.position if found else 0
        self._prune_leftovers()

    def take_snapshot(self) -> int:
        """A new snapshot now (as the log's growth or age would trigger); returns its generation."""
        with self.connect() as db, self._write_lock, self._writer.exclusive():
            try:
                self._catch_up(db)
                self._new_snapshot(db)
            except (OSError, DatabaseError) as exc:
                raise _storage_error(exc) from None
            return self._base_gen

    def _prune_leftovers(self) -> None:
        """Remove what crashes and older versions left, once older than ``snapshot_min_age``.

        A crash while a snapshot or the log is written leaves ``.tmp-*`` or ``.changes.log.*.tmp`` (and
        a crash during ``write_atomic`` ``.keyring.json.<hex>.tmp``: an old keyring that may still hold a
        removed user's slot); an instance written before issue 10 left one snapshot per write.
        """
        now = time.time()
        leftovers = [
            *self.snapshot_path.glob(".tmp-*"),
            *self.snapshot_path.glob(f".{LOG_NAME}.*.tmp"),
            *self.path.glob(f".{KEYRING_NAME}.*.tmp"),
            *(path for _gen, path in self.legacy_snapshots()),
        ]
        for path in leftovers:
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > self.snapshot_min_age:
                    path.unlink()
        # A replaced key's snapshot (its mtime is the moment it was replaced): once older than the grace,
        # no copy that began before the rotation is still running.
        for path in self.snapshot_files():
            with contextlib.suppress(OSError):
                if path != self.snapshot_file and now - path.stat().st_mtime > self.snapshot_min_age:
                    path.unlink()

    def _remove_legacy_snapshots(self) -> None:
        """After conversion, the snapshots of an older version are kept only for ``snapshot_min_age``."""
        self._prune_leftovers()

    # -- backup and checks --------------------------------------------------------------------------------

    def _vacuum_copy(self, db: Database, target: Path) -> Database:
        """``VACUUM INTO target``: a consistent encrypted copy of ``db``, made durable and opened for reading."""
        private_file(target)  # empty, mode 0600: VACUUM INTO fills it
        db.execute("VACUUM INTO ?", [str(target)])
        with open(target, "rb+") as fh:
            os.fsync(fh.fileno())
        return open_database(target, self._require_dmk(), readonly_checks=True)

    def check(self) -> dict[str, object]:
        """Integrity of the live database, and of the database rebuilt from snapshot + log."""
        with self.connect() as db:
            report: dict[str, object] = {
                "database": integrity_report(db, checkpoint=False),
                "generation": generation(db),
            }
            with self._write_lock, self._writer.exclusive():
                live_gen = generation(db)
                rebuilt = snapshots.rebuild(self.snapshot_path, [self._require_dmk(), *self._known])
        if rebuilt is None:
            snapshot: dict[str, object] = {
                "name": self.snapshot_file.name,
                "ok": False,
                "integrity_check": ["the snapshots and changes.log do not restore a valid database"],
                "cipher_integrity_check": [],
            }
        else:
            with open_database(rebuilt.path, rebuilt.key) as copy:
                checks = integrity_report(copy)
            snapshots.remove_database(rebuilt.path)
            snapshot = {
                "name": rebuilt.snapshot,
                "snapshot_generation": rebuilt.base_generation,
                "generation": rebuilt.generation,
                **checks,
            }
            if rebuilt.generation != live_gen:
                snapshot["ok"] = False
                snapshot["integrity_check"] = [
                    f"the snapshot and changes.log restore generation {rebuilt.generation}, "
                    f"the database has {live_gen}"
                ]
        report["snapshot"] = snapshot
        report["ok"] = bool(report["database"]["ok"]) and bool(snapshot["ok"])  # type: ignore[index]
        return report

    def backup(self, dest: Path | str) -> dict[str, object]:
        """A checked hot backup into the empty or new folder ``dest``: a snapshot, keyring.json, checks."""
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise ValidationError(
                Text(
                    f"Folder {dest} nie jest pusty; wskaż nowy lub pusty folder.",
                    f"The folder {dest} is not empty; choose a new or empty folder.",
                )
            )
        if dest.resolve() == self.path.resolve() or self.path.resolve() in dest.resolve().parents:
            raise ValidationError(
                Text(
                    "Kopii nie można zapisać w folderze instance/.",
                    "A backup cannot be written inside instance/.",
                )
            )
        self._require_dmk()
        private_dir(dest)
        tmp = dest / f".{DB_NAME}.tmp"
        with self._lock:
            ring_bytes = self.keyring_path.read_bytes()
            with self.connect() as db:
                live_gen = generation(db)
                with self._vacuum_copy(db, tmp) as copy:
                    report = integrity_report(copy)
                    gen = generation(copy)
        if not report["ok"] or gen < live_gen:
            tmp.unlink()
            raise StorageError(
                Text(
                    "Kopia zapasowa nie przeszła kontroli spójności; nic nie zapisano.",
                    "The backup failed its integrity checks; nothing was written.",
                )
            )
        os.replace(tmp, dest / DB_NAME)
        write_atomic(dest / KEYRING_NAME, ring_bytes)
        fsync_dir(dest)
        return {"ok": True, "path": str(dest), "generation": gen, **report}

    # -- users' key slots --------------------------------------------------------------------------------

    def add_user_slot(self, username: str, password: str) -> None:
        """Give ``username`` a key slot for ``password`` (needs the portal unsealed)."""
        validate_password(password)
        with self._editing_keyring() as ring:
            ring.add_user(validate_username(username), password, self._require_dmk(), self.kdf)

    def remove_user_slot(self, username: str) -> None:
        """Delete ``username``'s slot without rotating (undoing a slot that never held data: a failed add)."""
        with self._editing_keyring() as ring:
            ring.remove_user(username)

    def rotate_key(
        self,
        *,
        drop_user: str | None = None,
        check: Callable[[Database], None] | None = None,
        record: Callable[[Database], None] | None = None,
    ) -> int:
        """Re-encrypt the database under a new key sealed to every slot but ``drop_user``'s.

        docs/KEYS.md, "Removing a user": a removed user who kept their password and a
        copy of the old ``keyring.json`` cannot open anything written from now on. ``check`` runs first,
        with nothing changed yet (raise to refuse); then, crash-safe at every step: (1) ``keyring.json``
        loses ``drop_user``'s slot and gets the new key as *pending* next to the current one, (2) ``PRAGMA
        rekey`` (SQLCipher rewrites every page in one transaction: the file opens with the old or the new
        key, never neither), (3) a write under the new key runs ``record`` (the change and its audit
        entry) and bumps the generation, (4) a new snapshot under the new key, whose log keeps the old
        snapshot's changes under the old key, (5) the pending key becomes current and the old one
        *previous*. An unseal after a crash tries every key and settles (see :meth:`unseal`).
        Other threads' connections must close first and writes wait; returns the new generation.
        """
        with self._lock, self._exclusive(), self._write_lock, self._writer.exclusive(), self._keyring_lock:
            old = self._require_dmk()
            with open_database(self.db_path, old) as db:
                try:
                    self._catch_up(db)  # the log restores the database before anything changes
                except (OSError, DatabaseError) as exc:
                    raise _storage_error(exc) from None
                if check is not None:
                    check(db)
            new = secrets.token_bytes(32)
            ring = self.keyring()
            if ring.rotation_pending:
                ring.abandon_rotation()
            ring.begin_rotation(new, drop_user=drop_user)
            ring.save()
            self._close_keeper()
            try:
                rekey(self.db_path, old, new)
            except BaseException:
                self._open_keeper()
                raise
            self._dmk = new
            self._known.insert(0, new)
            try:
                with open_database(self.db_path, new) as db:
                    failure: BaseException | None = None
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        if record is not None:
                            record(db)
                        db.execute(
                            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
                        )
                        db.execute("COMMIT")
                    except BaseException as exc:  # noqa: BLE001 - raised again after the snapshot
                        if db.conn.in_transaction:
                            db.execute("ROLLBACK")
                        failure = exc
                    # Whatever ``record`` did, the file has the new key now: the snapshot must have it too
                    # before anything is acknowledged (no other connection is open: a full checkpoint).
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    try:
                        # The old key's snapshot and chunks, read by _catch_up above, are kept for a while.
                        self._new_snapshot(db, refresh=False)
                    except (OSError, DatabaseError) as exc:
                        raise _storage_error(exc) from None
                    if failure is not None:
                        raise failure
                    return generation(db)
            finally:
                # The file has the new key now, whatever ``record`` did.
                ring.finish_rotation(old, new)
                ring.save()
                with contextlib.suppress(InstanceDamaged, StorageError):
                    self._open_keeper()

    def change_password(self, username: str, old: str, new: str) -> None:
        validate_password(new)
        with self._editing_keyring() as ring:
            ring.change_password(username, old, new)

    def reset_password_with_recovery(self, username: str, code: str, new_password: str) -> None:
        """A forgotten password: the recovery code proves the right to give ``username`` a new slot."""
        validate_password(new_password)
        self.unseal(self.keyring().recovery_keys(code), reload=lambda: self.keyring().recovery_keys(code))
        with self._editing_keyring() as ring:
            ring.add_user(username, new_password, self._require_dmk(), self.kdf)
