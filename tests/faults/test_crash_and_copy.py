"""Faults: ``kill -9`` of the real server during writes, and copies of instance/ taken during writes.

Issue 2: "A test kills the server (``kill -9``) during writes and proves every acknowledged write is
present and the database passes both integrity checks", and "a copy taken at any moment, even during
writes, must restore every change that was acknowledged before the copy began".

(a) starts ``.venv/bin/klucznik serve`` as a real process, adds clients over HTTP from several threads,
records a client only after the HTTP success response, kills the process with SIGKILL at a seeded
random moment, reopens the folder with a new :class:`Store` and checks. (b) copies the whole folder
with ``shutil.copytree`` at random moments while another thread writes, without any cooperation from
the store (as an office backup tool would), and opens every copy with the administrator's password.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
import requests

from klucznik.instance.database import integrity_report
from klucznik.instance.database import open_database
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import nips

ROOT = Path(__file__).resolve().parents[2]
KLUCZNIK = Path(sys.executable).parent / "klucznik"
_CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_CLIENT_URL_RE = re.compile(r"/clients/(\d+)$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Portal:
    """The real portal as a child process over ``instance``."""

    def __init__(self, instance: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "KLUCZNIK_INSTANCE": str(instance),
            "KLUCZNIK_PORT": str(self.port),
            "KLUCZNIK_HOST": "127.0.0.1",
        }
        for name in ("KLUCZNIK_UNSEAL_KEY_FILE", "KLUCZNIK_HTTPS"):
            env.pop(name, None)
        self._log = open(log, "ab")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(
            [str(KLUCZNIK), "serve"], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{self.url}/health", timeout=1).close()
                return
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"the portal did not start; see {log}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code of the portal runs."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()


def logged_in_session(url: str) -> tuple[requests.Session, str]:
    """A requests session logged in as the administrator, and its CSRF token."""
    http = requests.Session()
    page = http.get(f"{url}/login", timeout=10)
    token = _CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
    response = http.post(
        f"{url}/login",
        data={"csrf_token": token, "username": ADMIN, "password": ADMIN_PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 303, response.text
    page = http.get(f"{url}/clients", timeout=10)
    return http, _CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]


@dataclass
class Acknowledged:
    """Writes the portal confirmed, in the order of confirmation."""

    items: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, nip: str, name: str) -> None:
        with self.lock:
            self.items.append((nip, name))

    def so_far(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.items)


def http_writer(
    url: str, work: list[tuple[str, str]], acked: Acknowledged, stop: threading.Event, errors: list[str]
) -> None:
    """Add clients one by one; record each only after the portal answered 303 → /clients/<id>."""
    try:
        http, token = logged_in_session(url)
    except requests.RequestException as exc:  # killed before this thread logged in
        errors.append(f"login: {exc!r}")
        return
    try:
        for nip, name in work:
            if stop.is_set():
                return
            try:
                response = http.post(
                    f"{url}/clients/new",
                    data={"csrf_token": token, "nip": nip, "name": name},
                    allow_redirects=False,
                    timeout=30,
                )
            except requests.RequestException:
                return  # the server was killed: this write was never acknowledged
            if response.status_code == 303 and _CLIENT_URL_RE.search(response.headers.get("Location", "")):
                acked.add(nip, name)
            else:
                errors.append(f"{response.status_code}: {response.text[:300]}")
                return
    finally:
        http.close()


def stored_clients(store: Store) -> dict[str, str]:
    db = store.connect()
    try:
        return {row[0]: row[1] for row in db.execute("SELECT nip, name FROM clients")}
    finally:
        db.close()


def reopen_and_verify(instance: Path, expected: list[tuple[str, str]]) -> tuple[int, Store]:
    """Open ``instance`` with a new Store and the admin password; every expected client must be there."""
    store = Store(instance, kdf=TEST_KDF)
    store.login(ADMIN, ADMIN_PASSWORD)
    present = stored_clients(store)
    missing = [(nip, name) for nip, name in expected if present.get(nip) != name]
    assert missing == [], f"{len(missing)} acknowledged writes lost in {instance}: {missing[:5]}"
    report = store.check()
    assert report["ok"], report
    assert report["database"]["integrity_check"] == ["ok"]
    assert report["database"]["cipher_integrity_check"] == []
    return len(present), store


@pytest.mark.slow
def test_kill_9_during_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    Store(instance, kdf=TEST_KDF).setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    rng = random.Random(20261124)
    pool = iter(nips(5000, start=1000))
    acked = Acknowledged()
    rounds = 4
    figures = []
    for round_no in range(rounds):
        portal = Portal(instance, tmp_path / "portal.log")
        stop = threading.Event()
        errors: list[str] = []
        try:
            threads = []
            for t in range(4):
                work = [(next(pool), f"Runda {round_no} wątek {t} klient {i} Łódź") for i in range(200)]
                threads.append(
                    threading.Thread(target=http_writer, args=(portal.url, work, acked, stop, errors))
                )
            before = len(acked.so_far())
            for thread in threads:
                thread.start()
            # Kill at a random moment once writes are flowing.
            deadline = time.monotonic() + 20
            while len(acked.so_far()) - before < 5 and time.monotonic() < deadline and not errors:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 1.2))
        finally:
            portal.kill()
            stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == [], errors
        this_round = len(acked.so_far()) - before
        assert this_round >= 5, "the writers never got going; see portal.log"
        present, store = reopen_and_verify(instance, acked.so_far())
        # F3: a kill during a snapshot never leaves a partial file under a final name: the snapshot opens
        # and, with the log, restores the live database (store.check() rebuilt and checked it above).
        db = open_database(store.snapshot_file, store._require_dmk(), readonly_checks=True)
        try:
            assert integrity_report(db)["ok"]
        finally:
            db.close()
        stale = sorted(
            p.name
            for p in store.snapshot_path.iterdir()
            if not (p.name.startswith("snapshot-") or p.name == "changes.log")
        )
        info = store.snapshot_info()
        store.seal()
        figures.append((round_no, this_round, len(acked.so_far()), present, info, stale))
    for round_no, in_round, total, present, info, stale in figures:
        print(
            f"kill -9 round {round_no}: acknowledged this round={in_round} acknowledged total={total} "
            f"present={present} lost=0 snapshot generation={info['snapshot_generation']} "
            f"log generation={info['log_generation']} log chunks={info['log_chunks']} "
            f"stale temporary files={stale}"
        )
    # More may be present than acknowledged (a write committed just before the kill, never answered).
    assert figures[-1][3] >= figures[-1][2]


def copy_instance(src: Path, dest: Path) -> list[str]:
    """``shutil.copytree`` without cooperation; files that vanish mid-copy are skipped (as backup tools do)."""
    try:
        shutil.copytree(src, dest)
    except shutil.Error as exc:
        vanished = [str(err) for err in exc.args[0]]
        assert all("No such file" in text for text in vanished), vanished
        return vanished
    return []


@pytest.mark.slow
def test_copy_during_writes_restores_every_acknowledged_write(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    # Snapshots far more often than in production (every 64 KiB of changes, at most every 0.5 s), so copies
    # interleave with them; the grace stays far above the time one copy takes.
    store = Store(instance, kdf=TEST_KDF, snapshot_min_age=0.5, snapshot_min_bytes=64 * 1024)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    acked = Acknowledged()
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for i, nip in enumerate(nips(3000, start=offset)):
                if stop.is_set():
                    return
                name = f"Klient {offset + i} Żółć"
                with store.write() as db:
                    clients.create_client(db, clients.validate(nip=nip, name=name), actor=ADMIN, at=NOW)
                    if i % 7 == 0:  # some updates too, so pages are rewritten, not only appended
                        db.execute(
                            "UPDATE clients SET notes = ? WHERE id = (SELECT min(id) FROM clients)",
                            [f"notatka {i}"],
                        )
                acked.add(nip, name)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 100_000)]
    for thread in threads:
        thread.start()
    rng = random.Random(4242)
    copies: list[tuple[Path, list[tuple[str, str]], list[str]]] = []
    try:
        while len(acked.so_far()) < 3:
            time.sleep(0.005)
        for n in range(25):
            time.sleep(rng.uniform(0.0, 0.25))
            before_copy = acked.so_far()  # acknowledged before this copy began
            dest = tmp_path / f"copy-{n}"
            copies.append((dest, before_copy, copy_instance(instance, dest)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    restored_from_snapshot = 0
    for dest, expected, vanished in copies:
        present, copy_store = reopen_and_verify(dest, expected)
        if copy_store.last_unseal and copy_store.last_unseal.restored_from:
            restored_from_snapshot += 1
        print(
            f"copy {dest.name}: acknowledged before copy={len(expected)} present={present} lost=0 "
            f"restored_from={copy_store.last_unseal.restored_from if copy_store.last_unseal else None} "
            f"vanished_during_copy={len(vanished)}"
        )
        copy_store.seal()
    print(
        f"copies={len(copies)} restored from a snapshot={restored_from_snapshot} "
        f"total writes={len(acked.so_far())}"
    )
    with contextlib.suppress(Exception):
        store.seal()


_KEYRING_WRITER = """
import secrets, sys
from pathlib import Path
from klucznik.instance.keyring import TEST_KDF, Keyring
path = Path(sys.argv[1])
dmk = bytes.fromhex(sys.argv[2])
ring = Keyring.load(path)
i = 0
print("ready", flush=True)
while True:
    i += 1
    ring.add_user(f"user{i % 7}", f"password-number-{i}", dmk, TEST_KDF)
    ring.change_password("admin", "admin-password-1", "admin-password-1")
    ring.save()
"""


def test_kill_9_during_keyring_writes_leaves_a_whole_keyring(tmp_path: Path) -> None:
    """The keyring is replaced atomically, so a kill never leaves a torn file."""
    from klucznik.instance.keyring import Keyring

    dmk = os.urandom(32)
    path = tmp_path / "keyring.json"
    ring, _code = Keyring.create(path, dmk)
    ring.add_user(ADMIN, ADMIN_PASSWORD, dmk, TEST_KDF)
    ring.save()
    rng = random.Random(77)
    kills = 8
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", _KEYRING_WRITER, str(path), dmk.hex()], cwd=ROOT, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.01, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        loaded = Keyring.load(path)
        assert loaded.unlock_user(ADMIN, ADMIN_PASSWORD) == dmk
        for name in loaded.usernames():
            assert name == ADMIN or name.startswith("user")
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "keyring.json")
    print(
        f"keyring kill -9 loop: kills={kills} whole keyring after each=yes temporary files left={len(leftovers)}"
    )
