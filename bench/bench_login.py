"""Login and unseal time with the real key-derivation parameters (Argon2id deliberately 0.2–0.6 s).

A real instance is set up with ``DEFAULT_KDF``; then, as after a restart, a new :class:`Store` over the
same folder logs in (Argon2id → the user's private key → the database key → open and check the
database and snapshots). Also timed: a login when already unsealed (only the slot is checked), a wrong
password, and an unknown username (which must cost the same as a wrong password). Prints median and
p95 of each, the Argon2id parameters, and peak RSS. No assertions on time.

Run: ``.venv/bin/python bench/bench_login.py [rounds]`` (default 15).
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from pathlib import Path

from klucznik.errors import WrongCredentials
from klucznik.instance.keyring import DEFAULT_KDF
from klucznik.instance.store import Store
from klucznik.records import clients

#: Benchmarks record at a fixed moment, like the tests.
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

PASSWORD = "bench-password-12"
WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)


def nip(n: int) -> str:
    k = n
    while True:
        base = f"{(k * 7919 + 1234567) % 900_000_000 + 100_000_000:09d}"
        check = sum(int(d) * w for d, w in zip(base, WEIGHTS, strict=True)) % 11
        if check != 10:
            return base + str(check)
        k += 1_000_003


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(rounds: int, action: Callable[[], None]) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        out.append(time.perf_counter() - start)
    return out


def report(label: str, values: list[float]) -> None:
    print(
        f"{label:58} median {statistics.median(values) * 1000:7.1f} ms   p95 {p95(values) * 1000:7.1f} ms   "
        f"(n={len(values)})"
    )


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instance"
        start = time.perf_counter()
        store = Store(path)
        store.setup("admin", PASSWORD, at=NOW)
        setup_time = time.perf_counter() - start
        with store.write() as db:
            for i in range(200):
                clients.create_client(db, clients.validate(nip=nip(i), name=f"Firma {i}"), actor="admin", at=NOW)
        store.seal()

        def restart_login() -> None:
            fresh = Store(path)
            fresh.login("admin", PASSWORD)
            fresh.seal()

        def wrong(username: str) -> Callable[[], None]:
            def attempt() -> None:
                try:
                    Store(path).login(username, "not-the-password-1")
                except WrongCredentials:
                    return
                raise AssertionError("a wrong password opened the keyring")

            return attempt

        warm = Store(path)
        warm.login("admin", PASSWORD)
        first = timed(rounds, restart_login)
        unsealed = timed(rounds, lambda: warm.login("admin", PASSWORD))
        wrong_password = timed(rounds, wrong("admin"))
        unknown_user = timed(rounds, wrong("nobody"))
        keyring_only = timed(rounds, lambda: warm.keyring().unlock_user("admin", PASSWORD))
        warm.seal()
        print(
            f"Argon2id parameters (DEFAULT_KDF): time_cost={DEFAULT_KDF.time_cost} "
            f"memory={DEFAULT_KDF.memory_kib // 1024} MiB parallelism={DEFAULT_KDF.parallelism}"
        )
        print(f"setup of a new instance (one slot + database + first snapshot): {setup_time * 1000:.0f} ms")
        report("Argon2id slot unlock alone (keyring.unlock_user)", keyring_only)
        report("first login after a restart (unseal, checks, 200 clients)", first)
        report("login while unsealed (slot check only)", unsealed)
        report("wrong password", wrong_password)
        report("unknown username (costs a derivation too)", unknown_user)
        print("goal: Argon2id deliberately 0.2–0.6 s per login")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
