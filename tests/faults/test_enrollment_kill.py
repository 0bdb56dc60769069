"""Method 2 survives the portal being killed (SIGKILL) at each step: before and after each KSeF call, including
between the enrollment and the retrieval. A new process takes the attempt up again after the restart
(:func:`klucznik.authorize.flow.resume_unfinished`), and every certificate KSeF issued has its key."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from klucznik import clock
from klucznik.authorize.enroll import confirm
from klucznik.authorize.flow import resume_unfinished
from klucznik.authorize.requests import get_request
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import enrollments
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.method2 import every_issued_certificate_has_its_key
from tests.support.method2 import to_review

ROOT = Path(__file__).resolve().parents[2]

KILL_POINTS = [
    ("enrollment_data", "before"),  # before any key exists
    ("enroll", "before"),  # keys stored, the first request never left
    ("enroll", "after"),  # KSeF accepted the request, the reference was lost with the process
    ("enrollment_status", "before"),  # between the enrollment and the retrieval
    ("enrollment_status", "after"),  # KSeF issued, the serial was lost
    ("retrieve", "before"),
    ("retrieve", "after"),  # downloaded, not yet stored
    ("revoke_current", "before"),  # credentials stored, the client's session not yet ended
    ("submit_xades", "after"),  # the proof login sent, its answer lost
]


@pytest.mark.parametrize(("method", "when"), KILL_POINTS)
def test_kill_at_each_step_then_resume(store, instance_path, client_company, sandbox_server, sandbox_office, method,
                                       when):
    request, at = to_review(store, sandbox_server, client_company)
    confirm(store, request_id=request.id, actor="admin", at=at)
    worker = subprocess.run(
        [sys.executable, "-m", "tests.faults.enrollment_worker", str(instance_path), sandbox_server.url,
         str(request.id), method, when, clock.iso(at)],
        cwd=ROOT, capture_output=True, timeout=120,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr.decode()[-2000:]

    # a new process (a restarted portal) opens the instance and takes up what was interrupted
    restarted = Store(instance_path, kdf=TEST_KDF)
    restarted.login(ADMIN, ADMIN_PASSWORD)
    later = at
    for _ in range(6):
        later += timedelta(minutes=2)  # past RESEND_AFTER: a request whose answer was lost is found or resent
        touched = resume_unfinished(restarted, ksef_for=sandbox_server.client, actor="system", at=later,
                                    sleep=lambda seconds: None)
        with restarted.connect() as db:
            current = get_request(db, request.id)
        if current.final:
            break
    assert touched == [request.id] or current.final
    assert current.status == "done", current
    assert current.followup["proof"]["ok"] is True
    with restarted.connect() as db:
        rows = enrollments.for_request(db, request.id)
        active = db.execute("SELECT COUNT(*) FROM credentials WHERE status = 'active'").fetchone()[0]
    assert [r.status for r in rows] == ["stored", "stored"] and active == 2
    assert every_issued_certificate_has_its_key(restarted, sandbox_server, client_company.nip) >= 2


def test_the_restarted_portal_takes_up_the_attempt_by_itself(store, instance_path, client_company, sandbox_server,
                                                             sandbox_office):
    """Killed between the enrollment and the retrieval; the first page after the restart resumes it."""
    from blueprints.methods import RESUME_THREAD
    from tests.support.web import WebClient
    from tests.support.web import make_app

    request, at = to_review(store, sandbox_server, client_company)
    confirm(store, request_id=request.id, actor="admin", at=at)
    worker = subprocess.run(
        [sys.executable, "-m", "tests.faults.enrollment_worker", str(instance_path), sandbox_server.url,
         str(request.id), "enrollment_status", "before", clock.iso(at)],
        cwd=ROOT, capture_output=True, timeout=120,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr.decode()[-2000:]
    restarted = Store(instance_path, kdf=TEST_KDF)
    app = make_app(restarted, KLUCZNIK_CLOCK=lambda: at + timedelta(minutes=5),
                   KSEF_CLIENT_OPTIONS={"sleep": lambda seconds: None, "timeout": (2.0, 5.0)})
    web = WebClient(app.test_client())
    assert web.login().status_code == 303  # the login unseals; the next page starts the resumption
    web.get("/clients")
    thread = app.extensions[RESUME_THREAD]
    assert thread is not None
    thread.join(timeout=60)
    with restarted.connect() as db:
        current = get_request(db, request.id)
    assert current.status == "done" and current.followup["proof"]["ok"] is True
    assert every_issued_certificate_has_its_key(restarted, sandbox_server, client_company.nip) == 2
