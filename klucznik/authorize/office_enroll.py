"""The office's own KSeF certificate through a signed file: the office signs an ``AuthTokenRequest`` for its own
NIP with its qualified seal (or an owner's signature), the portal logs in with it, enrolls one Authentication
certificate with a key it makes, and stores both as the office's credential for the environment in force.

The attempt's state is one ``settings`` row per environment (``office.enrollment.<environment>``, JSON, in the
encrypted database): the challenge and file, then the key — written before the certificate request is sent —
and KSeF's references, so an interrupted attempt keeps its key and can be taken up by sending the file again.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlite_utils import Database

from klucznik import certs
from klucznik import clock
from klucznik import xades
from klucznik.authorize.enroll import build_csr
from klucznik.authorize.enroll import new_key
from klucznik.authorize.office import OfficeIdentityError
from klucznik.authorize.requests import CHALLENGE_LIFETIME
from klucznik.certs.formats import spki
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.errors import KsefError
from klucznik.records import audit
from klucznik.records import ksef_log
from klucznik.records import office
from klucznik.text import Text

POLL_INTERVAL = 0.5
POLL_TIMEOUT = 60.0


def _key(environment: str) -> str:
    return f"office.enrollment.{environment}"


def current_attempt(db: Database, environment: str) -> dict[str, Any] | None:
    """The office's enrollment attempt for ``environment`` (``None`` when there is none)."""
    row = db.execute("SELECT value FROM settings WHERE key = ?", [_key(environment)]).fetchone()
    return json.loads(row[0]) if row else None


def _save(db: Database, environment: str, state: dict[str, Any]) -> None:
    db["settings"].upsert({"key": _key(environment), "value": json.dumps(state, ensure_ascii=False)}, pk="key")


def issue(store: Store, *, ksef: KsefClient, actor: str, ip: str | None, at: datetime) -> dict[str, Any]:
    """A fresh challenge and the unsigned file for the office's own NIP."""
    with store.connect() as db:
        profile = office.get_office(db)
    if not profile.nip:
        raise OfficeIdentityError(
            Text("Najpierw zapisz NIP biura.", "Save the office's NIP first."), code="office_nip_missing"
        )
    challenge = ksef.challenge()
    state = {
        "status": "issued",
        "nip": profile.nip,
        "challenge": challenge.challenge,
        "expires_at": clock.iso(challenge.timestamp + CHALLENGE_LIFETIME),
        "unsigned_xml": xades.build_auth_token_request(challenge=challenge.challenge, nip=profile.nip).decode(),
        "created_at": clock.iso(at),
    }
    with store.write() as db:
        _save(db, profile.ksef_environment, state)
        audit.record(db, actor=actor, action="office.enrollment.challenge", object_type="office",
                     details={"ksef_environment": profile.ksef_environment}, ip=ip, at=at)
    return state


def upload_and_enroll(
    store: Store,
    *,
    data: bytes,
    ksef: KsefClient,
    actor: str,
    ip: str | None,
    at: datetime,
    poll_interval: float = POLL_INTERVAL,
    poll_timeout: float = POLL_TIMEOUT,
) -> xades.CheckResult:
    """Check the signed file like the wizard does; when it passes, log in, enroll, retrieve, check and store.

    Returns the check; a problem of KSeF's raises ``KsefError`` (the attempt keeps its key and references).
    """
    with store.connect() as db:
        profile = office.get_office(db)
        environment = profile.ksef_environment
        state = current_attempt(db, environment)
    if not state or state.get("status") not in ("issued", "failed"):
        raise OfficeIdentityError(
            Text("Najpierw pobierz plik do podpisu.", "First download the file to sign."), code="wrong_state"
        )
    result = xades.check_signed_request(data, challenge=state["challenge"], nip=state["nip"], at=at,
                                        challenge_expires_at=clock.parse(state["expires_at"]))
    if not result.ok:
        return result
    init = ksef.submit_xades(result.payload)
    ksef.wait_for_auth(init, interval=poll_interval, timeout=poll_timeout)
    ksef.redeem(init.authentication_token.token)
    try:
        key = new_key()
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode("ascii")
        csr = build_csr(ksef.enrollment_data().x509_name(), key)
        state.update(status="enrolling", reference=init.reference_number, key=key_pem)
        with store.write() as db:  # the key is stored before the request leaves
            _save(db, environment, state)
        accepted = ksef.enroll(name=f"Klucznik biuro {state['nip']} {at:%Y%m%d%H%M%S}",
                               certificate_type="Authentication", csr_der=csr)
        state["enrollment_reference"] = accepted.reference_number
        with store.write() as db:
            _save(db, environment, state)
        status = ksef.wait_for_enrollment(accepted.reference_number, interval=poll_interval, timeout=poll_timeout)
        (item,) = [c for c in ksef.retrieve([status.certificate_serial_number])
                   if c.serial_number == status.certificate_serial_number]
    finally:
        with contextlib.suppress(KsefError):  # the session ends in any case; its failure changes nothing here
            ksef.revoke_current()
    cert = x509.load_der_x509_certificate(item.certificate_der)
    info = certs.summarise(cert)
    if spki(cert.public_key()) != spki(key.public_key()) or info.ksef_type != "Authentication":
        raise OfficeIdentityError(
            Text("KSeF wydał certyfikat, który nie pasuje do klucza. Spróbuj ponownie.",
                 "KSeF issued a certificate that does not match the key. Try again."),
            code="certificate_mismatch",
        )
    with store.write() as db:
        office.add_office_credential(db, environment=environment, nip=state["nip"], origin="generated", info=info,
                                     private_key=key_pem.encode("ascii"), key_password=None, actor=actor, ip=ip,
                                     at=at)
        state = {k: v for k, v in state.items() if k != "key"}  # the key now lives with the certificate
        state.update(status="done", serial=info.serial)
        _save(db, environment, state)
        ksef_log.record_operation(db, client_id=None, at=at, operation="office.certificates.enroll", ok=True,
                                  reference=accepted.reference_number, details={"serial": info.serial})
    return result
