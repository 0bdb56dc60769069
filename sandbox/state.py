"""The sandbox's memory: challenges, authentications, tokens, permissions, certificates, availability.

Everything KSeF decides lives here, away from HTTP, so the rules can be read (and tested) in one place:
the 10-minute challenge, the once-only redeem, refresh and revocation, who may act in which context
(415 otherwise), certificate requests checked against the authenticated subject (25003), per-subject
limits, and asynchronous operations that answer 100 first and 200 later.

All public methods take the lock: the sandbox serves requests from several threads. The clock is a
:class:`Clock` that tests can freeze or move forward.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox import ca
from sandbox.faults import FaultInjector
from sandbox.ratelimits import RateLimiter
from sandbox.ratelimits import official_table
from sandbox.spec import spec_document

CHALLENGE_LIFETIME = timedelta(minutes=10)
AUTH_RETENTION = timedelta(days=7)
OPERATION_RETENTION = timedelta(days=30)

#: Default certificate limits per identifier type: (enrollment requests, active certificates).
DEFAULT_LIMITS = {"Nip": (300, 100), "Pesel": (12, 6), "Fingerprint": (12, 6)}


class Clock:
    """The sandbox's notion of now: real time, optionally frozen or shifted (for tests and demos)."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._source = now or (lambda: datetime.now(UTC))
        self._frozen: datetime | None = None
        self._offset = timedelta()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            base = self._frozen if self._frozen is not None else self._source()
            return base + self._offset

    def offset(self) -> timedelta:
        """How far :meth:`advance` has moved the clock (the rate-limit windows follow it)."""
        with self._lock:
            return self._offset

    def advance(self, delta: timedelta) -> None:
        """Move time forward by ``delta``."""
        with self._lock:
            self._offset += delta

    def freeze(self, at: datetime) -> None:
        """Stop the clock at ``at`` (``advance`` still moves it)."""
        with self._lock:
            self._frozen = at
            self._offset = timedelta()


class SandboxError(Exception):
    """A KSeF-shaped refusal: a 400 with an exception code, or another HTTP status."""

    def __init__(
        self, code: int, description: str, details: list[str] | None = None, *, http: int = 400
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.details = details or []
        self.http = http


class Unauthorized(Exception):
    """A missing, unknown, expired or wrong kind of bearer token (401)."""


@dataclass(frozen=True)
class Identity:
    """Who authenticated: ("Nip" | "Pesel" | "Fingerprint", value)."""

    type: str
    value: str


@dataclass
class Auth:
    """One authentication operation (``…-AU-…``) and its tokens."""

    reference: str
    context_nip: str
    identity: Identity | None
    method: str
    method_code: str
    method_name: str
    started: datetime
    final_code: int
    final_details: list[str]
    ready_at: datetime
    subject_attributes: dict[str, str]
    certificate_serial: str | None = None
    allowed_ips: tuple[str, ...] = ()
    polls: int = 0
    redeemed: bool = False
    revoked: bool = False
    last_refresh: datetime | None = None
    refresh_valid_until: datetime | None = None


@dataclass
class Token:
    """A token the sandbox issued."""

    kind: str  # "authentication" | "access" | "refresh"
    reference: str
    valid_until: datetime


@dataclass
class Operation:
    """An asynchronous permission operation (``…-EG-…``)."""

    reference: str
    context_nip: str
    created: datetime
    ready_at: datetime
    final_code: int
    apply: Callable[[], None] | None
    polls: int = 0
    done: bool = False


@dataclass
class Grant:
    """An entity permission: ``context_nip`` granted ``scope`` to the entity ``subject_nip``."""

    id: str
    context_nip: str
    subject_nip: str
    scope: str
    can_delegate: bool
    description: str
    full_name: str
    start: datetime
    active: bool = False


@dataclass
class Enrollment:
    """A certificate request (``…-EH-…``)."""

    reference: str
    subject: Identity
    requested: datetime
    ready_at: datetime
    name: str
    certificate_type: str
    csr: x509.CertificateSigningRequest
    valid_from: datetime
    polls: int = 0
    serial: str | None = None
    failure: str | None = None


@dataclass
class IssuedCertificate:
    """A KSeF certificate the sandbox CA issued."""

    serial: str
    certificate: x509.Certificate
    name: str
    certificate_type: str
    subject: Identity
    requested: datetime
    status: str = "Active"
    last_use: datetime | None = None
    #: ``PUT /testdata/certificates/{serialNumber}`` shortened the validity KSeF keeps (the X.509 file the
    #: owner holds does not change).
    valid_to_override: datetime | None = None

    @property
    def valid_to(self) -> datetime:
        """The end of validity as KSeF sees it."""
        return self.valid_to_override or self.certificate.not_valid_after_utc

    def status_at(self, now: datetime) -> str:
        """Active, Revoked or Expired at ``now``."""
        if self.status == "Active" and self.valid_to < now:
            return "Expired"
        return self.status


@dataclass
class Person:
    """A person seeded with ``/testdata/person``: PESEL owner of a NIP."""

    nip: str
    pesel: str
    description: str
    is_bailiff: bool = False
    is_deceased: bool = False


@dataclass
class Config:
    """Timings of the sandbox (all overridable through ``create_app(config)``)."""

    auth_delay: float = 0.0
    auth_pending_polls: int = 1
    operation_delay: float = 0.0
    operation_pending_polls: int = 1
    enrollment_delay: float = 0.0
    enrollment_pending_polls: int = 1
    authentication_token_ttl: float = 15 * 60
    access_token_ttl: float = 15 * 60
    refresh_token_ttl: float = 7 * 24 * 3600
    #: Enforce KSeF's API rate limits (see :mod:`sandbox.ratelimits`); the ``klucznik sandbox`` server has
    #: them on, the test fixture off unless a test turns them on.
    rate_limits: bool = False
    #: Multiply every official limit (``10``: the TEST environment's defaults, ten times production's).
    rate_limit_scale: float = 1.0


def reference_number(kind: str, now: datetime) -> str:
    """A 36-character KSeF-style reference number, e.g. ``20250514-CR-226FB7B000-3ACF9BE4C0-10``."""
    rand = secrets.token_hex(11).upper()
    return f"{now:%Y%m%d}-{kind}-{rand[:10]}-{rand[10:20]}-{rand[20:22]}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


_ENROLLMENT_FIELDS = (
    ("commonName", NameOID.COMMON_NAME),
    ("countryName", NameOID.COUNTRY_NAME),
    ("givenName", NameOID.GIVEN_NAME),
    ("surname", NameOID.SURNAME),
    ("serialNumber", NameOID.SERIAL_NUMBER),
    ("uniqueIdentifier", x509.ObjectIdentifier("2.5.4.45")),
    ("organizationName", NameOID.ORGANIZATION_NAME),
    ("organizationIdentifier", NameOID.ORGANIZATION_IDENTIFIER),
)


def subject_attributes_from_certificate(cert: x509.Certificate) -> dict[str, str]:
    """The enrollment data KSeF derives from the signing certificate's subject."""
    data = {}
    for key, oid in _ENROLLMENT_FIELDS:
        value = _attr(cert.subject, oid)
        if value:
            data[key] = value
    data.setdefault("countryName", "PL")
    data.setdefault("commonName", data.get("organizationName") or "Podmiot")
    return data


def csr_attributes(csr: x509.CertificateSigningRequest) -> dict[str, str] | None:
    """The CSR subject as enrollment fields, or ``None`` when it has attributes KSeF does not issue."""
    known = {oid.dotted_string: key for key, oid in _ENROLLMENT_FIELDS}
    data: dict[str, str] = {}
    for attribute in csr.subject:
        key = known.get(attribute.oid.dotted_string)
        if key is None or key in data:
            return None
        data[key] = str(attribute.value)
    return data


class SandboxState:
    """Everything the sandbox remembers, behind one lock."""

    def __init__(self, config: Config | None = None, *, clock: Clock | None = None, seed: int = 0) -> None:
        self.config = config or Config()
        self.clock = clock or Clock()
        self.faults = FaultInjector(seed=seed)
        self.rate_limits = RateLimiter(official_table(spec_document()), now=self._limiter_time)
        self.rate_limits.configure(
            enabled=self.config.rate_limits,
            scale=None if self.config.rate_limit_scale == 1 else self.config.rate_limit_scale,
        )
        self._limiter_last = 0.0
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self.challenges: dict[str, datetime] = {}
        self.auths: dict[str, Auth] = {}
        self.tokens: dict[str, Token] = {}
        self.persons: dict[tuple[str, str], Person] = {}
        self.test_permissions: dict[tuple[str, Identity], set[str]] = {}
        self.blocked_contexts: set[str] = set()
        self.grants: dict[str, Grant] = {}
        self.operations: dict[str, Operation] = {}
        self.enrollments: dict[str, Enrollment] = {}
        self.certificates: dict[str, IssuedCertificate] = {}
        self.enrollment_counts: dict[Identity, int] = {}
        self.limits: dict[Identity, tuple[int, int]] = {}
        self.certified_keys: dict[bytes, Identity] = {}
        self.availability = "AVAILABLE"
        self.messages: list[dict[str, Any]] = []
        #: ``X-System-Warning`` values to send with every successful answer of an endpoint (tests).
        self.system_warnings: dict[str, str] = {}
        self._event_id = 0

    # -- time & tokens --------------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox's current time."""
        return self.clock()

    def _limiter_time(self) -> float:
        """Monotonic seconds plus the clock's offset, never going back (a freeze resets the offset)."""
        value = time.monotonic() + self.clock.offset().total_seconds()
        self._limiter_last = max(self._limiter_last, value)
        return self._limiter_last

    def context_of_token(self, value: str) -> str | None:
        """The context NIP of a token the sandbox issued (even an expired one), else ``None``."""
        with self._lock:
            found = self.tokens.get(value)
            auth = self.auths.get(found.reference) if found is not None else None
            return auth.context_nip if auth is not None else None

    def _issue_token(self, kind: str, reference: str, ttl: float) -> tuple[str, datetime]:
        valid_until = self.now() + timedelta(seconds=ttl)
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(
            json.dumps(
                {
                    "iss": "klucznik-sandbox",
                    "typ": kind,
                    "ref": reference,
                    "jti": secrets.token_hex(8),
                    "exp": int(valid_until.timestamp()),
                }
            ).encode()
        )
        signature = _b64url(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        self.tokens[token] = Token(kind, reference, valid_until)
        return token, valid_until

    def token(self, value: str | None, *kinds: str) -> tuple[Token, Auth]:
        """The valid token ``value`` of one of ``kinds`` and its authentication, or :class:`Unauthorized`."""
        with self._lock:
            found = self.tokens.get(value or "")
            if found is None or found.kind not in kinds or found.valid_until <= self.now():
                raise Unauthorized("token")
            return found, self.auths[found.reference]

    # -- challenge & authentication -------------------------------------------------------------

    def new_challenge(self) -> tuple[str, datetime]:
        """A fresh challenge and the moment it was made."""
        with self._lock:
            now = self.now()
            value = reference_number("CR", now)
            self.challenges[value] = now
            return value, now

    def take_challenge(self, value: str | None) -> None:
        """Accept ``value`` once, within 10 minutes of its creation; else :class:`SandboxError` 21111."""
        with self._lock:
            created = self.challenges.get(value or "")
            if created is None:
                raise SandboxError(
                    21111,
                    "Nieprawidłowe wyzwanie autoryzacyjne.",
                    [f"Wyzwanie {value} nie istnieje lub zostało już wykorzystane."],
                )
            if self.now() - created >= CHALLENGE_LIFETIME:
                del self.challenges[value]
                raise SandboxError(21111, "Nieprawidłowe wyzwanie autoryzacyjne.", ["Wyzwanie wygasło."])
            del self.challenges[value]

    def start_auth(
        self,
        *,
        context_nip: str,
        identity: Identity | None,
        method: str,
        method_code: str,
        method_name: str,
        failure: tuple[int, list[str]] | None,
        subject_attributes: dict[str, str],
        certificate_serial: str | None = None,
        allowed_ips: tuple[str, ...] = (),
    ) -> tuple[Auth, str, datetime]:
        """Record an authentication; decide its final status now, reveal it after the delay."""
        with self._lock:
            now = self.now()
            if failure is None:
                failure = self._auth_decision(context_nip, identity)
            code, details = failure or (200, [])
            auth = Auth(
                reference=reference_number("AU", now),
                context_nip=context_nip,
                identity=identity,
                method=method,
                method_code=method_code,
                method_name=method_name,
                started=now,
                final_code=code,
                final_details=details,
                ready_at=now + timedelta(seconds=self.config.auth_delay),
                subject_attributes=subject_attributes,
                certificate_serial=certificate_serial,
                allowed_ips=allowed_ips,
            )
            self.auths[auth.reference] = auth
            token, valid_until = self._issue_token(
                "authentication", auth.reference, self.config.authentication_token_ttl
            )
            return auth, token, valid_until

    def _auth_decision(self, context_nip: str, identity: Identity | None) -> tuple[int, list[str]] | None:
        if context_nip in self.blocked_contexts:
            return 480, [
                "Podejrzenie incydentu bezpieczeństwa. Skontaktuj się z Ministerstwem Finansów przez "
                "formularz zgłoszeniowy."
            ]
        if identity is None:
            return 460, ["Niepoprawny certyfikat"]
        if identity.type == "Pesel" and any(
            p.is_deceased for (nip, pesel), p in self.persons.items() if pesel == identity.value
        ):
            return 470, ["Próba wykorzystania metod autoryzacyjnych osoby zmarłej"]
        if not self.permissions_in(context_nip, identity):
            return 415, ["Brak przypisanych uprawnień"]
        return None

    def permissions_in(self, context_nip: str, identity: Identity) -> set[str]:
        """The permissions ``identity`` holds in the context ``context_nip`` (Owner implies all)."""
        with self._lock:
            self._settle()
            found: set[str] = set()
            if identity.type == "Nip" and identity.value == context_nip:
                found.add("Owner")
            if identity.type == "Pesel" and (context_nip, identity.value) in self.persons:
                found.add("Owner")
            found |= self.test_permissions.get((context_nip, identity), set())
            if identity.type == "Nip":
                found |= {
                    g.scope
                    for g in self.grants.values()
                    if g.active and g.context_nip == context_nip and g.subject_nip == identity.value
                }
            return found

    def auth_status(self, reference: str) -> Auth:
        """The authentication ``reference`` (one more poll), or :class:`SandboxError` 21304 / 410."""
        with self._lock:
            auth = self.auths.get(reference)
            if auth is None:
                raise SandboxError(
                    21304,
                    "Brak uwierzytelnienia.",
                    [
                        f"Operacja uwierzytelniania o numerze referencyjnym {reference} nie została znaleziona."
                    ],
                )
            if self.now() - auth.started > AUTH_RETENTION:
                raise SandboxError(0, "Operacja nie jest już dostępna.", http=410)
            auth.polls += 1
            return auth

    def status_code(self, auth: Auth) -> int:
        """The code the authentication shows now: 100 until the delay and pending polls pass."""
        if auth.revoked:
            return 425
        ready = self.now() >= auth.ready_at and auth.polls > self.config.auth_pending_polls
        return auth.final_code if ready else 100

    def redeem(self, auth: Auth) -> dict[str, tuple[str, datetime]]:
        """Issue the access and refresh tokens once, after a successful authentication."""
        with self._lock:
            code = self.status_code(auth)
            if auth.redeemed:
                raise SandboxError(
                    21301,
                    "Brak autoryzacji.",
                    [f"Tokeny dla operacji uwierzytelniania {auth.reference} zostały już pobrane."],
                )
            if code != 200:
                raise SandboxError(
                    21301,
                    "Brak autoryzacji.",
                    [f"Status uwierzytelniania ({code}) nie pozwala na pobranie tokenów."],
                )
            auth.redeemed = True
            access = self._issue_token("access", auth.reference, self.config.access_token_ttl)
            refresh = self._issue_token("refresh", auth.reference, self.config.refresh_token_ttl)
            auth.refresh_valid_until = refresh[1]
            return {"accessToken": access, "refreshToken": refresh}

    def refresh(self, auth: Auth) -> tuple[str, datetime]:
        """A new access token, unless the session was revoked."""
        with self._lock:
            if auth.revoked:
                raise SandboxError(
                    21301,
                    "Brak autoryzacji.",
                    ["Status uwierzytelniania (425) nie pozwala na odświeżenie tokenu dostępowego."],
                )
            auth.last_refresh = self.now()
            return self._issue_token("access", auth.reference, self.config.access_token_ttl)

    def revoke_auth(self, auth: Auth) -> None:
        """Revoke a session: its refresh token stops working (access tokens live until they expire)."""
        with self._lock:
            auth.revoked = True

    def find_auth(self, reference: str) -> Auth | None:
        """The authentication ``reference`` without counting a poll."""
        with self._lock:
            return self.auths.get(reference)

    def sessions_of(self, context_nip: str) -> list[Auth]:
        """The context's authentications, newest first."""
        with self._lock:
            items = [a for a in self.auths.values() if a.context_nip == context_nip]
            return sorted(items, key=lambda a: a.started, reverse=True)

    # -- test data ------------------------------------------------------------------------------

    def add_person(self, person: Person) -> None:
        """``/testdata/person``: the PESEL becomes an owner of the NIP."""
        with self._lock:
            key = (person.nip, person.pesel)
            if key in self.persons:
                raise SandboxError(30001, "Podmiot lub uprawnienie już istnieje.")
            self.persons[key] = person

    def remove_person(self, nip: str) -> None:
        """``/testdata/person/remove``: forget the persons linked to ``nip``."""
        with self._lock:
            for key in [k for k in self.persons if k[0] == nip]:
                del self.persons[key]

    def add_test_permissions(self, context_nip: str, identity: Identity, permissions: list[str]) -> None:
        """``/testdata/permissions``: grant ``identity`` permissions in ``context_nip`` (like ZAW-FA)."""
        with self._lock:
            self.test_permissions.setdefault((context_nip, identity), set()).update(permissions)

    def revoke_test_permissions(self, context_nip: str, identity: Identity) -> None:
        """``/testdata/permissions/revoke``."""
        with self._lock:
            self.test_permissions.pop((context_nip, identity), None)

    def block_context(self, nip: str, blocked: bool) -> None:
        """``/testdata/context/block`` and ``/unblock``: authentication in ``nip`` ends with 480."""
        with self._lock:
            (self.blocked_contexts.add if blocked else self.blocked_contexts.discard)(nip)

    # -- permissions ----------------------------------------------------------------------------

    def _settle(self) -> None:
        """Apply the effects of operations whose time has come and whose status was seen."""
        now = self.now()
        for op in self.operations.values():
            if not op.done and now >= op.ready_at and op.polls > self.config.operation_pending_polls:
                op.done = True
                if op.apply is not None and op.final_code == 200:
                    op.apply()

    def _operation(
        self, context_nip: str, apply: Callable[[], None] | None, final_code: int = 200
    ) -> Operation:
        now = self.now()
        op = Operation(
            reference_number("EG", now),
            context_nip,
            now,
            now + timedelta(seconds=self.config.operation_delay),
            final_code,
            apply,
        )
        self.operations[op.reference] = op
        return op

    def grant_entity(
        self, context_nip: str, *, subject_nip: str, permissions: list[dict], description: str, full_name: str
    ) -> Operation:
        """Start granting invoice permissions to ``subject_nip`` in ``context_nip``."""
        with self._lock:
            now = self.now()
            new: list[Grant] = []
            for item in permissions:
                duplicate = any(
                    g.context_nip == context_nip
                    and g.subject_nip == subject_nip
                    and g.scope == item["type"]
                    and g.active
                    for g in self.grants.values()
                )
                if not duplicate:
                    new.append(
                        Grant(
                            str(uuid.uuid4()),
                            context_nip,
                            subject_nip,
                            item["type"],
                            bool(item.get("canDelegate", False)),
                            description,
                            full_name,
                            now,
                        )
                    )
            for grant in new:
                self.grants[grant.id] = grant

            def apply() -> None:
                for grant in new:
                    grant.active = True
                    grant.start = self.now()

            return self._operation(context_nip, apply)

    def revoke_grant(self, context_nip: str, permission_id: str) -> Operation:
        """Start revoking a grant made in ``context_nip``."""
        with self._lock:
            grant = self.grants.get(permission_id)
            if grant is None or grant.context_nip != context_nip:
                return self._operation(context_nip, None, final_code=400)

            def apply() -> None:
                grant.active = False

            return self._operation(context_nip, apply)

    def operation(self, context_nip: str, reference: str) -> tuple[Operation, int]:
        """An operation of ``context_nip`` (one more poll) and the code it shows now."""
        with self._lock:
            op = self.operations.get(reference)
            if op is None or op.context_nip != context_nip:
                raise SandboxError(
                    21405,
                    "Błąd walidacji danych wejściowych.",
                    [f"Operacja o numerze referencyjnym {reference} nie została znaleziona."],
                )
            if self.now() - op.created > OPERATION_RETENTION:
                raise SandboxError(0, "Operacja nie jest już dostępna.", http=410)
            op.polls += 1
            self._settle()
            return op, (op.final_code if op.done else 100)

    def grants_received(self, subject_nip: str, grantor_nip: str | None) -> list[Grant]:
        """Active grants given to the entity ``subject_nip`` (optionally by one grantor), newest first."""
        with self._lock:
            self._settle()
            found = [
                g
                for g in self.grants.values()
                if g.active
                and g.subject_nip == subject_nip
                and (grantor_nip is None or g.context_nip == grantor_nip)
            ]
            return sorted(found, key=lambda g: g.start, reverse=True)

    def personal_grants(self, context_nip: str, identity: Identity) -> list[dict[str, Any]]:
        """The identity's own permissions in ``context_nip``: entity grants received and test grants."""
        with self._lock:
            self._settle()
            items: list[dict[str, Any]] = []
            if identity.type == "Nip":
                for grant in self.grants.values():
                    if (
                        grant.active
                        and grant.context_nip == context_nip
                        and grant.subject_nip == identity.value
                    ):
                        items.append(
                            {
                                "id": grant.id,
                                "contextIdentifier": {"type": "Nip", "value": context_nip},
                                "permissionScope": grant.scope,
                                "description": grant.description,
                                "permissionState": "Active",
                                "startDate": grant.start,
                                "canDelegate": grant.can_delegate,
                            }
                        )
            for scope in sorted(self.test_permissions.get((context_nip, identity), ())):
                items.append(
                    {
                        "id": str(
                            uuid.uuid5(uuid.NAMESPACE_URL, f"testdata:{context_nip}:{identity}:{scope}")
                        ),
                        "permissionScope": scope,
                        "description": "Uprawnienie testowe (testdata)",
                        "permissionState": "Active",
                        "startDate": self.now(),
                        "canDelegate": False,
                    }
                )
            return items

    # -- certificates ---------------------------------------------------------------------------

    def limits_for(self, identity: Identity) -> dict[str, Any]:
        """The certificate limits of ``identity`` (as ``CertificateLimitsResponse``)."""
        with self._lock:
            max_enrollments, max_certs = self.limits.get(identity, DEFAULT_LIMITS[identity.type])
            used = self.enrollment_counts.get(identity, 0)
            active = sum(
                1
                for c in self.certificates.values()
                if c.subject == identity and c.status_at(self.now()) == "Active"
            )
            pending = sum(
                1
                for e in self.enrollments.values()
                if e.subject == identity and e.serial is None and e.failure is None
            )
            enroll_left = max(0, max_enrollments - used)
            cert_left = max(0, max_certs - active - pending)
            return {
                "canRequest": enroll_left > 0 and cert_left > 0,
                "enrollment": {"remaining": enroll_left, "limit": max_enrollments},
                "certificate": {"remaining": cert_left, "limit": max_certs},
            }

    def set_limits(self, identity: Identity, *, enrollments: int, certificates: int) -> None:
        """Override the limits of ``identity`` (``/testdata/limits/subject/certificate`` or a helper)."""
        with self._lock:
            self.limits[identity] = (enrollments, certificates)

    def enroll(
        self, auth: Auth, *, name: str, certificate_type: str, csr_der: bytes, valid_from: datetime | None
    ) -> Enrollment:
        """Check a CSR like KSeF (25002/25003/25004/25006/25007/25010/25011) and queue it."""
        with self._lock:
            if auth.identity is None or auth.method == "Token":
                raise SandboxError(
                    25002,
                    "Brak możliwości złożenia wniosku certyfikacyjnego dla "
                    "wykorzystanego sposobu uwierzytelnienia.",
                )
            csr = _load_csr(csr_der)
            expected = {k: v for k, v in auth.subject_attributes.items() if v}
            got = csr_attributes(csr)
            if got != expected:
                raise SandboxError(
                    25003,
                    "Dane w CSR nie zgadzają się z danymi w użytym wektorze uwierzytelniającym.",
                    _dn_differences(expected, got),
                )
            limits = self.limits_for(auth.identity)
            if limits["enrollment"]["remaining"] <= 0:
                raise SandboxError(25006, "Osiągnięto limit możliwych do złożenia wniosków certyfikacyjnych.")
            if limits["certificate"]["remaining"] <= 0:
                raise SandboxError(25007, "Osiągnięto limit dopuszczalnej liczby posiadanych certyfikatów.")
            now = self.now()
            self.enrollment_counts[auth.identity] = self.enrollment_counts.get(auth.identity, 0) + 1
            enrollment = Enrollment(
                reference=reference_number("EH", now),
                subject=auth.identity,
                requested=now,
                ready_at=now + timedelta(seconds=self.config.enrollment_delay),
                name=name,
                certificate_type=certificate_type,
                csr=csr,
                valid_from=valid_from or now,
            )
            self.enrollments[enrollment.reference] = enrollment
            return enrollment

    def enrollment(self, identity: Identity, reference: str) -> Enrollment:
        """The subject's enrollment (one more poll), issuing the certificate when its time has come."""
        with self._lock:
            found = self.enrollments.get(reference)
            if found is None or found.subject != identity:
                raise SandboxError(
                    25005, "Wniosek certyfikacyjny o podanym numerze referencyjnym nie istnieje."
                )
            if self.now() - found.requested > OPERATION_RETENTION:
                raise SandboxError(0, "Operacja nie jest już dostępna.", http=410)
            found.polls += 1
            if (
                found.serial is None
                and found.failure is None
                and self.now() >= found.ready_at
                and found.polls > self.config.enrollment_pending_polls
            ):
                self._issue(found)
            return found

    def _issue(self, enrollment: Enrollment) -> None:
        spki = enrollment.csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_id = hashlib.sha256(spki).digest()
        owner = self.certified_keys.get(key_id)
        if owner is not None and owner != enrollment.subject:
            enrollment.failure = "Klucz publiczny został już certyfikowany przez inny podmiot."
            return
        active = sum(
            1
            for c in self.certificates.values()
            if c.subject == enrollment.subject and c.status_at(self.now()) == "Active"
        )
        if active >= self.limits.get(enrollment.subject, DEFAULT_LIMITS[enrollment.subject.type])[1]:
            enrollment.failure = "Osiągnięto dopuszczalny limit posiadanych certyfikatów."
            return
        serial = ca.new_serial()
        while ca.serial_hex(serial) in self.certificates:
            serial = ca.new_serial()
        cert = ca.issue_ksef_certificate(
            enrollment.csr,
            certificate_type=enrollment.certificate_type,
            valid_from=enrollment.valid_from,
            serial=serial,
        )
        issued = IssuedCertificate(
            ca.serial_hex(serial),
            cert,
            enrollment.name,
            enrollment.certificate_type,
            enrollment.subject,
            enrollment.requested,
        )
        self.certificates[issued.serial] = issued
        self.certified_keys[key_id] = enrollment.subject
        enrollment.serial = issued.serial

    def certificates_of(self, identity: Identity) -> list[IssuedCertificate]:
        """The subject's certificates, newest request first."""
        with self._lock:
            found = [c for c in self.certificates.values() if c.subject == identity]
            return sorted(found, key=lambda c: c.requested, reverse=True)

    def revoke_certificate(self, identity: Identity, serial: str) -> None:
        """Revoke (finally) one of the subject's certificates: 25008 unknown, 25009 not active."""
        with self._lock:
            found = self.certificates.get(serial)
            if found is None or found.subject != identity:
                raise SandboxError(25008, "Certyfikat o podanym numerze seryjnym nie istnieje.")
            if found.status_at(self.now()) != "Active":
                raise SandboxError(
                    25009,
                    "Nie można odwołać wskazanego certyfikatu, ponieważ jest już odwołany, "
                    "zablokowany lub nieważny.",
                )
            found.status = "Revoked"

    def shorten_certificate(self, identity: Identity, serial: str, valid_to: datetime) -> None:
        """``PUT /testdata/certificates/{serialNumber}``: end one of the subject's certificates earlier.

        25008 when the subject has no such certificate; 21405 when ``valid_to`` is later than the current
        end of validity ("nie może być późniejsza niż obecna").
        """
        with self._lock:
            found = self.certificates.get(serial)
            if found is None or found.subject != identity:
                raise SandboxError(25008, "Certyfikat o podanym numerze seryjnym nie istnieje.")
            if valid_to > found.valid_to:
                raise SandboxError(
                    21405,
                    "Błąd walidacji danych wejściowych.",
                    ["Nowa data ważności certyfikatu nie może być późniejsza niż obecna."],
                )
            found.valid_to_override = valid_to

    def touch_certificate(self, serial: str) -> None:
        """Note that a certificate was just used to authenticate (``lastUseDate``)."""
        with self._lock:
            self.certificates[serial].last_use = self.now()

    def certificate(self, serial: str) -> IssuedCertificate | None:
        """A certificate the sandbox issued, by serial."""
        with self._lock:
            return self.certificates.get(serial)

    def certificate_for(self, cert: x509.Certificate) -> IssuedCertificate | None:
        """The issued record of ``cert`` if the sandbox KSeF CA issued it."""
        if not ca.ksef_ca().issued(cert):
            return None
        record = self.certificate(ca.serial_hex(cert.serial_number))
        if record is None or record.certificate.fingerprint(hashes.SHA256()) != cert.fingerprint(
            hashes.SHA256()
        ):
            return None
        return record

    # -- persistence (optional, for the CLI server) ---------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """What survives a restart: test data, grants, certificates, counters, limits, availability.

        Sessions, challenges and pending operations are not kept (they are short-lived anyway); the CA
        keys need no saving because they are derived deterministically (see :mod:`sandbox.ca`).
        """
        with self._lock:
            self._settle()
            return {
                "version": 1,
                "persons": [vars(p) for p in self.persons.values()],
                "testPermissions": [
                    {"context": ctx, "type": ident.type, "value": ident.value, "permissions": sorted(perms)}
                    for (ctx, ident), perms in self.test_permissions.items()
                ],
                "blockedContexts": sorted(self.blocked_contexts),
                "grants": [{**vars(g), "start": _iso(g.start)} for g in self.grants.values() if g.active],
                "certificates": [
                    {
                        "pem": c.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                        "name": c.name,
                        "type": c.certificate_type,
                        "subjectType": c.subject.type,
                        "subjectValue": c.subject.value,
                        "requested": _iso(c.requested),
                        "status": c.status,
                        "lastUse": _iso(c.last_use) if c.last_use else None,
                        "validTo": _iso(c.valid_to_override) if c.valid_to_override else None,
                    }
                    for c in self.certificates.values()
                ],
                "enrollmentCounts": [
                    {"type": i.type, "value": i.value, "count": n} for i, n in self.enrollment_counts.items()
                ],
                "limits": [
                    {"type": i.type, "value": i.value, "enrollments": e, "certificates": c}
                    for i, (e, c) in self.limits.items()
                ],
                "availability": self.availability,
                "messages": list(self.messages),
            }

    def load_json(self, data: dict[str, Any]) -> None:
        """Restore what :meth:`to_json` saved."""
        parse = datetime.fromisoformat
        with self._lock:
            for item in data.get("persons", []):
                self.persons[(item["nip"], item["pesel"])] = Person(**item)
            for item in data.get("testPermissions", []):
                key = (item["context"], Identity(item["type"], item["value"]))
                self.test_permissions[key] = set(item["permissions"])
            self.blocked_contexts = set(data.get("blockedContexts", []))
            for item in data.get("grants", []):
                self.grants[item["id"]] = Grant(**{**item, "start": parse(item["start"])})
            for item in data.get("certificates", []):
                cert = x509.load_pem_x509_certificate(item["pem"].encode("ascii"))
                serial = ca.serial_hex(cert.serial_number)
                subject = Identity(item["subjectType"], item["subjectValue"])
                self.certificates[serial] = IssuedCertificate(
                    serial,
                    cert,
                    item["name"],
                    item["type"],
                    subject,
                    parse(item["requested"]),
                    item["status"],
                    parse(item["lastUse"]) if item.get("lastUse") else None,
                    parse(item["validTo"]) if item.get("validTo") else None,
                )
                spki = cert.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                self.certified_keys[hashlib.sha256(spki).digest()] = subject
            for item in data.get("enrollmentCounts", []):
                self.enrollment_counts[Identity(item["type"], item["value"])] = item["count"]
            for item in data.get("limits", []):
                self.limits[Identity(item["type"], item["value"])] = (
                    item["enrollments"],
                    item["certificates"],
                )
            self.availability = data.get("availability", "AVAILABLE")
            self.messages = list(data.get("messages", []))

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        target = Path(path)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(temporary, target)

    # -- Latarnia -------------------------------------------------------------------------------

    def set_availability(
        self,
        status: str,
        *,
        title: str | None = None,
        text: str | None = None,
        messages: list[dict[str, Any]] | None = None,
    ) -> None:
        """Set Latarnia's status; a failure or maintenance adds a start message, AVAILABLE ends it."""
        if status not in ("AVAILABLE", "MAINTENANCE", "FAILURE", "TOTAL_FAILURE"):
            raise ValueError(f"unknown availability status {status!r}")
        with self._lock:
            now = self.now()
            if messages is not None:
                self.messages = list(messages)
            elif status == "AVAILABLE":
                if self.availability != "AVAILABLE" and self.messages:
                    last = self.messages[-1]
                    self.messages.append(
                        {
                            **last,
                            "id": str(uuid.uuid4()),
                            "type": "FAILURE_END",
                            "title": title or "Koniec niedostępności KSeF",
                            "text": text or "KSeF działa ponownie.",
                            "end": _iso(now),
                        }
                    )
            else:
                self._event_id += 1
                kind = "MAINTENANCE_ANNOUNCEMENT" if status == "MAINTENANCE" else "FAILURE_START"
                self.messages.append(
                    {
                        "id": str(uuid.uuid4()),
                        "eventId": self._event_id,
                        "category": status,
                        "type": kind,
                        "title": title
                        or ("Prace serwisowe KSeF" if status == "MAINTENANCE" else "Awaria KSeF"),
                        "text": text or "Komunikat testowy sandboksa Klucznik.",
                        "start": _iso(now),
                        "end": None,
                    }
                )
            self.availability = status


def ip_allowed(address: str, rules: tuple[str, ...]) -> bool:
    """True when ``rules`` (Ip4Address, Ip4Range "a-b", Ip4Mask "a/n") allow ``address``; no rules allow all."""
    if not rules:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for rule in rules:
        if "/" in rule:
            if ip in ipaddress.ip_network(rule, strict=False):
                return True
        elif "-" in rule:
            low, high = (ipaddress.ip_address(part) for part in rule.split("-", 1))
            if low <= ip <= high:
                return True
        elif ip == ipaddress.ip_address(rule):
            return True
    return False


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _dn_differences(expected: dict[str, str], got: dict[str, str] | None) -> list[str]:
    if got is None:
        return ["CSR zawiera atrybuty, których KSeF nie wydaje."]
    keys = sorted(set(expected) | set(got))
    return [
        f"{k}: oczekiwano {expected.get(k)!r}, otrzymano {got.get(k)!r}"
        for k in keys
        if expected.get(k) != got.get(k)
    ]


_ALLOWED_CSR_HASHES = (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512)


def _load_csr(der: bytes) -> x509.CertificateSigningRequest:
    """Parse and check a CSR: 25004 (format, signature), 25010 (key), 25011 (algorithm)."""
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError:
        raise SandboxError(25004, "Niepoprawny format CSR lub niepoprawny podpis CSR.") from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature, TypeError):
        valid = False
    if not valid:
        raise SandboxError(25004, "Niepoprawny format CSR lub niepoprawny podpis CSR.")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size != 2048:
            raise SandboxError(25010, "Nieprawidłowy typ lub długość klucza.", [f"RSA {key.key_size}"])
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SandboxError(25010, "Nieprawidłowy typ lub długość klucza.", [key.curve.name])
    else:
        raise SandboxError(25010, "Nieprawidłowy typ lub długość klucza.")
    try:
        algorithm = csr.signature_hash_algorithm
    except Exception:  # unsupported algorithm OIDs raise here
        algorithm = None
    if not isinstance(algorithm, _ALLOWED_CSR_HASHES):
        raise SandboxError(25011, "Nieprawidłowy algorytm podpisu CSR.")
    return csr
