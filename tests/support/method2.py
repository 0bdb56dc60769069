"""Method 2 driven through the domain against the sandbox: up to the review, the go-ahead, and to the end."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta

from cryptography.hazmat.primitives import serialization

from klucznik.authorize.enroll import confirm
from klucznik.authorize.flow import Progress
from klucznik.authorize.flow import advance
from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.signed_xml import check_upload
from klucznik.authorize.signed_xml import issue_request
from klucznik.authorize.signed_xml import submit
from sandbox import ca
from sandbox import signer


def to_review(store, server, company, *, nip: str | None = None, pesel: str | None = None) -> tuple[AuthRequest, datetime]:
    """Issue, sign (the company's seal, another NIP's seal, or a person), send and log in: the review step."""
    ksef = server.client()
    at = server.state.now()
    request = issue_request(store, client_id=company.id, method="portal_certs", ksef=ksef, actor="admin", at=at)
    certificate, key = ca.qualified_identity(nip=nip if (nip or pesel) else company.nip, pesel=pesel)
    signed = signer.sign(request.unsigned_xml, certificate=certificate, private_key=key, style="enveloped")
    assert check_upload(store, request_id=request.id, data=signed, actor="admin", at=at).ok
    submit(store, request_id=request.id, ksef=ksef, actor="admin", at=at)
    for i in range(20):
        progress = advance(store, request_id=request.id, ksef=ksef, actor="admin", at=at + timedelta(seconds=i))
        if progress.done or progress.request.awaiting_user:
            return progress.request, at
    raise AssertionError("never reached the review")


def run(store, server, request_id: int, at: datetime, *, rounds: int = 40, step: timedelta = timedelta(seconds=10),
        ksef=None) -> Progress:
    """Advance until the attempt is final; every failure that is not final is retried by the next round."""
    ksef = ksef or server.client()
    progress = None
    for i in range(rounds):
        progress = advance(store, request_id=request_id, ksef=ksef, actor="admin", at=at + step * i)
        if progress.done:
            return progress
    raise AssertionError(f"not finished: {progress}")


def go(store, server, request: AuthRequest, at: datetime, **options) -> Progress:
    """Confirm the review with ``options`` and run to the end."""
    confirm(store, request_id=request.id, actor="admin", at=at, **options)
    return run(store, server, request.id, at)


def public_der(key_pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a PEM private key."""
    return serialization.load_pem_private_key(key_pem, None).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def every_issued_certificate_has_its_key(store, server, nip: str) -> int:
    """Assert each certificate the sandbox issued for ``nip`` has its private key in the portal; how many."""
    with store.connect() as db:
        keys = {public_der(bytes(r[0])) for r in db.execute("SELECT private_key FROM enrollments")}
    issued = [c for c in server.state.certificates.values() if c.subject.value == nip]
    for c in issued:
        spki = c.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert spki in keys, f"certificate {c.serial} issued by KSeF has no key in the portal"
    return len(issued)
