"""``snapshots/changes.log``: the pages each commit changed since the snapshot, appended and fsynced.

The file is a 32-byte header followed by *chunks*. A chunk holds the newest encrypted image of every page
that the commits ``from_gen + 1 … to_gen`` changed (one commit, or many merged by :func:`compact`), the
database size in pages after ``to_gen``, the key's id and, for a chunk kept from an earlier snapshot, the
moment that snapshot was replaced. Each chunk ends with a BLAKE2b digest over the previous chunk's digest
(the header's, for the first) and its own bytes, so a torn or reordered tail never verifies: reading stops
at the first chunk that does not, and what follows is refused.

The file is only ever appended to (one ``write`` and an ``fsync`` per commit) or replaced whole by a
rename (:func:`rewrite`). docs/ARCHITECTURE.md, "Storage", says why a copy in any order restores.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from klucznik.instance.files import FILE_MODE
from klucznik.instance.files import fsync_dir
from klucznik.instance.walfile import PAGE_SIZE

_MAGIC = b"KLUCZNIK-CHANGES"
_HEADER = struct.Struct(">16sI12s")  # magic, page size, random salt
_CHUNK = struct.Struct(">4sQQII16sd")  # tag, from_gen, to_gen, db_pages, n_pages, key id, retired_at
_TAG = b"KLCH"
_PAGE = struct.Struct(">I")
_DIGEST = 32


def key_id(dmk: bytes) -> bytes:
    """16 bytes that tell which key a chunk's pages are encrypted with, and nothing about the key."""
    return hmac.new(dmk, b"klucznik changes.log key id", hashlib.sha256).digest()[:16]


def _digest(previous: bytes, *data: bytes) -> bytes:
    """BLAKE2b over ``previous`` and then each of ``data`` (fed in turn: a chunk is not copied to be hashed)."""
    digest = hashlib.blake2b(previous, digest_size=_DIGEST)
    for part in data:
        digest.update(part)
    return digest.digest()


@dataclass
class Chunk:
    from_gen: int
    to_gen: int
    db_pages: int
    key: bytes  # key_id()
    pages: dict[int, bytes] = field(repr=False)
    retired_at: float = 0.0  # 0 for the current snapshot's chunks

    def size(self) -> int:
        return _CHUNK.size + len(self.pages) * (_PAGE.size + PAGE_SIZE) + _DIGEST

    def encode(self, previous: bytes) -> tuple[bytes, bytes]:
        """The chunk's bytes (digest included) and its digest."""
        parts = [
            _CHUNK.pack(
                _TAG, self.from_gen, self.to_gen, self.db_pages, len(self.pages), self.key, self.retired_at
            )
        ]
        for pgno, page in self.pages.items():
            if len(page) != PAGE_SIZE:
                raise ValueError("a page of the wrong size")
            parts.append(_PAGE.pack(pgno))
            parts.append(page)
        body = b"".join(parts)
        digest = _digest(previous, body)
        return body + digest, digest


@dataclass
class LogState:
    """What a read of the file found: the verified chunks' ends, and whether anything followed them."""

    chunks: list[Chunk]
    valid_size: int
    file_size: int
    last_digest: bytes
    identity: tuple[int, int] = (0, 0)  # (inode, size) when read

    @property
    def torn(self) -> bool:
        return self.file_size != self.valid_size


def new_header() -> tuple[bytes, bytes]:
    header = _HEADER.pack(_MAGIC, PAGE_SIZE, secrets.token_bytes(12))
    return header, _digest(b"", header)


def read(path: Path, *, with_pages: bool = True) -> LogState | None:
    """Every chunk of ``path`` that verifies, in order; None if the file is missing or not a log."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with fh:
        stat = os.fstat(fh.fileno())
        header = fh.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        magic, page_size, _salt = _HEADER.unpack(header)
        if magic != _MAGIC or page_size != PAGE_SIZE:
            return None
        previous = _digest(b"", header)
        chunks: list[Chunk] = []
        valid = _HEADER.size
        for chunk, size, digest in _read_chunks(fh, previous):
            if not with_pages:
                chunk.pages = dict.fromkeys(chunk.pages, b"")
            chunks.append(chunk)
            valid += size
            previous = digest
        return LogState(
            chunks=chunks,
            valid_size=valid,
            file_size=stat.st_size,
            last_digest=previous,
            identity=(stat.st_ino, stat.st_size),
        )


def _read_chunks(fh, previous: bytes) -> Iterator[tuple[Chunk, int, bytes]]:  # noqa: ANN001 - a binary file
    while True:
        head = fh.read(_CHUNK.size)
        if len(head) < _CHUNK.size:
            return
        tag, from_gen, to_gen, db_pages, n_pages, key, retired_at = _CHUNK.unpack(head)
        if tag != _TAG or n_pages > (1 << 31) // PAGE_SIZE * 1024:
            return
        body_size = n_pages * (_PAGE.size + PAGE_SIZE)
        body = fh.read(body_size)
        digest = fh.read(_DIGEST)
        if len(body) < body_size or len(digest) < _DIGEST:
            return
        if not hmac.compare_digest(_digest(previous, head, body), digest):
            return
        pages = {}
        step = _PAGE.size + PAGE_SIZE
        for i in range(n_pages):
            at = i * step
            pages[_PAGE.unpack_from(body, at)[0]] = body[at + _PAGE.size : at + step]
        previous = digest
        yield (
            Chunk(from_gen, to_gen, db_pages, key, pages, retired_at),
            _CHUNK.size + body_size + _DIGEST,
            digest,
        )


def append(path: Path, state: LogState, chunk: Chunk) -> None:
    """Append ``chunk`` with one write and fsync it; ``state`` must be the file's current, untorn state.

    On an error (a full disk) the file may end in a torn chunk; ``state`` is then marked torn, so the next
    change rewrites the file rather than append after it.
    """
    data, digest = chunk.encode(state.last_digest)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        state.file_size = -1  # unknown until the write and fsync succeed
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(28, "short write")
        os.fsync(fd)
        stat = os.fstat(fd)
    finally:
        os.close(fd)
    state.valid_size += len(data)
    state.file_size = state.valid_size
    state.last_digest = digest
    state.identity = (stat.st_ino, stat.st_size)
    chunk.pages = dict.fromkeys(chunk.pages, b"")  # the state keeps no page images in memory
    state.chunks.append(chunk)


def rewrite(path: Path, chunks: list[Chunk]) -> LogState:
    """Replace ``path`` with a new log holding ``chunks``: temporary file, fsync, rename, fsync of the folder."""
    header, previous = new_header()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        try:
            size = len(header)
            _write_all(fd, header)
            for chunk in chunks:
                data, previous = chunk.encode(previous)
                _write_all(fd, data)
                size += len(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
    stat = path.stat()
    kept = [
        Chunk(c.from_gen, c.to_gen, c.db_pages, c.key, dict.fromkeys(c.pages, b""), c.retired_at)
        for c in chunks
    ]
    return LogState(
        chunks=kept,
        valid_size=size,
        file_size=size,
        last_digest=previous,
        identity=(stat.st_ino, stat.st_size),
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def compact(chunks: list[Chunk], *, retired_at: float = 0.0) -> Chunk:
    """One chunk that has the same effect as ``chunks`` applied in order (same key, consecutive).

    Page images are whole pages, so the newest image of each page, with the last chunk's size, brings any
    database at a generation between the first ``from_gen`` and the last ``to_gen`` to the last one.
    """
    pages: dict[int, bytes] = {}
    for chunk in chunks:
        pages.update(chunk.pages)
    last = chunks[-1]
    pages = {pgno: page for pgno, page in sorted(pages.items()) if pgno <= last.db_pages}
    return Chunk(chunks[0].from_gen, last.to_gen, last.db_pages, last.key, pages, retired_at)


def replay(chunks: list[Chunk], base_gen: int, key: bytes) -> tuple[int, list[Chunk]]:
    """The generation reached from a snapshot at ``base_gen`` under key id ``key``, and the chunks applied.

    Chunks wholly older than the snapshot are skipped; the first that would leave a gap, or is under
    another key, ends the replay.
    """
    reached = base_gen
    applied = []
    for chunk in chunks:
        if chunk.to_gen <= reached:
            continue
        if chunk.from_gen > reached or chunk.key != key:
            break
        applied.append(chunk)
        reached = chunk.to_gen
    return reached, applied
