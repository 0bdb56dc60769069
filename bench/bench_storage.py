"""SQLCipher versus plain SQLite on the portal's own workload (goal: ratio ≤ 1.5).

The same domain calls run twice over a real instance: once as shipped (SQLCipher, raw 32-byte key), once
with the store's ``open_database`` (and the snapshots' ``open_database``/``open_immutable``) replaced for
the run by variants that open the file without a key (the instance is first exported to a plaintext file
with ``sqlcipher_export`` and given a plaintext snapshot). No plain mode exists in the production code.
Every write goes through ``store.write()``, so it includes the durable append of the commit's pages to
``snapshots/changes.log`` (+ fsync), in both variants.

Workload: create clients (one write transaction each), live searches (names with Polish letters, NIPs
with dashes), list pages, client page reads (client + its credentials), edits. Prints seconds per phase,
the ratio SQLCipher / plain, and peak RSS. No assertions on time.

Run: ``.venv/bin/python bench/bench_storage.py [clients] [runs]`` (default 300 clients, 2 runs per variant).
"""

from __future__ import annotations

import contextlib
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path

import sqlcipher3
from sqlite_utils import Database

from klucznik.errors import InstanceDamaged
from klucznik.instance import snapshots as snapshot_files
from klucznik.instance import store as storage
from klucznik.instance.database import Connection
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from klucznik.text import Text

#: Benchmarks record at a fixed moment, like the tests.
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)
WORDS = [
    "Biuro",
    "Żółw",
    "Łódź",
    "Piekarnia",
    "Ślusarz",
    "Apteka",
    "Handel",
    "Usługi",
    "Transport",
    "Ćma",
    "Zakład",
    "Spółka",
    "Budowa",
    "Rolnik",
    "Kwiaciarnia",
    "Serwis",
]


def make_nips(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        base = f"{rng.randrange(100_000_000, 999_999_999):09d}"
        check = sum(int(d) * w for d, w in zip(base, WEIGHTS, strict=True)) % 11
        if check != 10:
            out.add(base + str(check))
    return sorted(out)


def plain_open_database(path: Path, dmk: bytes, *, readonly_checks: bool = False) -> Database:
    """``open_database`` without the key: plain SQLite through the same driver and pragmas."""
    path = Path(path)
    if not path.is_file():
        raise InstanceDamaged(Text("missing", "missing"))
    conn = sqlcipher3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    if not readonly_checks:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 64")
        conn.execute("PRAGMA journal_size_limit = 262144")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    return Connection(conn)  # the store counts its connections (Store.connect checks the type)


def plain_open_immutable(path: Path, dmk: bytes) -> Database:
    """``open_immutable`` without the key (a plaintext snapshot)."""
    conn = sqlcipher3.connect(f"{Path(path).resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.dbapi2.DatabaseError:
        conn.close()
        raise InstanceDamaged(Text("inny plik", "not plaintext")) from None
    return Database(conn)


@contextlib.contextmanager
def plain_mode(store: Store) -> Iterator[None]:
    """Export the instance to plaintext and open it without a key for the duration."""
    dmk = store._require_dmk()  # noqa: SLF001 - the bench needs the key to export
    plain = store.path / "plain.db"
    conn = sqlcipher3.connect(str(store.db_path), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{dmk.hex()}'\"")
    conn.execute(f"ATTACH DATABASE '{plain}' AS plaintext KEY ''")
    conn.execute("SELECT sqlcipher_export('plaintext')")
    conn.execute("DETACH DATABASE plaintext")
    conn.close()
    store._close_keeper()  # noqa: SLF001 - the last connection: SQLite checkpoints and removes its -wal
    store._drop_idle()  # noqa: SLF001 - and the idle ones (they would keep reading the encrypted file)
    plain.replace(store.db_path)
    for snap in store.snapshot_path.iterdir():
        snap.unlink()
    patched = [
        (storage, "open_database", plain_open_database),
        (snapshot_files, "open_database", plain_open_database),
        (snapshot_files, "open_immutable", plain_open_immutable),
    ]
    originals = [(module, name, getattr(module, name)) for module, name, _ in patched]
    for module, name, variant in patched:
        setattr(module, name, variant)
    try:
        store.take_snapshot()  # a plaintext snapshot and an empty log, so writes append plaintext pages
        store._open_keeper()  # noqa: SLF001
        check = store.connect()
        assert check.execute("PRAGMA cipher_version").fetchone() is not None
        check.close()
        assert store.db_path.read_bytes()[:16] == b"SQLite format 3\x00", "not plaintext"
        yield
    finally:
        store._close_keeper()  # noqa: SLF001
        store._drop_idle()  # noqa: SLF001
        for module, name, original in originals:
            setattr(module, name, original)


def workload(store: Store, count: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    nips = make_nips(count, seed=seed)
    names = [f"{rng.choice(WORDS)} {rng.choice(WORDS)} {i}" for i in range(count)]
    times: dict[str, float] = {}

    start = time.perf_counter()
    ids = []
    for nip, name in zip(nips, names, strict=True):
        with store.write() as db:
            ids.append(
                clients.create_client(
                    db, clients.validate(nip=nip, name=name, email="biuro@firma.pl"), actor="admin", at=NOW
                ).id
            )
    times["create (1 write each)"] = time.perf_counter() - start

    queries = (
        [w.lower() for w in WORDS]
        + [n[:5] for n in nips[:40]]
        + [f"{n[:3]}-{n[3:6]}" for n in nips[40:80]]
        + ["żół", "łódź 1", "nic"]
    )
    start = time.perf_counter()
    db = store.connect()
    try:
        for _ in range(3):
            for query in queries:
                clients.search(db, query, page=1)
        for page in range(1, 1 + max(1, count // 25)):
            clients.search(db, "", page=page)
    finally:
        db.close()
    times["search + list pages"] = time.perf_counter() - start

    start = time.perf_counter()
    for client_id in rng.sample(ids, min(len(ids), 300)):
        db = store.connect()  # one connection per request, as the web does
        try:
            clients.get_client(db, client_id)
            list(
                db.query(
                    "SELECT id, slot, serial, not_after, status FROM credentials WHERE client_id = ? "
                    "ORDER BY status = 'active' DESC, id DESC",
                    [client_id],
                )
            )
        finally:
            db.close()
    times["client page reads (new connection each)"] = time.perf_counter() - start

    start = time.perf_counter()
    for client_id in rng.sample(ids, min(len(ids), 50)):
        with store.write() as db:
            current = clients.get_client(db, client_id)
            clients.update_client(
                db,
                client_id,
                clients.validate(nip=current.nip, name=current.name + " S.A.", notes="zmiana"),
                actor="admin", at=NOW
            )
    times["edit (1 write each)"] = time.perf_counter() - start
    return times


def commit_only(store: Store, rounds: int = 300) -> float:
    """Plain transactions without the change log: the cost of encryption on the commit path alone."""
    db = store.connect()
    try:
        start = time.perf_counter()
        for i in range(rounds):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", [f"bench.{i}", "x" * 200])
            db.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        db.close()


def run(count: int, reps: int = 2) -> None:
    runs: dict[str, list[dict[str, float]]] = {"sqlcipher": [], "plain": []}
    sizes: dict[str, int] = {}
    commit_runs: dict[str, list[float]] = {"sqlcipher": [], "plain": []}
    order = ["sqlcipher", "plain", "plain", "sqlcipher"] * reps
    for variant in order[: 2 * reps]:  # alternate, so neither variant always runs on a cold cache
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "instance", kdf=TEST_KDF)  # production storage settings
            store.setup("admin", "bench-password-1", at=NOW)
            ctx = plain_mode(store) if variant == "plain" else contextlib.nullcontext()
            with ctx:
                runs[variant].append(workload(store, count, seed=1))
                commit_runs[variant].append(commit_only(store))
                sizes[variant] = store.db_path.stat().st_size
            store.seal()
    results = {
        v: {phase: statistics.median(r[phase] for r in rs) for phase in rs[0]} for v, rs in runs.items()
    }
    commits = {v: statistics.median(c) for v, c in commit_runs.items()}
    print(
        f"SQLCipher vs plain SQLite, {count} clients, median of {reps} runs each "
        "(portal workload through store.write()/connect())"
    )
    print(f"{'phase':44} {'sqlcipher s':>12} {'plain s':>10} {'ratio':>7}")
    for phase in results["sqlcipher"]:
        a, b = results["sqlcipher"][phase], results["plain"][phase]
        print(f"{phase:44} {a:12.3f} {b:10.3f} {a / b:7.2f}")
    total_a = sum(results["sqlcipher"].values())
    total_b = sum(results["plain"].values())
    print(f"{'TOTAL':44} {total_a:12.3f} {total_b:10.3f} {total_a / total_b:7.2f}   (goal ≤ 1.5)")
    print(
        f"{'commit only, no change log (300 tx)':44} {commits['sqlcipher']:12.3f} {commits['plain']:10.3f} "
        f"{commits['sqlcipher'] / commits['plain']:7.2f}"
    )
    per_write = results["sqlcipher"]["create (1 write each)"] / count
    print(
        f"one acknowledged write (commit + durable log append), SQLCipher: {per_write * 1000:.1f} ms "
        f"at {count} clients; database size {sizes['sqlcipher'] / 1024:.0f} KiB "
        f"(plain {sizes['plain'] / 1024:.0f} KiB)"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 300, int(sys.argv[2]) if len(sys.argv) > 2 else 2)
