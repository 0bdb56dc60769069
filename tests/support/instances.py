"""Helpers of the foundation tests (unit, web, faults): valid NIPs, database dumps, file listings.

Plain functions, no fixtures: imported directly by the test modules that need them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import NOW

_WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)


def make_nip(n: int) -> str:
    """The ``n``-th valid NIP of a deterministic series (checksum per the NIP rules, never 10)."""
    attempt = 0
    while True:
        base = f"{(n * 7919 + 1234567 + attempt * 104729) % 10**9:09d}"
        if base[:3] != "000":
            check = sum(int(d) * w for d, w in zip(base, _WEIGHTS, strict=True)) % 11
            if check != 10:
                return base + str(check)
        attempt += 1  # another base; the series stays deterministic


def nips(count: int, *, start: int = 0) -> list[str]:
    """``count`` distinct valid NIPs."""
    seen: set[str] = set()
    out: list[str] = []
    n = start
    while len(out) < count:
        nip = make_nip(n)
        n += 1
        if nip not in seen:
            seen.add(nip)
            out.append(nip)
    return out


def add_clients(store: Store, names_and_nips: list[tuple[str, str]], *, actor: str = "admin") -> list[int]:
    """Add clients, one write transaction each; returns their ids."""
    ids = []
    for name, nip in names_and_nips:
        with store.write() as db:
            ids.append(clients.create_client(db, clients.validate(nip=nip, name=name), actor=actor, at=NOW).id)
    return ids


def dump(store: Store) -> dict[str, Any]:
    """Every row of every table (without the generation counter), to compare before and after."""
    db = store.connect()
    try:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        out: dict[str, Any] = {}
        for table in tables:
            rows = db.execute(f"SELECT * FROM [{table}] ORDER BY rowid").fetchall()
            if table == "meta":
                rows = [r for r in rows if r[0] != "generation"]
            out[table] = rows
        return out
    finally:
        db.close()


def tree(path: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``path``."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }
