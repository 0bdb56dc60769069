"""Checking many clients: bounded concurrency, KSeF's 429/Retry-After respected, outcomes stored in batches,
and "check all" as a background job whose state lives in the database.

:class:`CheckRunner` runs the live checks of a list of clients (the console's ``check-clients`` uses it
directly). :class:`JobManager` runs it in a thread of the portal for a ``status_jobs`` row: the progress is
written with each batch, so a page reload shows it and a restart finds it (:meth:`JobManager.recover` resumes
the job with the clients not yet checked, or marks it interrupted). Cancelling stops before the next client.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlite_utils import Database

from klucznik import clock
from klucznik.clock import Clock
from klucznik.clock import utcnow
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.records import audit
from klucznik.status.checks import OfficeLogin
from klucznik.status.checks import check_client
from klucznik.status.results import CheckOutcome
from klucznik.status.results import record_outcomes

log = logging.getLogger("klucznik.status")


@dataclass(frozen=True)
class JobProgress:
    """A "check all" run as the progress bar shows it."""

    id: int
    state: str  # running | done | cancelled | interrupted
    total: int
    done: int
    failed: int
    cancel_requested: bool
    created_at: datetime
    created_by: str | None
    finished_at: datetime | None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.done * 100 // self.total)


_JOB_COLUMNS = "id, state, total, done, failed, cancel_requested, created_at, created_by, finished_at"


def _job(row: tuple) -> JobProgress:
    return JobProgress(
        id=row[0], state=row[1], total=row[2], done=row[3], failed=row[4], cancel_requested=bool(row[5]),
        created_at=clock.parse(row[6]), created_by=row[7], finished_at=clock.parse_optional(row[8]),
    )


def get_job(db: Database, job_id: int) -> JobProgress | None:
    row = db.execute(f"SELECT {_JOB_COLUMNS} FROM status_jobs WHERE id = ?", [job_id]).fetchone()
    return _job(row) if row else None


def latest_job(db: Database) -> JobProgress | None:
    """The newest "check all" run (``None`` before the first)."""
    row = db.execute(f"SELECT {_JOB_COLUMNS} FROM status_jobs ORDER BY id DESC LIMIT 1").fetchone()
    return _job(row) if row else None


def left_running(db: Database) -> bool:
    """Is any job marked running (at start-up: one a stopped portal left behind)?"""
    return db.execute("SELECT 1 FROM status_jobs WHERE state = 'running' LIMIT 1").fetchone() is not None


def checkable_clients(db: Database) -> list[int]:
    """Current clients connected to KSeF (by any method), by name."""
    return [row[0] for row in db.execute(
        "SELECT id FROM clients WHERE archived_at IS NULL AND auth_method IS NOT NULL ORDER BY sort_key, id"
    ).fetchall()]


def remaining_clients(db: Database, job_id: int) -> list[int]:
    """The job's clients not yet checked in this job (what a resumed job still has to do)."""
    row = db.execute("SELECT client_ids FROM status_jobs WHERE id = ?", [job_id]).fetchone()
    checked = {r[0] for r in db.execute("SELECT client_id FROM status_checks WHERE job_id = ?", [job_id])}
    return [c for c in json.loads(row[0]) if c not in checked]


#: ``GET /auth/{referenceNumber}``, the status of one login (not ``/auth/sessions``).
_AUTH_STATUS = re.compile(r"/auth/(?!sessions$)[^/]+$")


class CheckRunner:
    """Live checks of many clients with at most ``concurrency`` at once, stored every ``batch_size`` outcomes
    or ``flush_seconds`` (one write each). A 429 pauses every worker for its ``Retry-After`` and the client is
    checked again (at most ``rate_limit_retries`` times).

    Pacing keeps 429s rare rather than merely survived: KSeF counts its public ``/auth`` operations per IP
    address (60/s each, docs/KSEF.md). ``starts_per_second`` paces the logins (one challenge, one signed
    file, one redeem each) and ``polls_per_second`` every ``GET /auth/{referenceNumber}`` of all workers
    together, one budget shared through the clients' transport (a login polls at least twice, more when KSeF
    has not decided yet). ``None`` turns either off.
    """

    def __init__(
        self,
        store: Store,
        *,
        ksef_factory: Callable[[], KsefClient],
        office_login: OfficeLogin | None = None,
        clock: Clock = utcnow,
        concurrency: int = 4,
        batch_size: int = 50,
        flush_seconds: float = 2.0,
        rate_limit_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 1.0,
        starts_per_second: float | None = 30.0,
        polls_per_second: float | None = 57.0,
    ) -> None:
        self.store = store
        self.starts_per_second = starts_per_second
        self.polls_per_second = polls_per_second
        self._next_start = 0.0
        self._next_poll = 0.0
        self.ksef_factory = ksef_factory
        self.office_login = office_login
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.batch_size = max(1, batch_size)
        self.flush_seconds = flush_seconds
        self.rate_limit_retries = rate_limit_retries
        self.sleep = sleep
        self.poll_interval = poll_interval
        self._pause_until = 0.0
        self._pause_lock = threading.Lock()
        self.rate_limited = 0
        self.writes = 0

    def _wait_for_pause(self) -> None:
        while True:
            with self._pause_lock:
                left = self._pause_until - time.monotonic()
            if left <= 0:
                return
            self.sleep(left)

    def _pace_start(self) -> None:
        if not self.starts_per_second:
            return
        with self._pause_lock:
            start = max(time.monotonic(), self._next_start)
            self._next_start = start + 1.0 / self.starts_per_second
        wait = start - time.monotonic()
        if wait > 0:
            self.sleep(wait)

    def _pace_request(self, method: str, url: str) -> None:
        """The transport's pacer: space the workers' status polls at most ``polls_per_second`` apart."""
        if not self.polls_per_second or method.upper() != "GET" or not _AUTH_STATUS.search(urlsplit(url).path):
            return
        with self._pause_lock:
            start = max(time.monotonic(), self._next_poll)
            self._next_poll = start + 1.0 / self.polls_per_second
        wait = start - time.monotonic()
        if wait > 0:
            self.sleep(wait)

    def check_one(self, client_id: int) -> CheckOutcome:
        """One client, retried after a 429 (every worker waits out its ``Retry-After`` first)."""
        attempt = 0
        while True:
            self._wait_for_pause()
            self._pace_start()
            with self.ksef_factory() as ksef:
                ksef.transport.pacer = self._pace_request
                outcome = check_client(self.store.connect, client_id, ksef=ksef, at=self.clock(),
                                       office_login=self.office_login, poll_interval=self.poll_interval)
            if outcome.http_status != 429 or attempt >= self.rate_limit_retries:
                return outcome
            attempt += 1
            with self._pause_lock:
                self.rate_limited += 1
                wait_for = outcome.retry_after if outcome.retry_after is not None else 2.0 ** attempt
                self._pause_until = max(self._pause_until, time.monotonic() + wait_for)

    def run(
        self,
        client_ids: Iterable[int],
        *,
        job_id: int | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> list[CheckOutcome]:
        """Check ``client_ids``; returns the outcomes (all stored). Stops early once ``cancelled()`` is true
        or the job's cancel was requested in the database."""
        todo = iter(list(client_ids))
        outcomes: list[CheckOutcome] = []
        buffer: list[CheckOutcome] = []
        pending: set[Future[CheckOutcome]] = set()
        last_flush = time.monotonic()
        stop = False
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="klucznik-check") as pool:
            while True:
                while not stop and len(pending) < self.concurrency:
                    if cancelled():
                        stop = True
                        break
                    client_id = next(todo, None)
                    if client_id is None:
                        break
                    pending.add(pool.submit(self.check_one, client_id))
                if not pending:
                    break
                done, pending = wait(pending, timeout=self.flush_seconds, return_when=FIRST_COMPLETED)
                for future in done:
                    buffer.append(future.result())
                due = len(buffer) >= self.batch_size or time.monotonic() - last_flush >= self.flush_seconds
                if buffer and (due or not pending):
                    stop = self._flush(buffer, job_id) or stop
                    outcomes.extend(buffer)
                    buffer = []
                    last_flush = time.monotonic()
        if buffer:
            self._flush(buffer, job_id)
            outcomes.extend(buffer)
        return outcomes

    def _flush(self, outcomes: list[CheckOutcome], job_id: int | None) -> bool:
        """Store one batch (and the job's progress); True when the job's cancel was requested."""
        with self.store.write() as db:
            record_outcomes(db, outcomes, job_id=job_id)
            self.writes += 1
            if job_id is None:
                return False
            db.execute(
                "UPDATE status_jobs SET done = done + ?, failed = failed + ?, updated_at = ? WHERE id = ?",
                [len(outcomes), sum(1 for o in outcomes if not o.ok), clock.iso(self.clock()), job_id],
            )
            return bool(db.execute("SELECT cancel_requested FROM status_jobs WHERE id = ?", [job_id]).fetchone()[0])


class JobManager:
    """"Check all" in a background thread of the portal; at most one job runs at a time."""

    def __init__(self, store: Store, runner_factory: Callable[[], CheckRunner], *, clock: Clock = utcnow) -> None:
        self.store = store
        self.runner_factory = runner_factory
        self.clock = clock
        self._threads: dict[int, threading.Thread] = {}
        self._cancel: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, *, actor: str | None, at: datetime, ip: str | None = None) -> int:
        """Start checking every connected client (or return the job already running)."""
        with self._lock:
            with self.store.write() as db:
                running = db.execute("SELECT id FROM status_jobs WHERE state = 'running' ORDER BY id DESC").fetchone()
                if running is not None and running[0] in self._threads:
                    return running[0]
                ids = checkable_clients(db)
                job_id = db["status_jobs"].insert({
                    "state": "running", "client_ids": json.dumps(ids), "total": len(ids), "done": 0, "failed": 0,
                    "cancel_requested": 0, "created_at": clock.iso(at), "created_by": actor,
                    "updated_at": clock.iso(at),
                }).last_pk
                audit.record(db, actor=actor, action="status.check_all", object_type="office",
                             details={"job_id": job_id, "clients": len(ids)}, ip=ip, at=at)
            self._launch(job_id)  # after the commit: the thread reads the job's row
        return job_id

    def _launch(self, job_id: int) -> None:
        event = threading.Event()
        thread = threading.Thread(target=self._run, args=(job_id, event), name=f"klucznik-job-{job_id}", daemon=True)
        self._threads[job_id] = thread
        self._cancel[job_id] = event
        thread.start()

    def _run(self, job_id: int, event: threading.Event) -> None:
        state = "interrupted"
        try:
            with self.store.connect() as db:
                ids = remaining_clients(db, job_id)
            self.runner_factory().run(ids, job_id=job_id, cancelled=event.is_set)
            with self.store.connect() as db:
                job = get_job(db, job_id)
            state = "cancelled" if (event.is_set() or (job and job.cancel_requested)) else "done"
        except Exception:
            log.exception("check-all job %s failed", job_id)
        finally:
            try:
                with self.store.write() as db:
                    moment = clock.iso(self.clock())
                    db.execute("UPDATE status_jobs SET state = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                               [state, moment, moment, job_id])
            except Exception:
                log.exception("check-all job %s: could not record its end", job_id)
            with self._lock:
                self._threads.pop(job_id, None)
                self._cancel.pop(job_id, None)

    def cancel(self, job_id: int, *, actor: str | None, at: datetime, ip: str | None = None) -> None:
        """Stop the job before its next client (the checks under way finish and are stored)."""
        with self.store.write() as db:
            db.execute("UPDATE status_jobs SET cancel_requested = 1, updated_at = ? WHERE id = ? AND state = 'running'",
                       [clock.iso(at), job_id])
            audit.record(db, actor=actor, action="status.check_all_cancel", object_type="office",
                         details={"job_id": job_id}, ip=ip, at=at)
        event = self._cancel.get(job_id)
        if event is not None:
            event.set()

    def recover(self, *, resume: bool = True) -> list[int]:
        """Jobs left ``running`` by a stopped portal: resume them (the clients not yet checked) or mark them
        interrupted. Returns their ids."""
        with self._lock:
            with self.store.connect() as db:
                orphans = [r[0] for r in db.execute("SELECT id FROM status_jobs WHERE state = 'running'")
                           if r[0] not in self._threads]
            for job_id in orphans:
                if resume:
                    self._launch(job_id)
                else:
                    with self.store.write() as db:
                        moment = clock.iso(self.clock())
                        db.execute("UPDATE status_jobs SET state = 'interrupted', finished_at = ?, updated_at = ? "
                                   "WHERE id = ?", [moment, moment, job_id])
        return orphans

    def wait(self, job_id: int, timeout: float = 60.0) -> None:
        """Wait for a job's thread to end (tests, shutdown)."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
