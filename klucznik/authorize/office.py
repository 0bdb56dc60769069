"""The office's own KSeF identity: its Authentication certificate and key, and logging in with them.

The certificate is uploaded with the same checks as a client's in method 3 (:func:`klucznik.certs.check_pair`,
slot ``online``, the office's NIP) and stored, encrypted with the whole database, for the KSeF environment the
portal works with at that moment. :func:`office_login` signs a fresh ``AuthTokenRequest`` with it — for the
office's own NIP or for a client's NIP (method 1: KSeF lets the office in only if the client granted it
permissions) — and returns a logged-in :class:`OfficeSession`; :func:`end_session` ends it. A credential of
another environment is never used (:class:`~klucznik.records.office.EnvironmentMismatch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from klucznik import certs
from klucznik.authorize.certificate_login import login_with_certificate
from klucznik.certs.model import PairCheck
from klucznik.errors import PortalError
from klucznik.errors import ValidationError
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.environments import base_url_for
from klucznik.ksef.errors import KsefError
from klucznik.records import audit
from klucznik.records import ksef_log
from klucznik.records import office
from klucznik.text import Text

#: How often and how long :func:`office_login` asks KSeF for the login's status.
POLL_INTERVAL = 0.5
POLL_TIMEOUT = 60.0


class OfficeIdentityError(PortalError):
    """The office cannot log in to KSeF with its own identity (no NIP, no certificate, expired...)."""

    code = "office_identity"


@dataclass(frozen=True)
class OfficeSession:
    """A KSeF session of the office: ``ksef`` holds its tokens; ``context_nip`` is whose context it is in."""

    ksef: KsefClient
    environment: str
    office_nip: str
    context_nip: str
    reference_number: str
    credential_id: int
    certificate_serial: str
    authentication_method: str


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of "Sprawdź połączenie": ``ok`` and the plain-words ``text``."""

    ok: bool
    text: Text
    environment: str
    credential_id: int | None
    reference_number: str | None = None


# -- the certificate ---------------------------------------------------------------------------------------


def check_office_pair(
    *, crt: bytes | None, key: bytes | None, password: str | None, nip: str, at: datetime
) -> PairCheck:
    """Check the office's Authentication certificate and key exactly as method 3 checks a client's online pair."""
    return certs.check_pair(slot="online", crt=crt, key=key, password=password, at=at, nip=nip)


def save_office_pair(
    db: Database, *, result: PairCheck, environment: str, nip: str, actor: str | None, ip: str | None, at: datetime
) -> int:
    """Store a checked pair as the office's credential for ``environment`` (inside ``store.write()``)."""
    if not result.ok or result.certificate is None or result.key is None:
        raise ValidationError(
            Text("Pliki mają błędy i nie zostały zapisane.", "The files have errors and were not stored."),
            code="invalid",
        )
    return office.add_office_credential(
        db,
        environment=environment,
        nip=nip,
        origin="uploaded",
        info=result.certificate,
        private_key=result.key.data,
        key_password=result.password if result.key.encrypted else None,
        actor=actor,
        ip=ip,
        at=at,
    )


def _no_nip() -> OfficeIdentityError:
    return OfficeIdentityError(
        Text(
            "Uzupełnij NIP biura na stronie „Biuro”, aby portal mógł logować się do KSeF jako biuro.",
            "Fill in the office's NIP on the Office page so the portal can log in to KSeF as the office.",
        ),
        code="office_nip_missing",
    )


def usable_credential(db: Database, *, ksef: KsefClient, at: datetime) -> tuple[office.OfficeProfile, office.OfficeCredential]:
    """The office's profile and its credential for the configured environment, checked before any KSeF call.

    Raises :class:`~klucznik.records.office.EnvironmentMismatch` when ``ksef`` points at another environment
    than the configured one, or when the only stored credentials belong to other environments;
    :class:`OfficeIdentityError` when the NIP or the certificate is missing, or the certificate is not valid
    at ``at``.
    """
    profile = office.get_office(db)
    environment = profile.ksef_environment
    expected_url = base_url_for(environment, profile.sandbox_url or None).rstrip("/")
    if ksef.base_url.rstrip("/") != expected_url:
        raise office.EnvironmentMismatch(
            Text(
                f"Połączenie KSeF prowadzi do {ksef.base_url}, a biuro pracuje ze środowiskiem "
                f"{office.environment_name(environment)} ({expected_url}). Portal nie użyje certyfikatu biura w "
                "innym środowisku.",
                f"The KSeF connection leads to {ksef.base_url}, but the office works with the "
                f"{office.environment_name(environment)} environment ({expected_url}). The portal will not use the "
                "office's certificate in another environment.",
            )
        )
    if not profile.nip:
        raise _no_nip()
    credential = office.office_credential(db, environment=environment)
    if credential is None:
        others = office.office_credentials(db)
        if others:
            raise office.environment_mismatch(
                stored=others[0].ksef_environment,
                current=environment,
                what=Text("Certyfikat KSeF biura", "The office's KSeF certificate"),
            )
        raise OfficeIdentityError(
            Text(
                f"Biuro nie ma jeszcze certyfikatu KSeF dla środowiska {office.environment_name(environment)}. "
                "Wgraj certyfikat uwierzytelniający biura i jego klucz na stronie „Biuro”.",
                f"The office has no KSeF certificate for the {office.environment_name(environment)} environment yet. "
                "Upload the office's authentication certificate and its key on the Office page.",
            ),
            code="office_certificate_missing",
        )
    if credential.ksef_environment != environment:  # office_credential() never returns one; kept as the rule
        raise office.environment_mismatch(
            stored=credential.ksef_environment,
            current=environment,
            what=Text("Certyfikat KSeF biura", "The office's KSeF certificate"),
        )
    if not credential.valid_at(at):
        raise OfficeIdentityError(
            Text(
                f"Certyfikat KSeF biura (numer {credential.serial}) jest ważny od {credential.not_before:%d.%m.%Y} "
                f"do {credential.not_after:%d.%m.%Y}, więc nie nadaje się teraz do logowania. Wgraj aktualny "
                "certyfikat biura.",
                f"The office's KSeF certificate (serial {credential.serial}) is valid from "
                f"{credential.not_before:%Y-%m-%d} to {credential.not_after:%Y-%m-%d}, so it cannot log in now. "
                "Upload a current certificate of the office.",
            ),
            code="office_certificate_invalid",
        )
    return profile, credential


def office_login(
    db: Database,
    *,
    ksef: KsefClient,
    context_nip: str | None = None,
    at: datetime,
    poll_interval: float = POLL_INTERVAL,
    poll_timeout: float = POLL_TIMEOUT,
) -> OfficeSession:
    """Log in to KSeF as the office (in the context of ``context_nip``, the office's own NIP by default).

    ``db`` is only read (never hold a write transaction around this call: it talks to KSeF). A fresh
    challenge, the ``AuthTokenRequest`` signed with the office's certificate (XAdES, enveloped), KSeF's
    decision, and the tokens redeemed into ``ksef``. Every failure is a :class:`~klucznik.errors.PortalError`:
    :class:`~klucznik.ksef.errors.KsefError` when KSeF refused or did not answer (status 415 in a client's
    context: the client has not granted the office permissions).
    """
    profile, credential = usable_credential(db, ksef=ksef, at=at)
    context = context_nip or profile.nip
    login = login_with_certificate(
        ksef,
        certificate_der=credential.certificate,
        private_key=credential.private_key,
        key_password=credential.key_password,
        context_nip=context,
        at=at,
        poll_interval=poll_interval,
        poll_timeout=poll_timeout,
    )
    return OfficeSession(
        ksef=ksef,
        environment=credential.ksef_environment,
        office_nip=profile.nip,
        context_nip=context,
        reference_number=login.reference_number,
        credential_id=credential.id,
        certificate_serial=credential.serial,
        authentication_method=login.authentication_method,
    )


def login_in_context(
    db_source: Callable[[], Database], *, clock: Callable[[], datetime], poll_interval: float = POLL_INTERVAL
) -> Callable[[KsefClient, str], None]:
    """The office's login in a client's context, as the status checks of method-1 clients call it.

    ``login(ksef, client_nip)`` reads the office's certificate through a fresh connection from ``db_source``
    (only read, no transaction held) and logs ``ksef`` in as the office in the context of ``client_nip``; the
    caller queries the grants and ends the session. Raises what :func:`office_login` raises (a
    :class:`~klucznik.errors.PortalError` in words when the office has no certificate for the environment).
    """

    def login(ksef: KsefClient, client_nip: str) -> None:
        with db_source() as db:
            office_login(db, ksef=ksef, context_nip=client_nip, at=clock(), poll_interval=poll_interval)

    return login


def end_session(session: OfficeSession) -> bool:
    """End the office's KSeF session (its refresh token stops working); ``False`` if KSeF did not confirm."""
    try:
        session.ksef.revoke_current()
    except KsefError:
        return False
    return True


def check_connection(
    store: Store, *, ksef: KsefClient, actor: str, ip: str | None, at: datetime, **login_options: float
) -> ConnectionCheck:
    """"Sprawdź połączenie": log in as the office in its own context, end the session, record the result."""
    with store.connect() as db:
        environment = office.get_office(db).ksef_environment
        current = office.office_credential(db, environment=environment)
        try:
            session = office_login(db, ksef=ksef, at=at, **login_options)
        except PortalError as exc:
            session = None
            failure: PortalError | None = exc
        else:
            failure = None
    if session is not None:
        end_session(session)
        result = ConnectionCheck(
            ok=True,
            text=Text(
                f"Połączenie działa: biuro (NIP {session.office_nip}) zalogowało się do KSeF "
                f"{office.environment_name(environment)} swoim certyfikatem (numer {session.certificate_serial}).",
                f"The connection works: the office (NIP {session.office_nip}) logged in to KSeF "
                f"{office.environment_name(environment)} with its certificate (serial {session.certificate_serial}).",
            ),
            environment=environment,
            credential_id=session.credential_id,
            reference_number=session.reference_number,
        )
    else:
        assert failure is not None
        result = ConnectionCheck(
            ok=False,
            text=Text("Nie udało się zalogować do KSeF jako biuro.", "Logging in to KSeF as the office failed.")
            + failure.text,
            environment=environment,
            credential_id=current.id if current else None,
        )
    with store.write() as db:
        if result.credential_id is not None:
            office.record_check(db, result.credential_id, ok=result.ok, message=result.text.pl, at=at)
        error = failure if isinstance(failure, KsefError) else None
        ksef_log.record_operation(
            db,
            client_id=None,
            at=at,
            operation="office.login",
            ok=result.ok,
            reference=result.reference_number,
            http_status=error.http_status if error else None,
            ksef_code=error.codes[0] if error and error.codes else None,
            description="" if result.ok else result.text.en,
            details={"ksef_environment": environment},
        )
        audit.record(
            db,
            actor=actor,
            action="office.connection.check",
            object_type="office",
            details={
                "ok": result.ok,
                "ksef_environment": environment,
                "credential_id": result.credential_id,
                "reference": result.reference_number,
                "code": failure.code if failure else None,
            },
            ip=ip,
            at=at,
        )
    return result
