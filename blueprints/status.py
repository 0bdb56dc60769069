"""The KSeF status page: KSeF's availability, every client at a glance, one client's timeline and errors.

The portal's start page once clients exist. Views stay thin: parse the filters, call
:mod:`klucznik.status`, render the page or its htmx partial.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import redirect
from flask import request
from flask import url_for

from blueprints.auth import login_required
from blueprints.context import client_ip
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import now
from blueprints.forms import EmptyForm
from blueprints.htmx import htmx_partial_or_page
from blueprints.htmx import redirect_to
from blueprints.htmx import render_page
from blueprints.urls import page_arg
from klucznik.authorize import office as office_identity
from klucznik.authorize.session import ksef_client_for
from klucznik.clock import utcnow
from klucznik.ksef.client import KsefClient
from klucznik.ksef.transport import RetryPolicy
from klucznik.records import audit
from klucznik.records import clients
from klucznik.records import office
from klucznik.status import checks
from klucznik.status import jobs
from klucznik.status import overview
from klucznik.status import results
from klucznik.status.availability import OFFLINE_MEANING
from klucznik.status.availability import AvailabilityMonitor

bp = Blueprint("status", __name__)

#: ``app.extensions`` key set once the portal looked, after the unseal, for "check all" jobs a stop left running.
JOBS_RECOVERED = "klucznik.status_jobs_recovered"
_recover_lock = threading.Lock()


@bp.before_app_request
def _recover_jobs_after_unseal() -> None:
    """Once per process, at the first request after the unseal (any page, like the resumption of interrupted
    enrollments in :mod:`blueprints.methods`): a "check all" job a stopped portal left running resumes (or is
    marked interrupted) without waiting for someone to open the status page."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if JOBS_RECOVERED in app.extensions or get_store().is_sealed:
        return
    with _recover_lock:
        if JOBS_RECOVERED in app.extensions:
            return
        app.extensions[JOBS_RECOVERED] = True
        with get_store().connect() as db:
            left_running = jobs.left_running(db)
        if left_running:
            job_manager()  # creating the manager recovers every job left running


def _filters() -> dict[str, str]:
    return {
        "q": request.args.get("q", "")[:100],
        "show": request.args.get("show", ""),
        "method": request.args.get("method", ""),
        "sort": request.args.get("sort", "name"),
    }


@bp.route("/")
@login_required
def home() -> Any:
    """The start page: the status page once the office has clients, the clients list before."""
    if not overview.has_clients(get_db()):
        return redirect(url_for("clients.index"), 303)
    return index()


@bp.route("/status")
@login_required
def index() -> Any:
    """The table of every client; an htmx request (filters, search, sorting, paging) gets only the table."""
    f = _filters()
    page = overview.status_page(get_db(), at=now(), query=f["q"], show=f["show"], method=f["method"],
                                sort=f["sort"], page=page_arg())
    job = jobs.latest_job(get_db())
    if job is not None and job.running:
        job_manager()  # a job a stopped portal left running resumes (or is marked interrupted)
    return htmx_partial_or_page("status/index.html", "status/_table.html", result=page, f=page.filters,
                                form=EmptyForm(), job=job)


@bp.route("/status/availability")
@login_required
def availability() -> Any:
    """KSeF's availability (an htmx partial that reloads itself while the first answer is on its way)."""
    report = monitor().current()
    return render_page("status/_availability.html", report=report, offline_meaning=OFFLINE_MEANING)


@bp.route("/status/clients/<int:client_id>")
@login_required
def client(client_id: int) -> Any:
    """One client: its certificates on a timeline, its live checks and every KSeF error met with it."""
    db = get_db()
    company = clients.get_client(db, client_id)
    at = now()
    return render_page(
        "status/client.html",
        client=company,
        row=overview.client_row(db, client_id, at=at),
        timeline=overview.timeline(db, client_id, at=at),
        checks=results.history(db, client_id),
        errors=overview.ksef_errors_of(db, client_id),
        at=at,
        form=EmptyForm(),
    )


# -- live checks -----------------------------------------------------------------------------------


def office_login() -> Any:
    """The office's own KSeF login in a client's context for method-1 checks: the office's certificate of the
    office page (``KLUCZNIK_OFFICE_LOGIN``, a callable ``(ksef, client_nip)``, replaces it in tests)."""
    configured = current_app.config.get("KLUCZNIK_OFFICE_LOGIN")
    if configured is not None:
        return configured
    config = current_app.config
    return office_identity.login_in_context(
        get_store().connect,
        clock=lambda: (config.get("KLUCZNIK_CLOCK") or utcnow)(),
        poll_interval=config.get("KLUCZNIK_POLL_INTERVAL", 1.0),
    )


@bp.route("/status/clients/<int:client_id>/check", methods=["POST"])
@login_required
def check_now(client_id: int) -> Any:
    """"Sprawdź teraz": one live check, recorded with an audit entry, then the client's status page."""
    form = EmptyForm()
    clients.get_client(get_db(), client_id)
    if form.validate_on_submit():
        store = get_store()
        with ksef_client(get_db()) as ksef:
            outcome = checks.check_client(store.connect, client_id, ksef=ksef, at=now(), office_login=office_login(),
                                          poll_interval=current_app.config.get("KLUCZNIK_POLL_INTERVAL", 1.0))
        with store.write() as db:
            results.record_outcomes(db, [outcome])
            audit.record(db, actor=g.user.username, action="status.check", object_type="client",
                         object_id=client_id, details={"ok": outcome.ok, "error": outcome.error_code},
                         ip=client_ip(), at=now())
    return redirect_to(url_for("status.client", client_id=client_id))


def job_manager() -> jobs.JobManager:
    """The app's "check all" manager (created on first use; a job a stopped portal left running resumes)."""
    found = current_app.extensions.get("klucznik.status_jobs")
    if found is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        store = get_store()
        config = app.config
        method1_login = office_login()

        def clock() -> Any:
            return (config.get("KLUCZNIK_CLOCK") or utcnow)()

        def ksef_factory() -> KsefClient:
            with store.connect() as db:
                options = {"timeout": (5.0, 30.0), **config.get("KSEF_CLIENT_OPTIONS", {})}
                return ksef_client_for(db, **options)

        def runner() -> jobs.CheckRunner:
            return jobs.CheckRunner(store, ksef_factory=ksef_factory, office_login=method1_login,
                                    clock=clock, concurrency=config.get("KLUCZNIK_CHECK_CONCURRENCY", 4),
                                    batch_size=config.get("KLUCZNIK_CHECK_BATCH", 50),
                                    poll_interval=config.get("KLUCZNIK_POLL_INTERVAL", 1.0))

        found = jobs.JobManager(store, runner, clock=clock)
        app.extensions["klucznik.status_jobs"] = found
        found.recover(resume=config.get("KLUCZNIK_RESUME_CHECKS", True))
    return found


@bp.route("/status/jobs", methods=["POST"])
@login_required
def start_job() -> Any:
    """"Sprawdź wszystkich": start the background job (or show the one running)."""
    if EmptyForm().validate_on_submit():
        job_manager().start(actor=g.user.username, at=now(), ip=client_ip())
    return redirect_to(url_for("status.index"))


@bp.route("/status/jobs/progress")
@login_required
def job_progress() -> Any:
    """The progress bar (it polls itself while the job runs)."""
    job_manager()
    job = jobs.latest_job(get_db())
    response = render_page("status/_job.html", job=job, form=EmptyForm())
    if job is not None and not job.running:
        response.headers["HX-Trigger"] = "status-refresh"  # the table reloads with the new results
    return response


@bp.route("/status/jobs/<int:job_id>/cancel", methods=["POST"])
@login_required
def cancel_job(job_id: int) -> Any:
    """Stop the job before its next client."""
    if EmptyForm().validate_on_submit():
        job_manager().cancel(job_id, actor=g.user.username, at=now(), ip=client_ip())
    return redirect_to(url_for("status.index"))


# -- KSeF availability, cached per app -----------------------------------------------------------


def ksef_client(db: Any) -> KsefClient:
    """A KSeF client for the office's environment (``KSEF_CLIENT_OPTIONS`` adds e.g. retries in tests)."""
    options = {"timeout": (5.0, 30.0), **current_app.config.get("KSEF_CLIENT_OPTIONS", {})}
    return ksef_client_for(db, **options)


def monitor() -> AvailabilityMonitor:
    """The app's availability monitor (created on first use)."""
    found = current_app.extensions.get("klucznik.availability")
    if found is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        store = get_store()
        config = app.config

        def source() -> tuple[KsefClient, str] | None:
            if store.is_sealed:
                return None
            with store.connect() as db:
                profile = office.get_office(db)
                options = {"timeout": (3.0, 5.0), **config.get("KSEF_CLIENT_OPTIONS", {}),
                           "retries": RetryPolicy(attempts=1, rate_limit_attempts=0)}
                return ksef_client_for(db, **options), profile.ksef_environment

        found = AvailabilityMonitor(source, clock=lambda: (config.get("KLUCZNIK_CLOCK") or utcnow)())
        app.extensions["klucznik.availability"] = found
    return found


def _banner() -> overview.Banner | None:
    """The warning on every page (``None`` for anonymous pages or a sealed instance)."""
    if g.get("user") is None or get_store().is_sealed:
        return None
    if "status_banner" not in g:
        g.status_banner = overview.banner(get_db(), at=now())
    return g.status_banner


@bp.record_once
def _setup(state: Any) -> None:
    app: Flask = state.app
    app.jinja_env.globals["status_banner"] = _banner
