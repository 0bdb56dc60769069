"""The check of all clients shares one budget of KSeF's per-IP limit on login status polls (issue 12)."""

from __future__ import annotations

import time

from klucznik.status.jobs import CheckRunner

BASE = "https://ksef-test.mf.gov.pl/api/v2"


def _runner(**kwargs) -> tuple[CheckRunner, list[float]]:  # noqa: ANN003
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    runner = CheckRunner(store=None, ksef_factory=lambda: None, sleep=sleep, **kwargs)  # type: ignore[arg-type]
    return runner, slept


def test_status_polls_of_all_workers_are_spaced_by_the_shared_budget() -> None:
    runner, slept = _runner(polls_per_second=20.0)
    started = time.monotonic()
    for _ in range(5):
        runner._pace_request("GET", f"{BASE}/auth/20261202-AU-0000000001-0000000001-01")
    elapsed = time.monotonic() - started
    assert len(slept) == 4 and elapsed >= 4 / 20.0 - 0.01  # five polls take at least four intervals


def test_other_calls_are_not_paced() -> None:
    runner, slept = _runner(polls_per_second=20.0)
    for method, path in [("POST", "/auth/challenge"), ("POST", "/auth/xades-signature"),
                         ("GET", "/auth/sessions"), ("POST", "/auth/token/redeem"), ("GET", "/certificates/limits")]:
        for _ in range(3):
            runner._pace_request(method, BASE + path)
    assert slept == []


def test_pacing_off_never_waits() -> None:
    runner, slept = _runner(polls_per_second=None)
    for _ in range(5):
        runner._pace_request("GET", f"{BASE}/auth/20261202-AU-1")
    assert slept == []
