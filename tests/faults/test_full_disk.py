"""A full disk (issue 10): on a real small filesystem (tmpfs with a size limit), the user gets a plain message,
nothing is acknowledged that is not durable, every earlier change is kept, and writes work again once space
is freed, without a restart.

The filesystem is mounted for the test (root is needed); without it the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from klucznik.errors import StorageError
from klucznik.instance import snapshots
from klucznik.instance.database import open_database
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import nips
from tests.support.web import WebClient
from tests.support.web import make_app


@contextlib.contextmanager
def small_filesystem(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of ``size_mib`` MiB mounted at ``path``; skipped (with the reason) where it cannot be mounted."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the full-disk test needs a real small filesystem")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; returns its size."""
    block = os.urandom(64 * 1024)
    size = 0
    with open(path, "wb", buffering=0) as fh:
        for chunk in (block, block[:4096], block[:512]):
            while True:
                try:
                    size += fh.write(chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return size


def names(store: Store) -> dict[str, str]:
    with store.connect() as db:
        return {row[0]: row[1] for row in db.execute("SELECT nip, name FROM clients")}


def add(store: Store, nip: str, name: str) -> None:
    with store.write() as db:
        clients.create_client(db, clients.validate(nip=nip, name=name, notes="n" * 3000), actor=ADMIN, at=NOW)


def rebuilt_names(store: Store, dest: Path) -> dict[str, str]:
    """The clients in a copy of instance/ rebuilt from snapshot + log alone (what a backup restores)."""
    shutil.copytree(store.snapshot_path, dest)
    rebuilt = snapshots.rebuild(dest, [store._require_dmk()])  # noqa: SLF001
    assert rebuilt is not None
    with open_database(rebuilt.path, rebuilt.key) as db:
        return {row[0]: row[1] for row in db.execute("SELECT nip, name FROM clients")}


def test_full_disk_acknowledges_nothing_keeps_everything_and_recovers_without_restart(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", 12) as disk:
        store = Store(disk / "instance", kdf=TEST_KDF)
        store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
        pool = iter(nips(400))
        acked: dict[str, str] = {}
        for i in range(15):
            nip = next(pool)
            add(store, nip, f"Przed {i}")
            acked[nip] = f"Przed {i}"
        filler = disk / "filler"
        fill(filler)
        failures: list[StorageError] = []
        # Free a little at a time, so the failure hits each step of a write: BEGIN, COMMIT, the log append.
        for step in range(80):
            nip = next(pool)
            try:
                add(store, nip, f"Pełny {step}")
            except StorageError as exc:
                failures.append(exc)
            else:
                acked[nip] = f"Pełny {step}"
            present = names(store)
            assert all(present.get(n) == v for n, v in acked.items()), "an earlier change was lost"
            size = filler.stat().st_size
            os.truncate(filler, max(0, size - 6 * 1024))
        assert failures, "the disk never filled up"
        for exc in failures:
            assert "zabrakło miejsca" in exc.text.pl and "disk is full" in exc.text.en
        # Everything acknowledged so far is durable: in the snapshot + log a copy of instance/ restores.
        rebuilt = rebuilt_names(store, tmp_path / "copy-full")
        assert all(rebuilt.get(n) == v for n, v in acked.items())
        # Space is freed: the same store (no restart) writes again.
        filler.unlink()
        nip = next(pool)
        add(store, nip, "Po zwolnieniu miejsca")
        acked[nip] = "Po zwolnieniu miejsca"
        report = store.check()
        assert report["ok"], report
        store.seal()
        again = Store(disk / "instance", kdf=TEST_KDF)
        again.login(ADMIN, ADMIN_PASSWORD)
        present = names(again)
        assert all(present.get(n) == v for n, v in acked.items())
        assert again.check()["ok"]
        again.seal()
        print(
            f"full disk: acknowledged={len(acked)} refused while full={len(failures)} lost=0 "
            f"after freeing space: written without restart, check ok"
        )


def test_full_disk_gives_the_user_a_plain_page_and_the_portal_works_again(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", 8) as disk:
        store = Store(disk / "instance", kdf=TEST_KDF)
        store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
        client = WebClient(make_app(store).test_client())
        client.login()
        pool = iter(nips(50, start=500))
        first = next(pool)
        assert client.post("/clients/new", {"nip": first, "name": "Zapisany"}).status_code == 303
        filler = disk / "filler"
        fill(filler)
        seen = None
        for _ in range(20):
            response = client.post(
                "/clients/new", {"nip": next(pool), "name": "Bez miejsca", "notes": "x" * 4000}
            )
            if response.status_code == 503:
                seen = response.get_data(as_text=True)
                break
            os.truncate(filler, max(0, filler.stat().st_size - 2048))
        assert seen is not None, "the portal never reported the full disk"
        assert "zabrakło miejsca" in seen and "Zwolnij miejsce" in seen
        assert "Zapisany" in client.get("/clients").get_data(as_text=True)
        filler.unlink()
        again = next(pool)
        assert client.post("/clients/new", {"nip": again, "name": "Po zwolnieniu"}).status_code == 303
        assert store.check()["ok"]
        store.seal()
