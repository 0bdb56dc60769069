"""Reading SQLite's own write-ahead log (``klucznik.db-wal``): the encrypted pages each commit wrote.

SQLite in WAL mode appends every committed page to ``-wal`` as a *frame* (a 24-byte header and the page;
SQLCipher encrypts the page before SQLite writes it). The header of the file carries two salts and a
checksum; every frame carries the same salts and a checksum that continues the previous frame's, and a
commit's last frame carries the database size in pages. A frame counts only if its salts match the
file's and its checksum continues the chain, exactly as SQLite's own recovery decides; after a checkpoint
the next writer restarts the file from the start with new salts (docs/ARCHITECTURE.md, "Storage").

The store reads here, right after each commit and under its write locks, the frames that commit added
(:func:`capture_commit`; :func:`capture` when the end of the valid frames is not known), and copies the
current database as main file plus log into a new file (:func:`materialize`) when it takes a snapshot.
Nothing here writes to the live files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PAGE_SIZE = 4096
"""SQLCipher 4's page size (``cipher_page_size``): the size of every page in the file and in the log."""

_HEADER = 32
_FRAME_HEADER = 24
_FRAME = _FRAME_HEADER + PAGE_SIZE
_MAGIC_LE = 0x377F0682
_MAGIC_BE = 0x377F0683
_MASK = 0xFFFFFFFF


class WalError(Exception):
    """The log is not one this module can read (another page size, a foreign file)."""


@dataclass(frozen=True)
class Header:
    salt: bytes  # salt-1 and salt-2, 8 bytes: they change whenever SQLite restarts the log
    big_endian: bool
    checksum: tuple[int, int]


@dataclass
class Capture:
    """The frames of the commits found after a position: the newest image of each page, in page order."""

    pages: dict[int, bytes]
    db_pages: int  # the database size in pages after the last commit found (0: no commit found)
    salt: bytes | None  # the log's salts, to pass back to the next capture
    position: int  # the offset after the last commit frame found


def _checksum(data: bytes, big_endian: bool, s1: int, s2: int) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), continuing from ``s1, s2``."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    it = iter(words)
    for a, b in zip(it, it, strict=True):
        s1 = (s1 + a + s2) & _MASK
        s2 = (s2 + b + s1) & _MASK
    return s1, s2


def read_header(fh) -> Header | None:  # noqa: ANN001 - a binary file
    """The log's header, or None if the file is empty, short or not a valid log header."""
    fh.seek(0)
    raw = fh.read(_HEADER)
    if len(raw) < _HEADER:
        return None
    magic, _version, page_size, _seq = struct.unpack(">IIII", raw[:16])
    if magic not in (_MAGIC_LE, _MAGIC_BE):
        return None
    if page_size != PAGE_SIZE:
        raise WalError(f"page size {page_size}")
    big = magic == _MAGIC_BE
    c1, c2 = struct.unpack(">II", raw[24:32])
    if _checksum(raw[:24], big, 0, 0) != (c1, c2):
        return None
    return Header(salt=raw[16:24], big_endian=big, checksum=(c1, c2))


def _frames(fh, header: Header, start: int):  # noqa: ANN001, ANN202 - a binary file; a generator
    """``(offset_after, pgno, db_pages, page)`` of each valid frame from ``start`` on."""
    if start == _HEADER:
        s1, s2 = header.checksum
    else:
        fh.seek(start - _FRAME + 16)
        s1, s2 = struct.unpack(">II", fh.read(8))
    fh.seek(start)
    offset = start
    while True:
        raw = fh.read(_FRAME)
        if len(raw) < _FRAME or raw[8:16] != header.salt:
            return
        s1, s2 = _checksum(raw[:8] + raw[_FRAME_HEADER:], header.big_endian, s1, s2)
        if struct.unpack(">II", raw[16:24]) != (s1, s2):
            return
        offset += _FRAME
        pgno, db_pages = struct.unpack(">II", raw[:8])
        yield offset, pgno, db_pages, raw[_FRAME_HEADER:]


@contextlib.contextmanager
def _opened(wal: Path, salt: bytes | None, position: int) -> Iterator[tuple[BinaryIO, Header, int] | None]:
    """SQLite's log, its header, and where to read from (its start if the salts are no longer ``salt``);
    None if there is no log (missing, empty or not a valid header)."""
    try:
        fh = open(wal, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        yield None
        return
    with fh:
        header = read_header(fh)
        if header is None:
            yield None
            return
        yield fh, header, position if header.salt == salt and position >= _HEADER else _HEADER


def _no_log() -> Capture:
    return Capture(pages={}, db_pages=0, salt=None, position=_HEADER)


def capture(wal: Path, salt: bytes | None, position: int) -> Capture:
    """The committed frames after ``position`` (or from the start, if the salts are no longer ``salt``).

    Frames after the last commit frame (a transaction rolled back, or a commit whose write failed) are
    left out, as SQLite's recovery leaves them out.
    """
    with _opened(wal, salt, position) as log:
        if log is None:
            return _no_log()
        fh, header, position = log
        pending: dict[int, bytes] = {}
        pages: dict[int, bytes] = {}
        db_pages = 0
        end = position
        for offset, pgno, size, page in _frames(fh, header, position):
            pending[pgno] = page
            if size:
                pages.update(pending)
                pending = {}
                db_pages = size
                end = offset
        return Capture(pages=dict(sorted(pages.items())), db_pages=db_pages, salt=header.salt, position=end)


def capture_commit(wal: Path, salt: bytes | None, position: int) -> Capture | None:
    """The frames of the one commit the caller has just made, from ``position`` to its commit frame.

    For the store's own commit, under its write locks: SQLite wrote that commit's frames contiguously
    from the end of the previous commit (``position``, or the start of the log if SQLite restarted it
    at ``BEGIN``), so they are the frames up to the *first* commit frame. The checksum chain of those
    frames is not recomputed (about 0.2 ms a frame in Python); instead the frame after the commit frame
    is checked against the commit frame's checksum: if it continues the chain, the log holds more than
    this one commit after ``position`` (a commit by something that bypassed the store), and None is
    returned so the caller reads the whole log with :func:`capture`. Frames that do not continue it are
    left over from a rolled-back transaction or an older crash and are never read. Each page is still
    authenticated by SQLCipher's own HMAC when a restore reads it.
    """
    with _opened(wal, salt, position) as log:
        if log is None:
            return _no_log()
        fh, header, position = log
        fh.seek(position)
        pages: dict[int, bytes] = {}
        offset = position
        while True:
            raw = fh.read(_FRAME)
            if len(raw) < _FRAME or raw[8:16] != header.salt:
                return Capture(pages={}, db_pages=0, salt=header.salt, position=position)
            offset += _FRAME
            pgno, db_pages = struct.unpack(">II", raw[:8])
            pages[pgno] = raw[_FRAME_HEADER:]
            if db_pages:
                break
        if next(_frames(fh, header, offset), None) is not None:  # it continues the commit frame's chain
            return None
        return Capture(pages=dict(sorted(pages.items())), db_pages=db_pages, salt=header.salt, position=offset)


def materialize(db: Path, wal: Path, dest: Path) -> None:
    """Write to ``dest`` the database as SQLite sees it now: the main file with the log's commits applied.

    The caller holds the write locks and an open connection, so no commit and no checkpoint runs
    meanwhile. ``dest`` is fsynced; the caller renames it into place.
    """
    shutil.copyfile(db, dest)
    found = capture(wal, None, _HEADER)
    with open(dest, "rb+") as out:
        apply_pages(out, found.pages, found.db_pages)
        out.flush()
        os.fsync(out.fileno())


def apply_pages(out, pages: dict[int, bytes], db_pages: int) -> None:  # noqa: ANN001 - a binary file
    """Write page images into an open database file and cut it to ``db_pages`` pages (0: keep the size)."""
    for pgno, page in pages.items():
        if db_pages and pgno > db_pages:
            continue
        out.seek((pgno - 1) * PAGE_SIZE)
        out.write(page)
    if db_pages:
        out.truncate(db_pages * PAGE_SIZE)
