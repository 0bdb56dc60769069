"""The sealed, encrypted instance: one SQLCipher database, its keyring and its snapshots.

``instance/`` holds ``klucznik.db`` (SQLCipher 4, raw 32-byte key), ``keyring.json`` (wrapped copies of
that key, see :mod:`klucznik.keyring`) and ``snapshots/``.

**Copying ``instance/`` at any moment is a backup.** A raw copy of a live WAL database taken during a
write can be torn or silently old (docs/KEYS.md, "Copies"). So every write transaction, before it is
acknowledged, also leaves a complete encrypted snapshot: ``VACUUM INTO`` a temporary file, fsync,
rename to ``snapshots/klucznik-<generation>.db``, fsync of the folder. Each database carries a
generation number that every write increments. When the instance is unsealed, the live database and
the snapshots are checked (``integrity_check``, ``cipher_integrity_check``) and the valid one with the
highest generation wins; a damaged live database is moved aside, never deleted.
Snapshots are pruned only when they are both older than ``snapshot_min_age`` seconds and not among
the newest ``keep_snapshots``, so a copy tool that listed one has time to read it.

**Removing a user changes the key** (:meth:`Store.rotate_key`): ``PRAGMA rekey`` under a new key sealed
to the remaining slots, in steps that a crash or a copy may cut at any point; the keyring keeps recently
retired keys for the remaining slots, and unsealing tries every key it has, settles an interrupted
rotation and re-encrypts a copy found under an older key.

The database file itself (opening, checks, rekey) is :mod:`klucznik.instance.database`.
"""

from __future__ import annotations

import contextlib
import hmac
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
from klucznik.text import Text

DB_NAME = "klucznik.db"
KEYRING_NAME = "keyring.json"
SNAPSHOT_DIR = "snapshots"
_SNAPSHOT_RE = re.compile(r"^klucznik-(\d{12})\.db$")

_RELOAD_PAUSE = 0.5
"""Seconds to wait before reading keyring.json again when the database opens with none of its keys."""


class _WouldRestore(Exception):
    """:meth:`Store._recover` would move files aside; the caller may first read the keyring again."""


@dataclass(frozen=True)
class UnsealResult:
    """What happened while unsealing: which copy was used, and what was moved aside."""

    generation: int
    restored_from: str | None = None
    moved_aside: str | None = None


class Store:
    """The instance folder; sealed until :meth:`unseal` is given the database key.

    Thread-safe: waitress serves requests from several threads of one process, and the key lives only
    in this object's memory.
    """

    def __init__(
        self,
        instance_path: Path | str,
        *,
        kdf: KdfParams = DEFAULT_KDF,
        keep_snapshots: int = 3,
        snapshot_min_age: float = 120.0,
    ) -> None:
        self.path = Path(instance_path)
        self.kdf = kdf
        self.keep_snapshots = keep_snapshots
        self.snapshot_min_age = snapshot_min_age
        self._dmk: bytes | None = None
        self._known: list[bytes] = []  # every key this process opened the instance with, newest first
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._keyring_lock = threading.Lock()
        self.last_unseal: UnsealResult | None = None
        # Connections handed out by connect(), by the thread that opened them; a key rotation waits until
        # only its own thread has any open (see _exclusive).
        self._gate = threading.Condition()
        self._open: dict[int, int] = {}
        self._rotating_thread: int | None = None
        self.rotation_wait = 30.0

    # -- paths and state -----------------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def keyring_path(self) -> Path:
        return self.path / KEYRING_NAME

    @property
    def snapshot_path(self) -> Path:
        return self.path / SNAPSHOT_DIR

    def snapshots(self) -> list[tuple[int, Path]]:
        """``(generation, path)`` of every complete snapshot, newest first."""
        if not self.snapshot_path.is_dir():
            return []
        found = []
        for entry in self.snapshot_path.iterdir():
            match = _SNAPSHOT_RE.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
        return sorted(found, reverse=True)

    def state(self) -> str:
        """``new`` (nothing set up), ``sealed`` or ``unsealed``; :class:`InstanceDamaged` if half there."""
        if self._dmk is not None:
            return "unsealed"
        has_keyring = self.keyring_path.exists()
        has_data = self.db_path.exists() or bool(self.snapshots())
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
            with self.connect() as db:
                migrations.apply(db)
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
            self.last_unseal = UnsealResult(generation=1)
            return code

    def unseal(self, keys: bytes | Keys, *, reload: Callable[[], Keys] | None = None) -> UnsealResult:
        """Open the instance with ``keys``; pick the newest valid copy (see the module docstring).

        ``keys`` is what a slot opened: besides the current key, the pending key of an interrupted rotation
        and the keys retired by recent ones, so a copy of ``instance/`` taken at any moment of a rotation
        opens. An interrupted rotation is settled here: finished if the database already has the new key,
        abandoned if it still has the old one. ``reload`` reads the slot again: if the live database opens
        with none of ``keys`` (another process may be rotating the key right now), it is called once after
        a pause, before anything would be restored from a snapshot.
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
            try:
                result, opened = self._recover(keys.candidates(), restore=reload is None)
            except _WouldRestore:
                assert reload is not None
                time.sleep(_RELOAD_PAUSE)
                keys = reload()
                result, opened = self._recover(keys.candidates(), restore=True)
            dmk, rekeyed = self._settle_rotation(keys, opened)
            self._dmk = dmk
            self._known = [dmk, *keys.candidates()]
            with self.connect() as db:
                snapshots = self.snapshots()
                if migrations.pending(db):
                    migrations.apply(db)
                    self._snapshot(db)
                elif rekeyed:
                    # A snapshot under the key now in use (the newest ones may have the old key).
                    with self._write_lock, self._transaction(db):
                        pass
                elif not snapshots or snapshots[0][0] < generation(db):
                    # The process stopped between a commit and its snapshot (or a copy of instance/ missed
                    # the newest snapshot): make one now, so the folder is a backup again.
                    self._snapshot(db)
            self.last_unseal = result
            return result

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

    def seal(self) -> None:
        """Forget the key: every page leads to the login again."""
        with self._lock:
            self._dmk = None
            self._known = []

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

    def _recover(self, keys: list[bytes], *, restore: bool = True) -> tuple[UnsealResult, bytes]:
        """Pick the valid copy with the highest generation; move aside what is newer but does not open.

        A newer snapshot that opens with none of ``keys`` is damaged, or (in a copy of ``instance/``
        whose files were copied on either side of a key rotation) under a key this keyring never had;
        either way it is moved aside with a damaged live database, never deleted, so that the newest
        snapshot is always one the key in use opens.
        """
        live = self._open_with(self.db_path, keys) if self.db_path.exists() else None
        best: tuple[int, Path, bytes] | None = None
        unreadable: list[Path] = []
        for gen, snap in self.snapshots():
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
                    "Baza danych nie otwiera się tym kluczem albo jest uszkodzona, a żadna kopia w "
                    "instance/snapshots/ nie jest poprawna. Przywróć folder instance/ z kopii zapasowej.",
                    "The database does not open with this key or is damaged, and no copy in "
                    "instance/snapshots/ is valid. Restore the instance/ folder from a backup.",
                )
            )
        if not restore and (best is not None or unreadable):
            raise _WouldRestore
        aside = self.path / f"damaged-{utcnow().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
        to_move = list(unreadable)
        if best is not None:
            to_move += [
                p for p in (Path(f"{self.db_path}{sfx}") for sfx in ("", "-wal", "-shm")) if p.exists()
            ]
        if to_move:
            aside.mkdir(mode=0o700)
            for src in to_move:
                os.replace(src, aside / src.name)
            fsync_dir(self.snapshot_path)
        moved = str(aside) if to_move else None
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
        """A new connection (raw key, about 0.1 ms); the caller closes it."""
        me = threading.get_ident()
        with self._gate:
            # While a rotation waits or runs, only threads that already hold a connection (which may open
            # a second one) and the rotating thread go on; others wait, so the rotation cannot starve.
            self._gate.wait_for(lambda: self._rotating_thread in (None, me) or me in self._open.values())
            db = open_database(self.db_path, self._require_dmk())
            assert isinstance(db, Connection)
            self._open[id(db)] = me
            db.on_close = self._closed
        return db

    def _closed(self, db: Connection) -> None:
        with self._gate:
            self._open.pop(id(db), None)
            self._gate.notify_all()

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
        """One write transaction: ``BEGIN IMMEDIATE`` … generation + 1, ``COMMIT``, snapshot.

        When the block returns, the change is durable in the database *and* in a snapshot, so it may be
        acknowledged to the user.
        """
        own = db is None
        db = db or self.connect()
        try:
            with self._write_lock, self._transaction(db):
                yield db
        finally:
            if own:
                db.close()

    @contextlib.contextmanager
    def _transaction(self, db: Database) -> Iterator[None]:
        """The body of :meth:`write`, for a caller that holds ``_write_lock``."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            db.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._snapshot(db)

    def _vacuum_copy(self, db: Database, target: Path) -> Database:
        """``VACUUM INTO target``: a consistent encrypted copy of ``db``, made durable and opened for reading."""
        private_file(target)  # empty, mode 0600: VACUUM INTO fills it
        db.execute("VACUUM INTO ?", [str(target)])
        with open(target, "rb+") as fh:
            os.fsync(fh.fileno())
        return open_database(target, self._require_dmk(), readonly_checks=True)

    def _snapshot(self, db: Database) -> Path:
        """Write a complete, checked snapshot of ``db`` under its generation's name."""
        private_dir(self.snapshot_path)
        tmp = self.snapshot_path / f".tmp-{secrets.token_hex(6)}.db"
        try:
            with self._vacuum_copy(db, tmp) as snap:
                gen = generation(snap)
            final = self.snapshot_path / f"klucznik-{gen:012d}.db"
            if final.exists():
                tmp.unlink()
            else:
                os.replace(tmp, final)
                fsync_dir(self.snapshot_path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._prune()
        return final

    def _prune(self) -> None:
        """Remove snapshots beyond the newest ``keep_snapshots``, and leftovers of crashes, once old enough.

        A crash during VACUUM INTO leaves ``.tmp-*.db`` (and its ``-journal``): a full copy of the database
        that nothing would ever remove; a snapshot being written keeps a fresh mtime, so only old ones go.
        Likewise a crash during ``write_atomic`` leaves ``.keyring.json.<hex>.tmp``: an old keyring that may
        still hold a removed user's slot or a slot for a changed password.
        """
        now = time.time()
        old_snapshots = [path for _gen, path in self.snapshots()[self.keep_snapshots :]]
        leftovers = [*self.snapshot_path.glob(".tmp-*"), *self.path.glob(f".{KEYRING_NAME}.*.tmp")]
        for path in old_snapshots + leftovers:
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > self.snapshot_min_age:
                    path.unlink()

    # -- backup and checks --------------------------------------------------------------------------------

    def check(self) -> dict[str, object]:
        """Integrity of the live database and of the newest snapshot."""
        with self.connect() as db:
            report = {"database": integrity_report(db), "generation": generation(db)}
        snaps = self.snapshots()
        if snaps:
            report["snapshot"] = {"name": snaps[0][1].name, **self._snapshot_report(snaps[0][1])}
        report["ok"] = bool(report["database"]["ok"]) and bool(report.get("snapshot", {"ok": True})["ok"])
        return report

    def _snapshot_report(self, path: Path) -> dict[str, object]:
        """Both checks of a snapshot, opened with the key in use or, just after a rotation, the previous one."""
        for key in [self._require_dmk(), *self._known]:
            try:
                snap = open_database(path, key, readonly_checks=True)
            except InstanceDamaged:
                continue
            with snap:
                return integrity_report(snap)
        return {
            "ok": False,
            "integrity_check": ["the file does not open with any key of this instance"],
            "cipher_integrity_check": [],
        }

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
        entry), bumps the generation and leaves a snapshot, (4) the pending key becomes current and the
        old one *previous*. An unseal after a crash tries every key and settles (see :meth:`unseal`).
        Other threads' connections must close first and writes wait; returns the new generation.
        """
        with self._lock, self._exclusive(), self._write_lock, self._keyring_lock:
            old = self._require_dmk()
            if check is not None:
                with open_database(self.db_path, old) as db:
                    check(db)
            new = secrets.token_bytes(32)
            ring = self.keyring()
            if ring.rotation_pending:
                ring.abandon_rotation()
            ring.begin_rotation(new, drop_user=drop_user)
            ring.save()
            rekey(self.db_path, old, new)
            self._dmk = new
            self._known.insert(0, new)
            try:
                with open_database(self.db_path, new) as db:
                    with self._transaction(db):
                        if record is not None:
                            record(db)
                    return generation(db)
            finally:
                # The file has the new key now, whatever ``record`` did.
                ring.finish_rotation(old, new)
                ring.save()

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
