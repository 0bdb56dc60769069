"""The KSeF status page: KSeF's availability, every client at a glance, one client's timeline and errors.

The portal's start page once clients exist. Views stay thin: parse the filters, call
:mod:`klucznik.status`, render the page or its htmx partial.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import redirect
from flask import request
from flask import url_for

from blueprints.auth import login_required
from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import now
from blueprints.forms import EmptyForm
from blueprints.htmx import htmx_partial_or_page
from blueprints.htmx import render_page
from klucznik.authorize.session import ksef_client_for
from klucznik.clock import utcnow
from klucznik.ksef.client import KsefClient
from klucznik.ksef.transport import RetryPolicy
from klucznik.records import clients
from klucznik.records import office
from klucznik.status import overview
from klucznik.status import results
from klucznik.status.availability import OFFLINE_MEANING
from klucznik.status.availability import AvailabilityMonitor

bp = Blueprint("status", __name__)


def _page_arg() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


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
                                sort=f["sort"], page=_page_arg())
    return htmx_partial_or_page("status/index.html", "status/_table.html", result=page, f=page.filters,
                                form=EmptyForm())


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
    row = overview.status_page(db, at=at, query=company.nip, per_page=1).rows
    return render_page(
        "status/client.html",
        client=company,
        row=row[0] if row and row[0].client_id == client_id else None,
        timeline=overview.timeline(db, client_id, at=at),
        checks=results.history(db, client_id),
        errors=overview.ksef_errors_of(db, client_id),
        at=at,
        form=EmptyForm(),
    )


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
