"""Logging in to KSeF with a KSeF certificate the portal holds (the office's, or a client's from method 2).

A fresh challenge, an ``AuthTokenRequest`` for the context NIP signed with the certificate (XAdES, enveloped),
KSeF's decision, and the tokens redeemed into the client. Pure: no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from klucznik import certs
from klucznik import xades
from klucznik.ksef.client import KsefClient


@dataclass(frozen=True)
class CertificateLogin:
    """A successful login: KSeF's reference and the authentication method it reports."""

    reference_number: str
    authentication_method: str


def login_with_certificate(
    ksef: KsefClient,
    *,
    certificate_der: bytes,
    private_key: bytes,
    key_password: str | None,
    context_nip: str,
    at: datetime,
    poll_interval: float = 0.5,
    poll_timeout: float = 60.0,
) -> CertificateLogin:
    """Log in in ``context_nip``'s context; ``ksef`` then holds the session's tokens. Failures: ``KsefError``."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    key = certs.load_private_key(private_key, password=key_password)
    challenge = ksef.challenge()
    signed = xades.sign_auth_token_request(
        xades.build_auth_token_request(challenge=challenge.challenge, nip=context_nip),
        certificate=certificate,
        private_key=key.private_key,
        signing_time=at,
    )
    init = ksef.submit_xades(signed)
    status = ksef.wait_for_auth(init, interval=poll_interval, timeout=poll_timeout)
    ksef.redeem(init.authentication_token.token)
    return CertificateLogin(init.reference_number, status.authentication_method)
