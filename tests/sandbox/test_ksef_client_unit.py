"""KSeF client pieces that need no server: environments, error parsing, dates, the token holder."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import requests

from klucznik.clock import parse as parse_datetime
from klucznik.errors import PortalError
from klucznik.ksef.client import KsefClient
from klucznik.ksef.environments import base_url_for
from klucznik.ksef.environments import environment
from klucznik.ksef.errors import KsefError
from klucznik.ksef.errors import error_from_response
from klucznik.ksef.models import AuthStatus
from klucznik.ksef.models import AuthTokens
from klucznik.ksef.models import EnrollmentData
from klucznik.ksef.models import TokenInfo
from klucznik.ksef.transport import RetryPolicy
from klucznik.ksef.transport import TokenHolder

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _response(
    status: int, body: dict, content_type: str = "application/json", **headers: str
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update({"Content-Type": content_type, **headers})
    return response


@pytest.mark.parametrize(
    ("name", "api", "qr", "latarnia"),
    [
        (
            "test",
            "https://api-test.ksef.mf.gov.pl/v2",
            "https://qr-test.ksef.mf.gov.pl",
            "https://api-latarnia-test.ksef.mf.gov.pl",
        ),
        ("demo", "https://api-demo.ksef.mf.gov.pl/v2", "https://qr-demo.ksef.mf.gov.pl", None),
        (
            "prod",
            "https://api.ksef.mf.gov.pl/v2",
            "https://qr.ksef.mf.gov.pl",
            "https://api-latarnia.ksef.mf.gov.pl",
        ),
        ("sandbox", "http://127.0.0.1:8765/v2", "http://127.0.0.1:8765/qr", "http://127.0.0.1:8765/latarnia"),
    ],
)
def test_environments(name, api, qr, latarnia):
    env = environment(name)
    assert (env.api_url, env.qr_url, env.latarnia_url) == (api, qr, latarnia)
    assert base_url_for(name) == api


def test_sandbox_url_may_be_given_with_or_without_v2():
    assert base_url_for("sandbox", "http://127.0.0.1:9000/") == "http://127.0.0.1:9000/v2"
    assert base_url_for("sandbox", "http://127.0.0.1:9000/v2") == "http://127.0.0.1:9000/v2"
    assert KsefClient("http://127.0.0.1:9000/v2").latarnia.url == "http://127.0.0.1:9000/latarnia"
    assert KsefClient(base_url_for("prod")).latarnia.url == "https://api-latarnia.ksef.mf.gov.pl"


def test_unknown_environment_is_a_portal_error():
    with pytest.raises(PortalError) as caught:
        environment("staging")
    assert "staging" in caught.value.message_pl


def test_legacy_exception_response():
    error = error_from_response(
        _response(
            400,
            {
                "exception": {
                    "exceptionDetailList": [
                        {
                            "exceptionCode": 21111,
                            "exceptionDescription": "Nieprawidłowe wyzwanie autoryzacyjne.",
                            "details": ["x"],
                        },
                    ],
                    "serviceCode": "00-1",
                    "timestamp": "2025-10-11T12:23:56.0154302",
                }
            },
        )
    )
    assert isinstance(error, PortalError)
    assert (error.http_status, error.codes, error.details) == (400, (21111,), ("x",))
    assert error.code == "ksef_21111"
    assert "10 minut" in error.message_pl and "10 minutes" in error.message_en


def test_problem_details_with_several_errors():
    error = error_from_response(
        _response(
            400,
            {
                "title": "Bad Request",
                "status": 400,
                "instance": "/v2/x",
                "detail": "d",
                "traceId": "t",
                "timestamp": "2025-07-11T12:23:56.0154302+00:00",
                "errors": [
                    {"code": 25003, "description": "Dane w CSR…"},
                    {"code": 21405, "description": "Błąd"},
                ],
            },
            "application/problem+json",
        )
    )
    assert error.codes == (25003, 21405)
    assert error.trace_id == "t"
    assert "wniosku o certyfikat" in error.message_pl


def test_forbidden_carries_the_reason_code():
    error = error_from_response(
        _response(
            403,
            {
                "title": "Forbidden",
                "status": 403,
                "detail": "Brak wymaganych uprawnień…",
                "reasonCode": "missing-permissions",
                "timestamp": "2025-07-11T12:23:56+00:00",
            },
            "application/problem+json",
        )
    )
    assert error.reason_code == "missing-permissions"
    assert error.descriptions == ("Brak wymaganych uprawnień…",)
    assert "uprawnie" in error.message_pl


def test_retry_after_is_read_from_the_answer():
    error = error_from_response(
        _response(429, {"status": {"code": 429, "description": "Too Many Requests"}}, **{"Retry-After": "30"})
    )
    assert error.retry_after == 30.0
    assert "Odczekaj" in error.message_pl


def test_unparsable_error_body_still_gives_a_message():
    response = requests.Response()
    response.status_code = 502
    response._content = b"<html>bad gateway</html>"
    error = error_from_response(response)
    assert error.http_status == 502 and error.codes == ()
    assert "chwilowe problemy" in error.message_pl


def test_dates_with_seven_fraction_digits_and_no_zone():
    assert parse_datetime("2025-07-11T12:23:56.0154302+00:00") == datetime(
        2025, 7, 11, 12, 23, 56, 15430, tzinfo=UTC
    )
    assert parse_datetime("2025-10-11T12:23:56.0154302") == datetime(
        2025, 10, 11, 12, 23, 56, 15430, tzinfo=UTC
    )
    assert parse_datetime("2025-07-11T14:23:56+02:00") == datetime(2025, 7, 11, 12, 23, 56, tzinfo=UTC)


def test_failed_auth_status_explains_itself():
    status = AuthStatus.from_json(
        {
            "startDate": "2026-01-01T00:00:00Z",
            "authenticationMethod": "QualifiedSeal",
            "authenticationMethodInfo": {
                "category": "XadesSignature",
                "code": "xades.qualified-seal",
                "displayName": "P",
            },
            "status": {"code": 460, "description": "…", "details": ["Certyfikat odwołany"]},
        }
    )
    error = status.error()
    assert error.codes == (460,) and error.details == ("Certyfikat odwołany",)
    assert "certyfikat" in error.message_pl.lower()


def test_enrollment_data_accepts_given_name_as_a_list_and_builds_the_subject():
    data = EnrollmentData.from_json(
        {
            "commonName": "Jan Kowalski",
            "countryName": "PL",
            "givenName": ["Jan", "Maria"],
            "surname": "Kowalski",
            "serialNumber": "PNOPL-90010112345",
        }
    )
    assert data.given_name == "Jan Maria"
    assert [oid for oid, _ in data.attributes()] == ["2.5.4.3", "2.5.4.4", "2.5.4.42", "2.5.4.6", "2.5.4.5"]
    assert data.x509_name().rfc4514_string().startswith("2.5.4.5=PNOPL-90010112345")


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(backoff=0.5, backoff_max=3.0)
    assert [policy.backoff_for(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _tokens(access_until: datetime, refresh_until: datetime) -> AuthTokens:
    return AuthTokens(TokenInfo("access-1", access_until), TokenInfo("refresh", refresh_until))


def test_token_holder_refreshes_within_the_margin_only():
    clock = _Clock(T0)
    asked: list[str] = []

    def refresher(refresh_token: str) -> TokenInfo:
        asked.append(refresh_token)
        return TokenInfo(f"access-{len(asked) + 1}", clock.now + timedelta(minutes=15))

    holder = TokenHolder(
        _tokens(T0 + timedelta(minutes=15), T0 + timedelta(days=7)),
        refresher=refresher,
        clock=clock,
        margin=timedelta(seconds=60),
    )
    assert holder.access_token() == "access-1"
    clock.now = T0 + timedelta(minutes=13, seconds=59)
    assert holder.access_token() == "access-1" and asked == []
    clock.now = T0 + timedelta(minutes=14, seconds=1)
    assert holder.access_token() == "access-2" and asked == ["refresh"]
    assert holder.access_token() == "access-2" and holder.refresh_count == 1


def test_token_holder_refuses_after_the_refresh_token_expired():
    clock = _Clock(T0 + timedelta(days=8))
    holder = TokenHolder(
        _tokens(T0, T0 + timedelta(days=7)), refresher=lambda _: pytest.fail("no refresh"), clock=clock
    )
    with pytest.raises(KsefError) as caught:
        holder.access_token()
    assert caught.value.code == "ksef_session_expired"


def test_calls_needing_a_session_say_so_without_a_request():
    with pytest.raises(KsefError) as caught:
        KsefClient("http://127.0.0.1:9/v2").sessions()
    assert caught.value.code == "ksef_not_authenticated"


def test_identifiers_are_checked_before_they_reach_a_url():
    with pytest.raises(KsefError):
        KsefClient("http://127.0.0.1:9/v2").auth_status("../../etc", "token")
