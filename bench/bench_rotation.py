"""Removing a user: the database key rotation (``Store.rotate_key`` through ``users.remove_user``).

Builds a real instance with N clients (each with a note, so pages are full), then removes users one by one
and times each removal end to end: the pre-check, keyring.json with the pending key, ``PRAGMA rekey`` of
the whole file, the write and snapshot under the new key, and the final keyring.json. Other requests are
held back for about this long. Prints the median and worst time per database size, the file size, and
peak RSS. No assertions on time.

Run: ``.venv/bin/python bench/bench_rotation.py [clients ...] [removals]`` (default 300 3000 clients, 7
removals each).
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from klucznik.records import users

#: Benchmarks record at a fixed moment, like the tests.
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

ADMIN, PASSWORD = "admin", "admin-password-1"
WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)


def nips(count: int) -> list[str]:
    out = []
    n = 100_000_000
    while len(out) < count:
        n += 1
        digits = [int(d) for d in f"{n:09d}"]
        check = sum(w * d for w, d in zip(WEIGHTS, digits, strict=True)) % 11
        if check != 10 and digits[0] != 0:
            out.append(f"{n:09d}{check}")
    return out


def run(count: int, removals: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "instance", kdf=TEST_KDF)
        store.setup(ADMIN, PASSWORD, at=NOW)
        with store.write() as db:
            for i, nip in enumerate(nips(count)):
                clients.create_client(
                    db, clients.validate(nip=nip, name=f"Klient {i} Spółka z o.o.", notes="Notatka " * 40),
                    actor=ADMIN, at=NOW
                )
        size = store.db_path.stat().st_size
        times = []
        for i in range(removals):
            users.create_user(store, username=f"staff{i}", role="staff", password="staff-password-1", actor=ADMIN, at=NOW)
            start = time.perf_counter()
            users.remove_user(store, username=f"staff{i}", actor=ADMIN, at=NOW)
            times.append((time.perf_counter() - start) * 1000)
        assert store.check()["ok"]
        print(
            f"clients={count} database={size / 1024:.0f} KiB removals={removals} "
            f"rotation median={statistics.median(times):.1f} ms max={max(times):.1f} ms "
            f"keyring epoch={store.keyring().epoch}"
        )


def main() -> None:
    args = [int(a) for a in sys.argv[1:]]
    sizes, removals = (args[:-1], args[-1]) if len(args) > 1 else ([300, 3000], 7)
    for count in sizes:
        run(count, removals)
    print(f"peak RSS={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
