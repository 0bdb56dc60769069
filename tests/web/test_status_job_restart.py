"""A "check all" job a stopped portal left running is taken up right after the unseal, at the first page anyone
opens (not only when someone opens the status page): resumed, or marked interrupted when resuming is off."""

from __future__ import annotations

import json

from blueprints.status import JOBS_RECOVERED
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.status import jobs
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.status import add_client
from tests.support.web import WebClient
from tests.support.web import make_app


def _job_left_running(store: Store, client_ids: list[int]) -> int:
    with store.write() as db:
        return db["status_jobs"].insert({
            "state": "running", "client_ids": json.dumps(client_ids), "total": len(client_ids), "done": 0,
            "failed": 0, "cancel_requested": 0, "created_at": "2026-12-01T09:00:00Z",
            "updated_at": "2026-12-01T09:00:00Z",
        }).last_pk


def _log_in_without_the_start_page(web: WebClient) -> None:
    """Log in but open the clients page instead of the start page (which is the status page)."""
    web.get("/login")
    response = web.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD})
    assert response.status_code == 303
    web.csrf = None
    assert web.get("/clients").status_code == 200


def _restarted_portal(instance_path, **config):
    restarted = Store(instance_path, kdf=TEST_KDF)
    assert restarted.is_sealed
    app = make_app(restarted, KLUCZNIK_CLOCK=lambda: NOW, **config)
    return restarted, app, WebClient(app.test_client())


def test_an_interrupted_job_is_marked_at_the_first_page_after_the_unseal(store, instance_path) -> None:
    with store.write() as db:
        ids = [add_client(db, "5261040828", "Alfa", at=NOW), add_client(db, "7740001454", "Beta", at=NOW)]
    job_id = _job_left_running(store, ids)
    restarted, app, web = _restarted_portal(instance_path, KLUCZNIK_RESUME_CHECKS=False)
    web.get("/login")  # sealed: nothing is read yet
    assert JOBS_RECOVERED not in app.extensions
    with store.connect() as db:
        assert jobs.get_job(db, job_id).state == "running"
    _log_in_without_the_start_page(web)  # any page, not the status page
    with restarted.connect() as db:
        job = jobs.get_job(db, job_id)
    assert (job.state, job.done) == ("interrupted", 0)
    assert job.finished_at is not None


def test_a_job_left_running_resumes_after_the_unseal_without_the_status_page(store, instance_path) -> None:
    job_id = _job_left_running(store, [])  # nothing left to check: the resumed job only has to finish
    restarted, app, web = _restarted_portal(instance_path)
    _log_in_without_the_start_page(web)
    manager = app.extensions["klucznik.status_jobs"]
    manager.wait(job_id, timeout=30)
    with restarted.connect() as db:
        assert jobs.get_job(db, job_id).state == "done"


def test_no_job_left_running_creates_no_manager(anon, app) -> None:
    _log_in_without_the_start_page(anon)
    assert app.extensions.get(JOBS_RECOVERED) is True
    assert "klucznik.status_jobs" not in app.extensions
