"""One acknowledged write at growing data sizes, and instance/ after a burst of writes (issue 10).

Goal: a write's p50 at 64 MiB and at 1 GiB of data is at most 1.5 times the p50 at 2 MiB (a write costs its
change, not the database), and instance/ never holds more than 2.5 times the data, during a burst of 1,000
writes too.

For each size the bench sets up a real instance (``Store`` as shipped, cheap key derivation), fills the
database to the size with client rows (long notes) in large write transactions, takes a snapshot, then times
``writes`` single writes — the same write everywhere: one new client through ``store.write()`` on a new
connection, as the web does — and prints p50/p95. Then a burst of 1,000 such writes as fast as they go:
its duration, p50/p95, the largest instance/ seen after any write of the burst and at the end, against the
database size ("data": klucznik.db and its -wal).

Run: ``.venv/bin/python bench/bench_write_scale.py [size MiB ...] [--writes N] [--burst N]``
(default sizes 2 64 1024; e.g. ``bench_write_scale.py 2 64 256`` on a smaller disk).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)
MIB = 1024 * 1024


def nip_series(start: int):  # noqa: ANN201 - a generator
    n = start
    while True:
        n += 1
        base = f"{(n * 7919 + 1234567) % 10**9:09d}"
        check = sum(int(d) * w for d, w in zip(base, WEIGHTS, strict=True)) % 11
        if base[:3] != "000" and check != 10:
            yield base + str(check)


def folder_size(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        if entry.is_file():
            total += entry.stat().st_size
    return total


def data_size(store: Store) -> int:
    return sum(p.stat().st_size for p in (store.db_path, Path(f"{store.db_path}-wal")) if p.exists())


def fill(store: Store, target: int, nips) -> None:  # noqa: ANN001 - a generator
    """Client rows with long notes, in write transactions of about 16 MiB, until the database has ``target`` bytes."""
    notes = "Notatka o kliencie: " + "ąęółżźćń abc 0123456789 " * 200
    while store.db_path.stat().st_size < target:
        with store.write() as db:
            for _ in range(min(3000, max(50, (target - store.db_path.stat().st_size) // 5000))):
                db["clients"].insert(
                    {
                        "nip": next(nips),
                        "name": "Firma wypełniająca",
                        "email": "",
                        "notes": notes[:4900],
                        "sort_key": "firma wypelniajaca",
                        "created_at": "2026-12-01T09:00:00Z",
                        "updated_at": "2026-12-01T09:00:00Z",
                    }
                )


def one_write(store: Store, nip: str, i: int) -> float:
    start = time.perf_counter()
    with store.write() as db:
        clients.create_client(
            db,
            clients.validate(nip=nip, name=f"Biuro Rachunkowe Żółw {i}", email="biuro@firma.pl"),
            actor="admin",
            at=NOW,
        )
    return time.perf_counter() - start


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def run(size_mib: int, writes: int, burst: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("KLUCZNIK_BENCH_TMP")) as tmp:
        loading = Store(Path(tmp) / "loading", kdf=TEST_KDF)
        loading.setup("admin", "bench-password-1", at=NOW)
        nips = nip_series(size_mib * 1_000_000)
        start = time.perf_counter()
        fill(loading, size_mib * MIB, nips)
        # The data as it stands after a quiet while: a checked copy (``klucznik backup``) opened as the
        # instance, so no snapshot taken during the load is still kept for copies in progress.
        loading.backup(Path(tmp) / "instance")
        loading.seal()
        shutil.rmtree(Path(tmp) / "loading")
        store = Store(Path(tmp) / "instance", kdf=TEST_KDF)
        store.login("admin", "bench-password-1")
        filled = time.perf_counter() - start
        times = [one_write(store, next(nips), i) for i in range(writes)]
        burst_times = []
        largest = 0.0
        start = time.perf_counter()
        for i in range(burst):
            burst_times.append(one_write(store, next(nips), i))
            if i % 10 == 0 or i == burst - 1:
                largest = max(largest, folder_size(store.path) / data_size(store))
        burst_seconds = time.perf_counter() - start
        data = data_size(store)
        after = folder_size(store.path)
        info = store.snapshot_info()
        store.seal()
    figures = {
        "size": size_mib,
        "fill_s": filled,
        "p50": statistics.median(times) * 1000,
        "p95": pct(times, 0.95) * 1000,
        "burst_s": burst_seconds,
        "burst_p50": statistics.median(burst_times) * 1000,
        "burst_p95": pct(burst_times, 0.95) * 1000,
        "data_mib": data / MIB,
        "instance_mib": after / MIB,
        "ratio_after": after / data,
        "ratio_max": largest,
        "log_mib": int(info["log_bytes"]) / MIB,
    }
    print(
        f"{size_mib:>6} MiB: write p50 {figures['p50']:6.1f} ms p95 {figures['p95']:6.1f} ms | burst of {burst} "
        f"in {burst_seconds:5.1f} s: p50 {figures['burst_p50']:5.1f} ms p95 {figures['burst_p95']:5.1f} ms | "
        f"data {figures['data_mib']:7.1f} MiB, instance/ {figures['instance_mib']:7.1f} MiB "
        f"({figures['ratio_after']:.2f}x after, {figures['ratio_max']:.2f}x at most; log "
        f"{figures['log_mib']:.1f} MiB) | filled in {filled:.0f} s",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[2, 64, 1024], help="data sizes in MiB")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    results = [run(size, args.writes, args.burst) for size in args.sizes]
    base = results[0]["p50"]
    for r in results[1:]:
        print(
            f"p50 at {r['size']} MiB / p50 at {base and results[0]['size']} MiB: {r['p50'] / base:.2f} (goal ≤ 1.5)"
        )
    print(
        f"largest instance/ / data during the bursts: {max(r['ratio_max'] for r in results):.2f} (goal ≤ 2.5)"
    )


if __name__ == "__main__":
    main()
