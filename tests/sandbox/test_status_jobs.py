"""Checking many clients against the sandbox: bounded concurrency, outcomes stored in batches (not one write per
client), a 429 with Retry-After waited out, and "check all" as a job that can be cancelled and that a restarted
portal resumes or marks interrupted."""

from __future__ import annotations

import json

import pytest

from klucznik.ksef.transport import RetryPolicy
from klucznik.status import jobs
from klucznik.status.results import latest_checks
from tests.support.status import add_client
from tests.support.status import enroll_in_sandbox

NIPS = ["5261040828", "7740001454", "1132853869", "5213017228"]


@pytest.fixture
def office(store, sandbox_server, sandbox_office):
    at = sandbox_server.state.now()
    ids = []
    for index, nip in enumerate(NIPS):
        with store.write() as db:
            client_id = add_client(db, nip, f"Firma {index}", at=at)
        enroll_in_sandbox(sandbox_server, store, client_id, nip, at=at)
        ids.append(client_id)
    return ids


def _runner(store, server, **kwargs):
    retries = kwargs.pop("retries", RetryPolicy(attempts=2, backoff=0.0, rate_limit_attempts=0))
    return jobs.CheckRunner(store, ksef_factory=lambda: server.client(retries=retries), clock=server.state.now,
                            poll_interval=0.0, **kwargs)


def _generation(store) -> int:
    with store.connect() as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def test_many_clients_are_checked_concurrently_and_stored_in_batches(store, sandbox_server, office) -> None:
    before = _generation(store)
    runner = _runner(store, sandbox_server, concurrency=2, batch_size=2, flush_seconds=60)
    outcomes = runner.run(office)
    assert sorted(o.client_id for o in outcomes) == sorted(office) and all(o.ok for o in outcomes)
    assert runner.writes == 2 and _generation(store) == before + 2  # two batches of two, not four writes
    with store.connect() as db:
        assert all(c.ok for c in latest_checks(db, office).values())


def test_a_429_pauses_the_workers_for_retry_after_and_the_client_is_checked_again(store, sandbox_server,
                                                                                 office) -> None:
    sandbox_server.inject("POST /certificates/query", "rate_limit", retry_after=1, times=1)
    runner = _runner(store, sandbox_server, concurrency=2)
    outcomes = runner.run(office[:2])
    assert runner.rate_limited == 1 and all(o.ok for o in outcomes), outcomes
    assert [e.status for e in sandbox_server.exchanges("/certificates/query")].count(429) == 1


def test_check_all_job_records_progress_and_finishes(store, sandbox_server, office) -> None:
    manager = jobs.JobManager(store, lambda: _runner(store, sandbox_server, concurrency=2, batch_size=1),
                              clock=sandbox_server.state.now)
    job_id = manager.start(actor="admin", at=sandbox_server.state.now())
    manager.wait(job_id)
    with store.connect() as db:
        job = jobs.get_job(db, job_id)
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log")]
    assert (job.state, job.total, job.done, job.failed, job.percent) == ("done", 4, 4, 0, 100)
    assert "status.check_all" in actions


def test_cancel_stops_before_the_next_client(store, sandbox_server, office) -> None:
    sandbox_server.inject("POST /auth/challenge", "slow", delay=0.3, times=None)
    manager = jobs.JobManager(store, lambda: _runner(store, sandbox_server, concurrency=1, batch_size=1),
                              clock=sandbox_server.state.now)
    job_id = manager.start(actor="admin", at=sandbox_server.state.now())
    manager.cancel(job_id, actor="admin", at=sandbox_server.state.now())
    manager.wait(job_id)
    with store.connect() as db:
        job = jobs.get_job(db, job_id)
    assert job.state == "cancelled" and job.done < 4 and job.cancel_requested


@pytest.mark.parametrize("resume", [True, False])
def test_a_restarted_portal_resumes_or_marks_interrupted(store, sandbox_server, office, resume) -> None:
    at = sandbox_server.state.now()
    # a job that was running when the portal stopped: the first client was checked already
    runner = _runner(store, sandbox_server)
    with store.write() as db:
        job_id = db["status_jobs"].insert({
            "state": "running", "client_ids": json.dumps(office), "total": 4, "done": 0, "failed": 0,
            "cancel_requested": 0, "created_at": "2026-12-01T09:00:00Z", "updated_at": "2026-12-01T09:00:00Z",
        }).last_pk
    runner.run(office[:1], job_id=job_id)
    with store.connect() as db:
        assert jobs.remaining_clients(db, job_id) == office[1:]
    manager = jobs.JobManager(store, lambda: _runner(store, sandbox_server, concurrency=2), clock=lambda: at)
    assert manager.recover(resume=resume) == [job_id]
    manager.wait(job_id)
    with store.connect() as db:
        job = jobs.get_job(db, job_id)
        checked = db.execute("SELECT count(*) FROM status_checks WHERE job_id = ?", [job_id]).fetchone()[0]
    if resume:
        assert (job.state, job.done, checked) == ("done", 4, 4)  # nobody checked twice
    else:
        assert (job.state, job.done, checked) == ("interrupted", 1, 1)
