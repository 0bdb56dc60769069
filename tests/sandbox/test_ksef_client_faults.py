"""The KSeF client against the sandbox with injected faults: retries, Retry-After, drops, timeouts, refresh."""

from __future__ import annotations

import socket

import pytest
import requests

from klucznik.ksef.client import KsefClient
from klucznik.ksef.errors import KsefError
from klucznik.ksef.transport import RetryPolicy
from sandbox.faults import Fault
from sandbox.faults import FaultInjector

CLIENT = "5261040828"
KEYS = "GET /security/public-key-certificates"


def _count(sandbox_server, suffix: str) -> int:
    return len(sandbox_server.exchanges(suffix))


def test_idempotent_get_is_retried_with_backoff_after_503(sandbox_server):
    sandbox_server.inject(KEYS, "error", status=503, times=2)
    client = sandbox_server.client(retries=RetryPolicy(attempts=3, backoff=0.25))
    assert client.public_key_certificates()
    assert sandbox_server.sleeps == [0.25, 0.5]
    assert _count(sandbox_server, "/security/public-key-certificates") == 3


def test_persistent_5xx_ends_in_a_plain_error(sandbox_server):
    sandbox_server.inject(KEYS, "error", status=500, times=None)
    client = sandbox_server.client(retries=RetryPolicy(attempts=3, backoff=0.1))
    with pytest.raises(KsefError) as caught:
        client.public_key_certificates()
    assert caught.value.http_status == 500
    assert "Spróbuj ponownie" in caught.value.message_pl
    assert _count(sandbox_server, "/security/public-key-certificates") == 3


def test_non_idempotent_post_is_never_retried_after_5xx(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    signed = sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    sandbox_server.inject("POST /auth/xades-signature", "error", status=500, times=1)
    with pytest.raises(KsefError) as caught:
        client.submit_xades(signed)
    assert caught.value.http_status == 500
    assert _count(sandbox_server, "/auth/xades-signature") == 1
    assert sandbox_server.sleeps == []


def test_429_waits_for_retry_after(sandbox_server):
    sandbox_server.inject("POST /auth/challenge", "rate_limit", retry_after=7, times=1)
    client = sandbox_server.client()
    assert client.challenge().challenge
    assert sandbox_server.sleeps == [7.0]
    assert _count(sandbox_server, "/auth/challenge") == 2


def test_429_on_a_non_idempotent_post_is_retried_because_nothing_was_processed(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    init = client.submit_xades(
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    )
    client.wait_for_auth(init, interval=0)
    sandbox_server.inject("POST /auth/token/redeem", "rate_limit", retry_after=3, times=1)
    client.redeem(init.authentication_token.token)
    assert 3.0 in sandbox_server.sleeps
    assert _count(sandbox_server, "/auth/token/redeem") == 2


def test_429_with_a_too_long_retry_after_is_reported_not_waited(sandbox_server):
    sandbox_server.inject("POST /auth/challenge", "rate_limit", retry_after=600, times=1)
    client = sandbox_server.client(retries=RetryPolicy(max_retry_after=60))
    with pytest.raises(KsefError) as caught:
        client.challenge()
    assert caught.value.http_status == 429
    assert caught.value.retry_after == 600
    assert sandbox_server.sleeps == []


def test_429_legacy_body_is_parsed(sandbox_server):
    sandbox_server.inject("POST /auth/challenge", "rate_limit", retry_after=900, times=1)
    with pytest.raises(KsefError) as caught:
        sandbox_server.client(problem_details=False).challenge()
    assert caught.value.descriptions == ("Too Many Requests",)
    assert "900" in caught.value.details[0]


def test_dropped_connection_is_a_connection_error(sandbox_server):
    sandbox_server.inject(KEYS, "drop", times=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox_server.url}/security/public-key-certificates", timeout=5)
    assert [e.status for e in sandbox_server.exchanges("/security/public-key-certificates")] == [None]


def test_dropped_connection_is_retried_for_idempotent_calls(sandbox_server):
    sandbox_server.inject(KEYS, "drop", times=1)
    client = sandbox_server.client(retries=RetryPolicy(attempts=2, backoff=0.5))
    assert client.public_key_certificates()
    assert sandbox_server.sleeps == [0.5]
    assert [e.status for e in sandbox_server.exchanges("/security/public-key-certificates")] == [None, 200]


def test_dropped_connection_on_submit_is_not_retried(sandbox_server):
    client = sandbox_server.client()
    challenge = client.challenge()
    signed = sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    sandbox_server.inject("POST /auth/xades-signature", "drop", times=1)
    with pytest.raises(KsefError) as caught:
        client.submit_xades(signed)
    assert caught.value.code == "ksef_unreachable"
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert _count(sandbox_server, "/auth/xades-signature") == 1


def test_slow_answer_times_out_and_an_idempotent_call_retries(sandbox_server):
    sandbox_server.inject(KEYS, "slow", delay=1.5, times=1)
    client = sandbox_server.client(timeout=(2.0, 0.3), retries=RetryPolicy(attempts=2, backoff=0.2))
    assert client.public_key_certificates()
    assert sandbox_server.sleeps == [0.2]


def test_slow_answer_on_submit_is_a_timeout_error(sandbox_server):
    client = sandbox_server.client(timeout=(2.0, 0.3))
    challenge = client.challenge()
    signed = sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    sandbox_server.inject("POST /auth/xades-signature", "slow", delay=1.5, times=1)
    with pytest.raises(KsefError) as caught:
        client.submit_xades(signed)
    assert caught.value.code == "ksef_timeout"
    assert "na czas" in caught.value.message_pl


def test_connection_refused_is_retried_even_for_a_post():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sleeps: list[float] = []
    client = KsefClient(
        f"http://127.0.0.1:{port}/v2",
        sleep=sleeps.append,
        timeout=(1.0, 1.0),
        retries=RetryPolicy(attempts=3, backoff=0.1),
    )
    with pytest.raises(KsefError) as caught:
        client.submit_xades(b"<x/>")
    assert caught.value.code == "ksef_unreachable"
    assert sleeps == [0.1, 0.2]  # the request never left, so repeating it was safe


def test_faults_can_be_set_over_http_and_hit_every_endpoint(sandbox_server):
    response = requests.post(
        f"{sandbox_server.root}/_sandbox/faults",
        timeout=5,
        json={"endpoint": "*", "kind": "error", "status": 503, "times": 1},
    )
    assert response.status_code == 201
    with pytest.raises(KsefError) as caught:
        sandbox_server.client().submit_xades(b"<x/>")
    assert caught.value.http_status == 503
    assert (
        requests.post(f"{sandbox_server.root}/_sandbox/faults", json={"kind": "x"}, timeout=5).status_code
        == 400
    )


def test_fault_selection_is_seeded():
    def pattern(seed: int) -> list[bool]:
        injector = FaultInjector(seed=seed)
        injector.add("GET /x", Fault(kind="error", times=None, probability=0.5))
        return [injector.take("GET /x") is not None for _ in range(40)]

    assert pattern(7) == pattern(7)
    assert pattern(7) != pattern(8)
    assert 5 < sum(pattern(7)) < 35


def test_access_token_is_refreshed_before_it_expires(sandbox_server):
    client = sandbox_server.login(CLIENT)
    first = client.tokens.access.token
    client.sessions()
    assert _count(sandbox_server, "/auth/token/refresh") == 0
    sandbox_server.advance(minutes=14, seconds=30)  # 15-minute tokens, refreshed within 60 s of expiry
    client.sessions()
    assert _count(sandbox_server, "/auth/token/refresh") == 1
    assert client.tokens.refresh_count == 1
    last = sandbox_server.exchanges("/auth/sessions")[-1]
    assert dict(last.headers)["Authorization"] == f"Bearer {client.tokens.access.token}"
    assert client.tokens.access.token != first


def test_expired_refresh_token_asks_for_a_new_login(sandbox_server):
    client = sandbox_server.login(CLIENT)
    sandbox_server.advance(days=7, seconds=1)
    with pytest.raises(KsefError) as caught:
        client.sessions()
    assert caught.value.code == "ksef_session_expired"


def _advancing_client(sandbox_server):
    """A client whose sleeps move the sandbox clock (so waiting costs no real time)."""
    return sandbox_server.client(sleep=lambda seconds: sandbox_server.advance(seconds=seconds))


def test_status_stays_100_until_the_configured_delay_has_passed(sandbox_server):
    sandbox_server.set_delays(auth_delay=30.0, auth_pending_polls=0)
    client = _advancing_client(sandbox_server)
    challenge = client.challenge()
    init = client.submit_xades(
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    )
    status = client.wait_for_auth(init, interval=10.0)
    assert status.status.code == 200
    polls = [e for e in sandbox_server.exchanges() if e.path.endswith(init.reference_number)]
    assert len(polls) == 4  # at 0 s, 10 s, 20 s: 100; at 30 s: 200


def test_waiting_gives_up_after_the_timeout(sandbox_server):
    sandbox_server.set_delays(auth_delay=3600.0)
    client = _advancing_client(sandbox_server)
    challenge = client.challenge()
    init = client.submit_xades(
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=CLIENT)
    )
    with pytest.raises(KsefError) as caught:
        client.wait_for_auth(init, interval=30.0, timeout=120.0)
    assert caught.value.code == "ksef_pending"


def test_grant_and_enrollment_wait_helpers(sandbox_server):
    sandbox_server.set_delays(operation_delay=20.0, enrollment_delay=20.0)
    client = sandbox_server.login(CLIENT)
    client.sleep = lambda seconds: sandbox_server.advance(seconds=seconds)
    accepted = client.grant_entity(
        nip="7762811692", full_name="Biuro Rachunkowe Test", description="Dostęp biura"
    )
    assert client.wait_for_operation(accepted.reference_number, interval=5.0).status.code == 200
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(client.enrollment_data().x509_name())
        .sign(key, hashes.SHA256())
    )
    enrolled = client.enroll(
        name="Klucznik Offline",
        certificate_type="Offline",
        csr_der=csr.public_bytes(serialization.Encoding.DER),
    )
    done = client.wait_for_enrollment(enrolled.reference_number, interval=5.0)
    assert len(done.certificate_serial_number) == 16
    other = sandbox_server.login("7762811692")
    other.sleep = client.sleep
    again = other.enroll(
        name="Klucznik Offline",
        certificate_type="Offline",
        csr_der=x509.CertificateSigningRequestBuilder()
        .subject_name(other.enrollment_data().x509_name())
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER),
    )
    with pytest.raises(KsefError) as caught:  # the same key, certified for another subject
        other.wait_for_enrollment(again.reference_number, interval=5.0)
    assert caught.value.codes == (400,)
    assert "innego podmiot" in caught.value.message_pl or "inny podmiot" in caught.value.message_pl


def test_dropped_connection_also_works_under_waitress():
    """The CLI serves with waitress; a drop must still close the socket without an answer there."""
    import logging
    import threading

    import waitress

    import sandbox

    app = sandbox.create_app({"TESTING": True})
    sandbox.state_of(app).faults.add("POST /auth/challenge", Fault(kind="drop", times=1))
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    logging.getLogger("waitress").disabled = True
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.effective_port}/v2/auth/challenge"
        with pytest.raises(requests.ConnectionError):
            requests.post(url, timeout=5)
        assert requests.post(url, timeout=5).status_code == 200
    finally:
        logging.getLogger("waitress").disabled = False
        server.close()
        thread.join(timeout=5)
