"""Files that must survive a crash or a copy at any moment: atomic replacement and durable renames."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: Every file the instance writes is readable by its owner only (the folders: 0700).
FILE_MODE = 0o600
DIR_MODE = 0o700
#: What SQLite writes next to a database; it gives them the database file's mode when it creates them.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if needed; the folder itself is the owner's only (0700)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Make ``path`` the owner's only (0600), creating it empty if it does not exist.

    An empty file is what SQLite expects before ``VACUUM INTO`` or a new database, so creating it first
    gives the file (and the ``-wal``/``-shm`` files SQLite later makes next to it) mode 0600 whatever the
    umask. An existing file with a looser mode (an instance made by an older version) is tightened, and so
    are its SQLite side files.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_SIDE_FILES)):
            try:
                if candidate.stat().st_mode & 0o777 != FILE_MODE:
                    os.chmod(candidate, FILE_MODE)
            except FileNotFoundError:
                continue
    else:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
