"""``snapshots/snapshot-<key id>.db``: the database as it was at one generation, and rebuilding from it.

A snapshot is a byte copy of the live database (main file plus SQLite's log, see
:func:`klucznik.instance.walfile.materialize`), so the page images in ``changes.log`` apply to it page for
page. It is written to a temporary file, fsynced and renamed over the previous one; it is never changed in
place. :func:`rebuild` copies it and applies the log: that is how an unseal restores the database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from klucznik.errors import InstanceDamaged
from klucznik.instance import segments
from klucznik.instance import walfile
from klucznik.instance.database import DatabaseError
from klucznik.instance.database import generation
from klucznik.instance.database import integrity_report
from klucznik.instance.database import open_database
from klucznik.instance.database import open_immutable
from klucznik.instance.files import FILE_MODE
from klucznik.instance.files import fsync_dir

SNAPSHOT_GLOB = "snapshot-*.db"
LOG_NAME = "changes.log"


def snapshot_name(dmk: bytes) -> str:
    """``snapshot-<key id>.db``: one name per key, so a key rotation never replaces the old key's snapshot.

    A copy of instance/ whose keyring.json was copied before a rotation and whose snapshots/ after it
    still finds the old key's snapshot (kept for ``snapshot_min_age``) and the old key's chunks.
    """
    return f"snapshot-{segments.key_id(dmk).hex()[:16]}.db"


def snapshot_files(folder: Path) -> list[Path]:
    """Every snapshot in ``folder``, the most recently written first."""
    found = []
    for path in folder.glob(SNAPSHOT_GLOB):
        with contextlib.suppress(OSError):
            found.append((path.stat().st_mtime_ns, path))
    return [path for _mtime, path in sorted(found, reverse=True)]


@dataclass(frozen=True)
class Rebuilt:
    path: Path  # the rebuilt database (a temporary file beside the snapshots), checked
    generation: int
    key: bytes  # the key it opens with
    base_generation: int
    snapshot: str  # the name of the snapshot it was rebuilt from


def snapshot_key(path: Path, keys: list[bytes]) -> tuple[bytes, int] | None:
    """The first of ``keys`` that opens the snapshot ``path`` (read as an immutable file), and its generation."""
    for key in keys:
        try:
            with open_immutable(path, key) as db:
                return key, generation(db)
        except (InstanceDamaged, DatabaseError):
            continue
    return None


def temporary(folder: Path, suffix: str = ".db") -> Path:
    return folder / f".tmp-{secrets.token_hex(6)}{suffix}"


def rebuild(folder: Path, keys: list[bytes]) -> Rebuilt | None:
    """The snapshot that, with the log, restores the highest generation, rebuilt into a checked temporary file.

    Every snapshot that opens with one of ``keys`` is a candidate; the log's chunks under its key that
    follow it are applied. None if no candidate opens or passes both checks.
    """
    state = segments.read(folder / LOG_NAME)
    chunks = state.chunks if state else []
    candidates = []
    for path in snapshot_files(folder):
        # The name says which key opens the file: try that key only (other keys only for a renamed file).
        named = [key for key in keys if snapshot_name(key) == path.name]
        found = snapshot_key(path, named or keys)
        if found is not None:
            key, base_gen = found
            reached, applied = segments.replay(chunks, base_gen, segments.key_id(key))
            candidates.append((reached, base_gen, path, key, applied))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    for reached, base_gen, path, key, applied in candidates:
        tmp = _apply(path, applied, key, reached)
        if tmp is not None:
            return Rebuilt(
                path=tmp, generation=reached, key=key, base_generation=base_gen, snapshot=path.name
            )
    return None


def _apply(snapshot: Path, applied: list[segments.Chunk], key: bytes, reached: int) -> Path | None:
    tmp = temporary(snapshot.parent)
    try:
        shutil.copyfile(snapshot, tmp)
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb+") as out:
            for chunk in applied:
                walfile.apply_pages(out, chunk.pages, chunk.db_pages)
            out.flush()
            os.fsync(out.fileno())
        with open_database(tmp, key) as db:
            ok = integrity_report(db)["ok"] and generation(db) == reached
    except (InstanceDamaged, DatabaseError, OSError):
        ok = False
    if not ok:
        remove_database(tmp)
        return None
    return tmp


def remove_database(path: Path) -> None:
    for sfx in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(f"{path}{sfx}").unlink()


def install(tmp: Path, dest: Path) -> None:
    """Rename the fsynced ``tmp`` to ``dest`` and make the rename durable."""
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
