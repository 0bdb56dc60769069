"""The sandbox enforces KSeF's official API rate limits, and the portal's KSeF client honours them.

The limits come from the official document's ``x-rate-limits`` (and the group named in each 429 answer);
they are counted per (context, IP address) in sliding windows of a second, a minute and an hour. Every
exchange, the 429 answers included, is validated against the document by the ``sandbox_server`` fixture.
"""

from __future__ import annotations

import pytest
import requests

from klucznik.ksef.errors import KsefError
from klucznik.ksef.transport import RetryPolicy
from sandbox import cli
from sandbox.ratelimits import Limit
from sandbox.ratelimits import RateLimiter
from sandbox.ratelimits import official_table
from sandbox.spec import spec_document

CLIENT = "5261040828"
OTHER_CLIENT = "7762811692"


def test_the_table_is_the_official_documents():
    table = official_table(spec_document())
    assert table["GET /certificates/limits"].group == "other"
    assert table["GET /certificates/limits"].limit == Limit(10, 30, 120)
    assert table["POST /permissions/query/entities/grants"].limit == Limit(10, 30, 120)
    assert table["PUT /testdata/certificates/{serialNumber}"].limit == Limit(10, 30, 120)
    assert table["POST /auth/challenge"].group == "-"
    assert table["POST /auth/challenge"].limit == Limit(60, None, None)
    # a named group shares its limits between operations: opening and closing an interactive session
    assert (
        table["POST /sessions/online"].group == table["POST /sessions/online/{referenceNumber}/close"].group
    )
    assert table["GET /sessions"].limit == Limit(5, 10, 60)


def test_counters_are_per_group_per_context_and_address():
    clock = [1000.0]
    limiter = RateLimiter(official_table(spec_document()), now=lambda: clock[0])
    limiter.configure(enabled=True)
    for _ in range(10):
        assert limiter.check("GET /certificates/limits", context="1", ip="10.0.0.1") is None
    refusal = limiter.check("GET /certificates/limits", context="1", ip="10.0.0.1")
    assert refusal is not None and refusal.window == "perSecond" and refusal.retry_after == 1
    # another context from the same address, the same context from another address: their own counters
    assert limiter.check("GET /certificates/limits", context="2", ip="10.0.0.1") is None
    assert limiter.check("GET /certificates/limits", context="1", ip="10.0.0.2") is None
    # "other" gives every operation its own counter; a named group shares one
    assert limiter.check("POST /certificates/query", context="1", ip="10.0.0.1") is None
    for _ in range(10):
        assert limiter.check("POST /sessions/online", context="1", ip="10.0.0.1") is None
    assert limiter.check("POST /sessions/online/{referenceNumber}/close", context="1", ip="10.0.0.1")
    # the public operations count per address only
    for context in range(60):
        assert limiter.check("POST /auth/challenge", context=str(context), ip="10.0.0.1") is None
    assert limiter.check("POST /auth/challenge", context="x", ip="10.0.0.1") is not None
    # the minute window: 30 per minute, the 31st waits until the oldest leaves the window
    for second in range(3):
        clock[0] = 2000.0 + second
        for _ in range(10):
            assert limiter.check("GET /tokens", context="1", ip="10.0.0.1") is None
    clock[0] = 2003.0
    refusal = limiter.check("GET /tokens", context="1", ip="10.0.0.1")
    assert refusal.window == "perMinute" and refusal.threshold == 30 and refusal.retry_after == 57
    clock[0] = 2010.0  # still blocked: the remaining time, not a new count
    assert limiter.check("GET /tokens", context="1", ip="10.0.0.1").retry_after == 50
    clock[0] = 2060.0
    assert limiter.check("GET /tokens", context="1", ip="10.0.0.1") is None
    assert limiter.accepted == 10 + 2 + 1 + 10 + 60 + 30 + 1


def test_off_in_the_test_fixture_unless_turned_on(sandbox_server):
    client = sandbox_server.login(CLIENT)
    for _ in range(40):
        client.limits()
    assert sandbox_server.state.rate_limits.refused == 0


def test_the_sandbox_server_has_them_on_by_default():
    (option,) = [p for p in cli.sandbox.params if p.name == "rate_limits"]
    assert option.default is True


def test_429_with_retry_after_in_both_formats(sandbox_server):
    client = sandbox_server.login(CLIENT)
    token = client.tokens.access_token()
    sandbox_server.rate_limits()
    url = f"{sandbox_server.url}/certificates/limits"
    auth = {"Authorization": f"Bearer {token}"}
    answers = [requests.get(url, headers=auth, timeout=5) for _ in range(10)]
    assert [a.status_code for a in answers] == [200] * 10
    legacy = requests.get(url, headers=auth, timeout=5)
    assert legacy.status_code == 429 and legacy.headers["Retry-After"] == "1"
    assert legacy.json()["status"]["details"] == [
        "Przekroczono limit 10 żądań na sekundę. Spróbuj ponownie po 1 sekundach."
    ]
    problem = requests.get(url, headers={**auth, "X-Error-Format": "problem-details"}, timeout=5)
    assert problem.status_code == 429 and problem.headers["Content-Type"] == "application/problem+json"
    assert problem.json()["title"] == "Too Many Requests" and "Retry-After" in problem.headers
    # another client's context is counted apart, from the same address
    other = sandbox_server.login(OTHER_CLIENT)
    assert other.limits().certificate_limit == 100
    # and the limits can be turned off again
    sandbox_server.rate_limits(False)
    assert requests.get(url, headers=auth, timeout=5).status_code == 200


def test_the_client_waits_as_retry_after_says(sandbox_server):
    """The client's waits move the sandbox clock (no real sleep); every call ends in success."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        sandbox_server.advance(seconds=seconds)

    client = sandbox_server.client(
        sleep=sleep, retries=RetryPolicy(rate_limit_attempts=3, max_retry_after=60)
    )
    sandbox_server.login(CLIENT, client=client)
    waits.clear()  # the login's polls
    sandbox_server.rate_limits(other=(2, 5, 100))
    for _ in range(12):
        assert client.limits().enrollment_limit == 300
    refused = [e for e in sandbox_server.exchanges("/certificates/limits") if e.status == 429]
    assert len(refused) == len(waits) > 0
    assert waits == [float(dict(e.response_headers)["Retry-After"]) for e in refused]
    assert max(waits) > 1  # the minute window made it wait for more than a second


def test_the_client_gives_up_in_plain_words_when_the_wait_is_too_long(sandbox_server):
    client = sandbox_server.client(retries=RetryPolicy(rate_limit_attempts=3, max_retry_after=10))
    sandbox_server.login(CLIENT, client=client)
    sandbox_server.rate_limits(other=(100, 2, 100))
    client.limits()
    client.limits()
    with pytest.raises(KsefError) as caught:
        client.limits()
    assert caught.value.http_status == 429 and caught.value.retry_after > 10
    assert "ogranicza liczbę żądań" in caught.value.message_pl


def test_the_control_route(sandbox_server):
    root = sandbox_server.root
    answer = requests.post(
        f"{root}/_sandbox/rate-limits",
        json={"enabled": True, "reset": True, "groups": {"other": {"perSecond": 1, "perMinute": 2}}},
        timeout=5,
    ).json()
    assert answer["enabled"] is True and answer["groups"]["other"] == {"perSecond": 1, "perMinute": 2}
    assert answer["groups"]["onlineSession"] == {"perSecond": 10, "perMinute": 30, "perHour": 120}
    scaled = requests.post(f"{root}/_sandbox/rate-limits", json={"reset": True, "scale": 10}, timeout=5)
    assert scaled.json()["groups"]["other"] == {"perSecond": 100, "perMinute": 300, "perHour": 1200}
    again = requests.post(f"{root}/_sandbox/rate-limits", json={"scale": 10}, timeout=5)
    assert again.json()["groups"]["other"] == {"perSecond": 100, "perMinute": 300, "perHour": 1200}
    bad = requests.post(f"{root}/_sandbox/rate-limits", json={"groups": {"other": 5}}, timeout=5)
    assert bad.status_code == 400
    assert requests.get(f"{root}/_sandbox/rate-limits", timeout=5).json()["enabled"] is True


def test_the_client_reads_the_limits_in_force(sandbox_server):
    client = sandbox_server.login(CLIENT)
    limits = client.rate_limits()
    assert limits["other"].per_second == 10 and limits["other"].per_minute == 30
    assert limits["other"].per_hour == 120 and limits["sessionList"].per_minute == 10
    assert "collectiveIdentifier" in limits  # the group API 2.7 added
    sandbox_server.rate_limits(other=(2, 5, 100))
    assert client.rate_limits()["other"].per_second == 2


def test_the_public_group_by_its_alias(sandbox_server):
    table = sandbox_server.rate_limits(public=(2, None, None))
    assert table["groups"]["-"] == {"perSecond": 2}
    url = f"{sandbox_server.url}/auth/challenge"
    answers = [requests.post(url, timeout=5).status_code for _ in range(3)]
    assert answers == [200, 200, 429]
