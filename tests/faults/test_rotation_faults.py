"""Faults during key rotations: ``kill -9`` of a process that keeps removing users, and copies of
``instance/`` taken while it does.

Every user removal rotates the database key (``Store.rotate_key``): keyring.json, the database and the
snapshots change keys at different moments, so these are the tests that the order of the steps is right.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from klucznik.errors import WrongCredentials
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from klucznik.records import users
from tests.faults.test_crash_and_copy import ROOT
from tests.faults.test_crash_and_copy import copy_instance
from tests.faults.test_crash_and_copy import reopen_and_verify
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import nips

_ROTATOR = """
import sys
from klucznik.records import clients, users
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from tests.support.instances import nips
from tests.support.defaults import NOW

instance, round_no = sys.argv[1], int(sys.argv[2])
store = Store(instance, kdf=TEST_KDF)
store.login("admin", "admin-password-1")
print("ready", flush=True)
for i, nip in enumerate(nips(400, start=round_no * 1000)):
    name = f"r{round_no}u{i}"
    users.create_user(store, username=name, role="staff", password="staff-password-1", actor="admin", at=NOW)
    with store.write() as db:
        clients.create_client(db, clients.validate(nip=nip, name=f"Klient {nip}"), actor="admin", at=NOW)
    print("ack", nip, flush=True)
    users.remove_user(store, username=name, actor="admin", at=NOW)
    print("removed", name, flush=True)
"""


def read_lines(stream, into: list[str]) -> None:  # noqa: ANN001
    """Append each line of ``stream`` (stripped) until it closes."""
    for line in stream:
        into.append(line.strip())


@pytest.mark.slow
def test_kill_9_during_key_rotations_loses_nothing_and_leaves_no_removed_user_a_way_in(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    Store(instance, kdf=TEST_KDF).setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    rng = random.Random(1124)
    acked: list[tuple[str, str]] = []
    removed: list[str] = []
    figures = []
    for round_no in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", _ROTATOR, str(instance), str(round_no)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        # stderr is drained all along: a full pipe would block the child before it prints anything.
        errors: list[str] = []
        drain = threading.Thread(target=read_lines, args=(proc.stderr, errors))
        drain.start()
        assert proc.stdout.readline().strip() == "ready", errors
        lines: list[str] = []
        reader = threading.Thread(target=read_lines, args=(proc.stdout, lines))
        reader.start()
        deadline = time.monotonic() + 20
        while sum(line.startswith("removed") for line in lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        drain.join(timeout=10)
        stderr = "\n".join(errors)
        proc.stdout.close()
        proc.stderr.close()
        assert "Traceback" not in stderr, stderr
        round_acked = [(line.split()[1], f"Klient {line.split()[1]}") for line in lines if line.startswith("ack")]
        round_removed = [line.split()[1] for line in lines if line.startswith("removed")]
        assert len(round_removed) >= 2, "the rotations never got going"
        acked += round_acked
        removed += round_removed

        present, store = reopen_and_verify(instance, acked)
        ring = store.keyring()
        assert not ring.rotation_pending, "the next login settles an interrupted rotation"
        assert not set(removed) & set(ring.usernames())
        for name in rng.sample(removed, min(3, len(removed))):
            with pytest.raises(WrongCredentials):
                Store(instance, kdf=TEST_KDF).login(name, "staff-password-1")
        figures.append((round_no, len(round_removed), ring.epoch, present, len(acked)))
        store.seal()
    for round_no, rotations, epoch, present, total in figures:
        print(
            f"rotation kill -9 round {round_no}: rotations acknowledged={rotations} keyring epoch={epoch} "
            f"clients present={present} acknowledged={total} lost=0 pending after login=no"
        )


@pytest.mark.slow
def test_copy_during_key_rotations_restores_everything_and_never_a_removed_users_slot(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    store = Store(instance, kdf=TEST_KDF, snapshot_min_age=3.0)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    lock = threading.Lock()
    acked: list[tuple[str, str]] = []
    removed: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def rotator() -> None:
        try:
            for i, nip in enumerate(nips(2000, start=5000)):
                if stop.is_set():
                    return
                name = f"u{i}"
                users.create_user(store, username=name, role="staff", password="staff-password-1", actor=ADMIN, at=NOW)
                with store.write() as db:
                    clients.create_client(db, clients.validate(nip=nip, name=f"Klient {nip}"), actor=ADMIN, at=NOW)
                with lock:
                    acked.append((nip, f"Klient {nip}"))
                users.remove_user(store, username=name, actor=ADMIN, at=NOW)
                with lock:
                    removed.append(name)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=rotator)
    thread.start()
    rng = random.Random(2411)
    copies = []
    try:
        while len(removed) < 2 and not failures:
            time.sleep(0.005)
        for n in range(20):
            time.sleep(rng.uniform(0.0, 0.2))
            with lock:
                before = (list(acked), list(removed))
            dest = tmp_path / f"copy-{n}"
            copies.append((dest, *before, copy_instance(instance, dest)))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert failures == []
    restored = 0
    for dest, expected, gone, vanished in copies:
        present, copy_store = reopen_and_verify(dest, expected)
        assert not set(gone) & set(copy_store.keyring().usernames()), dest.name
        if copy_store.last_unseal and copy_store.last_unseal.restored_from:
            restored += 1
        print(
            f"copy {dest.name} during rotations: acknowledged before copy={len(expected)} present={present} "
            f"lost=0 removed users={len(gone)} with a slot=0 restored_from="
            f"{copy_store.last_unseal.restored_from if copy_store.last_unseal else None} "
            f"vanished_during_copy={len(vanished)}"
        )
        copy_store.seal()
        shutil.rmtree(dest)
    print(f"copies={len(copies)} restored from a snapshot={restored} rotations={len(removed)}")
    with contextlib.suppress(Exception):
        store.seal()
