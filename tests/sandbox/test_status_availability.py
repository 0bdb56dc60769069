"""KSeF availability in three honest states, against the sandbox's Latarnia and its challenge endpoint: available,
Latarnia unreachable (the portal's own probe answers), failure or maintenance announced; on TEST/DEMO the probe
decides; and the page's partial, cached and refreshed in the background."""

from __future__ import annotations

import socket

import pytest

from klucznik.ksef.transport import RetryPolicy
from klucznik.status.availability import AvailabilityMonitor
from klucznik.status.availability import check_availability
from tests.support.defaults import NOW


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _client(server, **kwargs):
    return server.client(retries=RetryPolicy(attempts=1, rate_limit_attempts=0), **kwargs)


def test_available(sandbox_server) -> None:
    report = check_availability(_client(sandbox_server), environment="sandbox", at=NOW)
    assert (report.state, report.latarnia_status, report.probe_ok) == ("available", "AVAILABLE", None)
    assert not sandbox_server.exchanges("/auth/challenge")  # Latarnia answered: no probe needed


@pytest.mark.parametrize("status", ["FAILURE", "MAINTENANCE", "TOTAL_FAILURE"])
def test_announced_failure_or_maintenance_with_its_messages(sandbox_server, status) -> None:
    sandbox_server.set_availability(status, title="Awaria KSeF", text="Niedostępność systemu.")
    report = check_availability(_client(sandbox_server), environment="sandbox", at=NOW)
    assert (report.state, report.latarnia_status) == ("announced", status)
    assert report.messages[0].title == "Awaria KSeF" and report.messages[0].start is not None


def test_latarnia_unreachable_then_the_probe_answers(sandbox_server) -> None:
    client = _client(sandbox_server, latarnia_url=_closed_port() + "/latarnia")
    report = check_availability(client, environment="sandbox", at=NOW)
    assert (report.state, report.probe_ok, report.latarnia_status) == ("latarnia_unreachable", True, None)
    assert report.latarnia_error is not None
    assert len(sandbox_server.exchanges("/auth/challenge")) == 1


def test_latarnia_and_ksef_both_unreachable_is_down() -> None:
    from klucznik.ksef.client import KsefClient

    root = _closed_port()
    client = KsefClient(root + "/v2", latarnia_url=root + "/latarnia", retries=RetryPolicy(attempts=1),
                        timeout=(1.0, 1.0))
    report = check_availability(client, environment="prod", at=NOW)
    assert (report.state, report.probe_ok) == ("down", False)
    assert "połączyć z KSeF" in report.probe_error.pl


def test_on_test_the_probe_decides_over_a_stale_latarnia(sandbox_server) -> None:
    sandbox_server.set_availability("TOTAL_FAILURE", title="Stary komunikat")
    report = check_availability(_client(sandbox_server), environment="test", at=NOW)
    assert (report.state, report.probe_decides, report.latarnia_status) == ("available", True, "TOTAL_FAILURE")
    sandbox_server.inject("POST /auth/challenge", "error", status=503, times=None)
    down = check_availability(_client(sandbox_server), environment="test", at=NOW)
    assert (down.state, down.probe_ok) == ("down", False)


def test_monitor_caches_and_refreshes_in_the_background(sandbox_server) -> None:
    calls = []
    moment = [NOW]

    def source():
        calls.append(1)
        return _client(sandbox_server), "sandbox"

    monitor = AvailabilityMonitor(source, clock=lambda: moment[0])
    assert monitor.current() is None  # the first answer is on its way
    monitor.wait()
    assert monitor.current().state == "available" and len(calls) == 1
    sandbox_server.set_availability("FAILURE", title="Awaria")
    assert monitor.current().state == "available"  # still fresh: cached
    from datetime import timedelta

    moment[0] = NOW + timedelta(minutes=3)
    assert monitor.current().state == "available"  # stale: answered from the cache while refreshing
    monitor.wait()
    assert monitor.current().state == "announced" and len(calls) == 2


def test_the_page_shows_an_announced_failure_and_what_it_means(app, web, store, client_company, sandbox_server,
                                                             sandbox_office) -> None:
    app.config["KLUCZNIK_CLOCK"] = lambda: NOW
    sandbox_server.set_availability("FAILURE", title="Awaria KSeF", text="Niedostępność systemu.")
    first = web.get("/status/availability", htmx=True).get_data(as_text=True)
    assert "Sprawdzam, czy KSeF jest dostępny" in first and 'hx-trigger="load delay:1s"' in first
    app.extensions["klucznik.availability"].wait()
    page = web.get("/status/availability", htmx=True).get_data(as_text=True)
    assert "Ogłoszono awarię KSeF" in page and "Awaria KSeF" in page and "Niedostępność systemu." in page
    assert "tryby offline" in page and "certyfikat KSeF typu Offline" in page
