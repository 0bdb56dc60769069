"""Live checks: does what the portal stores for a client still work in KSeF?

* methods 2 and 3: log in with the client's stored Authentication certificate (a signed AuthTokenRequest, as
  KSeF's own clients do), read the certificate limits and each stored certificate's KSeF status
  (``/certificates/query``), end the session; the Offline certificate is checked by signing a KOD II test
  string with its key and verifying it with the certificate;
* method 1: the office's own certificate logs in the client's context (an injected ``office_login``), then the
  office's permissions there are read (``/permissions/query/personal/grants``).

Every outcome, success or failure, becomes a :class:`~klucznik.status.results.CheckOutcome`; nothing is
written here (the caller stores outcomes in batches). A check never changes anything in KSeF.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlite_utils import Database

from klucznik import certs
from klucznik import xades
from klucznik.errors import PortalError
from klucznik.ksef.client import KsefClient
from klucznik.ksef.environments import environment as ksef_environment
from klucznik.ksef.errors import KsefError
from klucznik.records import clients as client_records
from klucznik.records import office as office_records
from klucznik.status.results import CheckOutcome
from klucznik.text import Text

#: Logs ``ksef`` into the context of the client with NIP ``context_nip`` with the office's own certificate.
OfficeLogin = Callable[[KsefClient, str], None]

#: The permissions the office needs in a method-1 client's context.
OFFICE_PERMISSIONS = ("InvoiceRead", "InvoiceWrite")

NO_OFFICE_LOGIN = Text(
    "Portal nie ma jeszcze własnego certyfikatu biura, więc nie może sprawdzić uprawnień nadanych biuru. "
    "Dodaj certyfikat biura w ustawieniach biura.",
    "The portal has no office certificate yet, so it cannot check the permissions granted to the office. "
    "Add the office's certificate in the office settings.",
)
NO_CREDENTIALS = Text(
    "Brak zapisanego certyfikatu uwierzytelniającego tego klienta: nie ma czym zalogować się do KSeF. "
    "Połącz klienta z KSeF (kreator) albo wgraj jego certyfikaty.",
    "No stored Authentication certificate for this client: nothing to log in to KSeF with. Connect the "
    "client to KSeF (the wizard) or upload its certificates.",
)
NOT_CONNECTED = Text(
    "Klient nie jest jeszcze połączony z KSeF, więc nie ma czego sprawdzać.",
    "The client is not connected to KSeF yet, so there is nothing to check.",
)
UNREADABLE = Text(
    "Zapisanego certyfikatu tego klienta nie da się odczytać. Wgraj certyfikaty klienta ponownie.",
    "This client's stored certificate cannot be read. Upload the client's certificates again.",
)
GRANT_MISSING = Text(
    "Biuro nie ma już uprawnień do faktur tego klienta w KSeF (klient je odebrał albo wygasły). Poproś klienta "
    "o ponowne nadanie uprawnień w kreatorze.",
    "The office no longer has invoice permissions for this client in KSeF (the client withdrew them). Ask the "
    "client to grant them again with the wizard.",
)
KOD2_FAILED = Text(
    "Klucz prywatny certyfikatu Offline nie pasuje do certyfikatu (podpis testowego kodu KOD II się nie "
    "weryfikuje). Faktur offline nie da się nim oznaczyć: wgraj właściwą parę.",
    "The Offline certificate's private key does not match the certificate (a test KOD II signature does not "
    "verify). Offline invoices cannot be marked with it: upload the right pair.",
)
CERTIFICATE_NOT_ACTIVE = Text(
    "Certyfikat {ksef_type} o numerze {serial} ma w KSeF status {status}. Wygeneruj nowy certyfikat "
    "(kreator, metoda 2) albo wgraj nowy.",
    "The {ksef_type} certificate {serial} has the KSeF status {status}. Generate a new certificate (wizard, "
    "method 2) or upload a new one.",
)


@dataclass(frozen=True)
class StoredCredential:
    """An active credential as the check needs it (certificate, key, its password)."""

    slot: str
    ksef_type: str
    serial: str
    certificate: x509.Certificate
    private_key: bytes
    key_password: str | None


def stored_credentials(db: Database, client_id: int) -> dict[str, StoredCredential]:
    """The client's active credentials by slot (``online``, ``offline``)."""
    found = {}
    for slot, ksef_type, serial, der, key, password in db.execute(
        "SELECT slot, ksef_type, serial, certificate, private_key, key_password FROM credentials "
        "WHERE client_id = ? AND status = 'active' ORDER BY id",
        [client_id],
    ).fetchall():
        found[slot] = StoredCredential(
            slot=slot,
            ksef_type=ksef_type or ("Authentication" if slot == "online" else "Offline"),
            serial=serial,
            certificate=x509.load_der_x509_certificate(der),
            private_key=bytes(key),
            key_password=password,
        )
    return found


# -- KOD II ----------------------------------------------------------------------------------------


def kod2_test_string(*, qr_url: str, nip: str, serial: str) -> str:
    """The text a KOD II signature covers (the verification link without scheme and signature) for a test
    invoice hash: ``{qr host}/certificate/Nip/{nip}/{nip}/{serial}/{hash}``."""
    host = qr_url.split("://", 1)[-1].rstrip("/")
    digest = hashlib.sha256(f"Klucznik KOD II test {nip} {serial}".encode()).digest()
    invoice_hash = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return f"{host}/certificate/Nip/{nip}/{nip}/{serial}/{invoice_hash}"


def sign_kod2(private_key: Any, text: str) -> bytes:
    """Sign like KSeF's clients: ECDSA P-256 SHA-256 as r‖s (IEEE P1363), or RSASSA-PSS SHA-256 (salt 32)."""
    data = text.encode("utf-8")
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (private_key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    raise TypeError("unsupported key")


def verify_kod2(certificate: x509.Certificate, text: str, signature: bytes) -> bool:
    """True when ``signature`` over ``text`` verifies with the certificate's public key."""
    key = certificate.public_key()
    data = text.encode("utf-8")
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def offline_signature_works(credential: StoredCredential, *, qr_url: str, nip: str) -> bool:
    """Sign a KOD II test string with the stored Offline key and verify it with the stored certificate."""
    key = certs.load_private_key(credential.private_key, password=credential.key_password).private_key
    text = kod2_test_string(qr_url=qr_url, nip=nip, serial=credential.serial)
    return verify_kod2(credential.certificate, text, sign_kod2(key, text))


# -- the check -------------------------------------------------------------------------------------


def _failure(client_id: int, method: str | None, at: datetime, exc: PortalError, **extra: Any) -> CheckOutcome:
    if isinstance(exc, KsefError):
        return CheckOutcome(
            client_id=client_id,
            at=at,
            ok=False,
            method=method,
            error_code=exc.code,
            http_status=exc.http_status,
            ksef_code=exc.codes[0] if exc.codes else None,
            ksef_text="; ".join((*exc.descriptions, *exc.details)),
            message=exc.text,
            retry_after=exc.retry_after,
            **extra,
        )
    return CheckOutcome(client_id=client_id, at=at, ok=False, method=method, error_code=exc.code,
                        message=exc.text, **extra)


def _login_with_certificate(ksef: KsefClient, credential: StoredCredential, *, nip: str, interval: float) -> None:
    key = certs.load_private_key(credential.private_key, password=credential.key_password).private_key
    challenge = ksef.challenge()
    request = xades.build_auth_token_request(challenge=challenge.challenge, nip=nip)
    signed = xades.sign_auth_token_request(request, certificate=credential.certificate, private_key=key)
    ksef.authenticate(signed, interval=interval)


def _ksef_statuses(ksef: KsefClient, credentials: dict[str, StoredCredential]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for credential in credentials.values():
        page = ksef.query_certificates(serial_number=credential.serial, page_size=10)
        match = next((c for c in page.certificates if c.serial_number.upper() == credential.serial.upper()), None)
        found[credential.serial] = {
            "type": credential.ksef_type,
            "status": match.status if match else "Unknown",
            "valid_to": match.valid_to.strftime("%Y-%m-%dT%H:%M:%SZ") if match else None,
        }
    return found


def check_client(
    db_source: Callable[[], Database],
    client_id: int,
    *,
    ksef: KsefClient,
    at: datetime,
    office_login: OfficeLogin | None = None,
    poll_interval: float = 1.0,
) -> CheckOutcome:
    """Check one client's stored access (see the module docstring); never raises for KSeF's answers.

    ``db_source`` opens a connection (closed here) that is used only before KSeF is called.
    """
    with db_source() as db:
        client = client_records.get_client(db, client_id)
        method = client.auth_method
        profile = office_records.get_office(db)
        try:
            credentials = stored_credentials(db, client_id) if method in ("portal_certs", "user_certs") else {}
        except ValueError:
            return CheckOutcome(client_id=client_id, at=at, ok=False, method=method,
                                error_code="stored_certificate_unreadable", message=UNREADABLE)
    if method is None:
        return CheckOutcome(client_id=client_id, at=at, ok=False, method=None, error_code="not_connected",
                            message=NOT_CONNECTED)
    if method == "grant":
        return _check_grant(client_id, client.nip, ksef=ksef, at=at, office_login=office_login)
    online = credentials.get("online")
    if online is None:
        return CheckOutcome(client_id=client_id, at=at, ok=False, method=method, error_code="no_credentials",
                            message=NO_CREDENTIALS)
    extra: dict[str, Any] = {}
    offline = credentials.get("offline")
    offline_ok = None
    try:
        if offline is not None:
            qr_url = ksef_environment(profile.ksef_environment, profile.sandbox_url or None).qr_url
            offline_ok = offline_signature_works(offline, qr_url=qr_url, nip=client.nip)
        _login_with_certificate(ksef, online, nip=client.nip, interval=poll_interval)
        try:
            limits = ksef.limits()
            statuses = _ksef_statuses(ksef, credentials)
        finally:
            # the session ends on its own within minutes; the check's answer stands
            with contextlib.suppress(KsefError):
                ksef.revoke_current()
    except PortalError as exc:
        if offline is not None and offline_ok is not None:
            extra["certificates"] = {offline.serial: {"type": "Offline", "offline_signature": offline_ok}}
        return _failure(client_id, method, at, exc, **extra)
    if offline is not None:
        statuses.setdefault(offline.serial, {"type": "Offline"})["offline_signature"] = offline_ok
    message = None
    bad = [(serial, item) for serial, item in statuses.items() if item.get("status") != "Active"]
    if bad:
        serial, item = bad[0]
        message = CERTIFICATE_NOT_ACTIVE.format(ksef_type=item["type"], serial=serial, status=item.get("status"))
    elif offline_ok is False:
        message = KOD2_FAILED
    return CheckOutcome(
        client_id=client_id,
        at=at,
        ok=not bad and offline_ok is not False,
        method=method,
        certificates=statuses,
        limits={
            "can_request": limits.can_request,
            "enrollment_remaining": limits.enrollment_remaining,
            "certificate_remaining": limits.certificate_remaining,
        },
        error_code="certificate_not_active" if bad else ("kod2_failed" if offline_ok is False else None),
        message=message,
    )


def _check_grant(client_id: int, nip: str, *, ksef: KsefClient, at: datetime,
                 office_login: OfficeLogin | None) -> CheckOutcome:
    if office_login is None:
        return CheckOutcome(client_id=client_id, at=at, ok=False, method="grant", error_code="no_office_login",
                            message=NO_OFFICE_LOGIN)
    try:
        try:
            office_login(ksef, nip)
        except KsefError as exc:
            if 415 in exc.codes:  # KSeF: the subject has no permissions in this context
                return _failure(client_id, "grant", at, exc, grant_state="missing")
            raise
        try:
            scopes = set()
            offset = 0
            while True:
                page = ksef.query_personal_grants(page_size=50, page_offset=offset)
                scopes |= {g.permission_scope for g in page.permissions if g.state == "Active"}
                if not page.has_more:
                    break
                offset += 1
        finally:
            with contextlib.suppress(KsefError):
                ksef.revoke_current()
    except PortalError as exc:
        return _failure(client_id, "grant", at, exc)
    granted = set(OFFICE_PERMISSIONS) <= scopes
    return CheckOutcome(
        client_id=client_id,
        at=at,
        ok=granted,
        method="grant",
        grant_state="granted" if granted else "missing",
        error_code=None if granted else "grant_missing",
        message=None if granted else GRANT_MISSING,
    )
