"""A copy of instance/ taken file by file, in every order, while a snapshot is taken or the key is rotated
between two files of the copy: it restores every change acknowledged before the copy began (issue 10).

docs/ARCHITECTURE.md, "Storage", argues why; this drill tries the orders. A copy tool lists a folder when it
enters it (``cp -r``) or up front (``rsync``), so ``snapshots/`` is listed either before the copy starts or
when the copy reaches it; a file that vanished in between is skipped, as backup tools do.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from klucznik.records import users
from tests.faults.test_crash_and_copy import reopen_and_verify
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import nips

#: What a copy reads, one item at a time: the -shm file travels with -wal (it only indexes the -wal).
ITEMS = ("keyring.json", "klucznik.db", "klucznik.db-wal", "snapshot", "changes.log")


def copy_file(src: Path, dest: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # vanished since it was listed: skipped, as backup tools do
        shutil.copyfile(src, dest)


def copy_in_order(
    src: Path,
    dest: Path,
    order: tuple[str, ...],
    event_at: int,
    event: Callable[[], None],
    *,
    list_late: bool,
) -> None:
    """Copy ``src`` to ``dest`` item by item in ``order``; ``event`` runs before item number ``event_at``."""
    (dest / "snapshots").mkdir(parents=True)
    listing = None if list_late else sorted((src / "snapshots").iterdir())
    for i, item in enumerate(order):
        if i == event_at:
            event()
        if item in ("snapshot", "changes.log"):
            if listing is None:
                listing = sorted((src / "snapshots").iterdir())
            for path in listing:
                if (item == "snapshot") == path.name.startswith("snapshot-"):
                    copy_file(path, dest / "snapshots" / path.name)
        elif item == "klucznik.db-wal":
            for name in ("klucznik.db-wal", "klucznik.db-shm"):
                copy_file(src / name, dest / name)
        else:
            copy_file(src / item, dest / item)
    if event_at == len(order):
        event()


class Drill:
    def __init__(self, instance: Path) -> None:
        # A grace far longer than one copy (milliseconds here), so only the order of the files decides; shorter
        # than in production so that old keys' snapshots do not pile up over hundreds of rotations.
        self.store = Store(instance, kdf=TEST_KDF, snapshot_min_age=20.0)
        self.store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
        self.pool = iter(nips(20_000, start=300_000))
        self.acked: list[tuple[str, str]] = []
        self.users = 0

    def write(self) -> None:
        nip = next(self.pool)
        with self.store.write() as db:
            clients.create_client(db, clients.validate(nip=nip, name=f"Klient {nip}"), actor=ADMIN, at=NOW)
        self.acked.append((nip, f"Klient {nip}"))

    def snapshot_event(self) -> None:
        self.write()
        self.store.take_snapshot()
        self.write()

    def rotation_event(self) -> None:
        self.users += 1
        name = f"kopia{self.users}"
        users.create_user(
            self.store, username=name, role="staff", password="staff-password-1", actor=ADMIN, at=NOW
        )
        self.write()
        users.remove_user(self.store, username=name, actor=ADMIN, at=NOW)
        self.write()


def cases(seed: int, per_order: int, sampled_late: int) -> list[tuple[tuple[str, ...], int, bool]]:
    """Every order of the items, each with the event before ``per_order`` different items (seeded; always
    once between the snapshot and the log), ``snapshots/`` listed up front; plus a sample listed late."""
    rng = random.Random(seed)
    chosen = []
    for order in itertools.permutations(ITEMS):
        between = max(order.index("snapshot"), order.index("changes.log"))
        others = [at for at in range(len(ITEMS) + 1) if at != between]
        chosen += [(order, at, False) for at in [between, *rng.sample(others, per_order - 1)]]
    late = [
        (order, at, True)
        for order in itertools.permutations(ITEMS)
        for at in range(len(ITEMS) + 1)
        if at <= order.index("snapshot")
    ]
    return chosen + rng.sample(late, sampled_late)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["snapshot", "rotation"])
def test_a_copy_in_any_file_order_across_a_snapshot_or_a_rotation_restores_everything(
    tmp_path: Path, kind: str
) -> None:
    drill = Drill(tmp_path / "instance")
    event = drill.snapshot_event if kind == "snapshot" else drill.rotation_event
    for _ in range(3):
        drill.write()
    restored = {"live": 0, "rebuilt": 0}
    all_cases = (
        cases(seed=1010, per_order=1, sampled_late=40)
        if kind == "snapshot"
        else cases(seed=2020, per_order=1, sampled_late=20)
    )
    for n, (order, at, late) in enumerate(all_cases):
        before = list(drill.acked)  # acknowledged before this copy began
        dest = tmp_path / f"copy-{n}"
        copy_in_order(drill.store.path, dest, order, at, event, list_late=late)
        _present, copy_store = reopen_and_verify(dest, before)
        result = copy_store.last_unseal
        restored["rebuilt" if result is not None and result.restored_from else "live"] += 1
        copy_store.seal()
        shutil.rmtree(dest)
    print(
        f"copy orders across a {kind}: copies={len(all_cases)} (every order of {len(ITEMS)} items, the {kind} "
        f"between the snapshot and the log and elsewhere; snapshots/ listed up front or late) lost=0 "
        f"restored from snapshot + log={restored['rebuilt']} live file as good={restored['live']}"
    )
