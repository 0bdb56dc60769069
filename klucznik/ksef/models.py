"""What KSeF answers, as frozen dataclasses with Python types (aware UTC ``datetime``, DER ``bytes``).

Nothing upstream reads KSeF's JSON by hand: each result knows how to read its own JSON shape. Unknown
enum values (KSeF adds permission types and statuses between versions: API 2.7 added
``CollectiveIdentifierManage``) are kept as plain strings, never refused. ``authenticationMethod`` is
deprecated in favour of ``authenticationMethodInfo`` (its removal was postponed): it is read when present,
else the category of ``authenticationMethodInfo`` stands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from klucznik import clock
from klucznik.ksef.errors import KsefError
from klucznik.ksef.statuses import explain_auth_status


def format_datetime(value: datetime) -> str:
    """An aware datetime as the ISO 8601 UTC text KSeF accepts."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class TokenInfo:
    """A JWT and the moment it stops being valid."""

    token: str
    valid_until: datetime

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenInfo:
        """Parse KSeF's ``TokenInfo``."""
        return cls(token=data["token"], valid_until=clock.parse(data["validUntil"]))


@dataclass(frozen=True)
class Status:
    """KSeF's ``StatusInfo`` of an asynchronous operation."""

    code: int
    description: str
    details: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Status:
        """Parse KSeF's ``StatusInfo``."""
        return cls(
            code=int(data["code"]), description=data["description"], details=tuple(data.get("details") or ())
        )

    @property
    def in_progress(self) -> bool:
        """True while KSeF is still working (code 100)."""
        return self.code == 100

    @property
    def succeeded(self) -> bool:
        """True when the operation finished successfully (code 200)."""
        return self.code == 200


@dataclass(frozen=True)
class Challenge:
    """The answer of ``POST /auth/challenge``: valid for 10 minutes from ``timestamp``."""

    challenge: str
    timestamp: datetime
    timestamp_ms: int
    client_ip: str

    @property
    def expires_at(self) -> datetime:
        """When KSeF stops accepting this challenge."""
        return self.timestamp + timedelta(minutes=10)


@dataclass(frozen=True)
class AuthInit:
    """The answer of ``POST /auth/xades-signature``: the operation to poll and its token."""

    reference_number: str
    authentication_token: TokenInfo


@dataclass(frozen=True)
class AuthMethodInfo:
    """How the subject authenticated (category, code, display name)."""

    category: str
    code: str
    display_name: str


@dataclass(frozen=True)
class AuthStatus:
    """The state of one authentication (``GET /auth/{referenceNumber}``)."""

    start_date: datetime
    authentication_method: str
    method_info: AuthMethodInfo
    status: Status
    is_token_redeemed: bool | None = None
    last_token_refresh_date: datetime | None = None
    refresh_token_valid_until: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthStatus:
        """Parse ``AuthenticationOperationStatusResponse``."""
        info = data["authenticationMethodInfo"]
        return cls(
            start_date=clock.parse(data["startDate"]),
            authentication_method=data.get("authenticationMethod") or info.get("category", ""),
            method_info=AuthMethodInfo(info["category"], info["code"], info["displayName"]),
            status=Status.from_json(data["status"]),
            is_token_redeemed=data.get("isTokenRedeemed"),
            last_token_refresh_date=clock.parse_optional(data.get("lastTokenRefreshDate")),
            refresh_token_valid_until=clock.parse_optional(data.get("refreshTokenValidUntil")),
        )

    def error(self) -> KsefError | None:
        """A :class:`KsefError` explaining a failed authentication, or ``None`` if it did not fail."""
        code = self.status.code
        if code in (100, 200):
            return None
        return KsefError(
            explain_auth_status(code, self.status.description, self.status.details).text,
            code=f"ksef_auth_{code}",
            codes=(code,),
            descriptions=(self.status.description,),
            details=self.status.details,
        )


@dataclass(frozen=True)
class AuthTokens:
    """The access and refresh tokens of a redeemed authentication."""

    access_token: TokenInfo
    refresh_token: TokenInfo


@dataclass(frozen=True)
class AuthSession:
    """One item of ``GET /auth/sessions``."""

    reference_number: str
    start_date: datetime
    authentication_method: str
    method_info: AuthMethodInfo
    status: Status
    is_current: bool
    is_token_redeemed: bool | None
    refresh_token_valid_until: datetime | None


@dataclass(frozen=True)
class SessionsPage:
    """A page of authentication sessions; ``continuation_token`` is ``None`` on the last page."""

    items: tuple[AuthSession, ...]
    continuation_token: str | None


@dataclass(frozen=True)
class CertificateLimits:
    """How many KSeF certificate requests and active certificates the subject has left."""

    can_request: bool
    enrollment_remaining: int
    enrollment_limit: int
    certificate_remaining: int
    certificate_limit: int


# (JSON field, X.509 attribute OID) in the order KSeF's own client builds the subject.
ENROLLMENT_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("commonName", "2.5.4.3"),
    ("surname", "2.5.4.4"),
    ("givenName", "2.5.4.42"),
    ("organizationName", "2.5.4.10"),
    ("organizationIdentifier", "2.5.4.97"),
    ("countryName", "2.5.4.6"),
    ("serialNumber", "2.5.4.5"),
    ("uniqueIdentifier", "2.5.4.45"),
)


@dataclass(frozen=True)
class EnrollmentData:
    """The subject data a certificate request must carry exactly (``GET /certificates/enrollments/data``)."""

    common_name: str
    country_name: str
    given_name: str | None = None
    surname: str | None = None
    serial_number: str | None = None
    unique_identifier: str | None = None
    organization_name: str | None = None
    organization_identifier: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnrollmentData:
        """Parse ``CertificateEnrollmentDataResponse``."""
        given = data.get("givenName")
        if isinstance(given, list):  # the docs say it may be a list; the schema says a string
            given = " ".join(given)
        return cls(
            common_name=data["commonName"],
            country_name=data["countryName"],
            given_name=given,
            surname=data.get("surname"),
            serial_number=data.get("serialNumber"),
            unique_identifier=data.get("uniqueIdentifier"),
            organization_name=data.get("organizationName"),
            organization_identifier=data.get("organizationIdentifier"),
        )

    def attributes(self) -> tuple[tuple[str, str], ...]:
        """The non-empty subject attributes as (OID, value), in KSeF's order."""
        values = {
            "commonName": self.common_name,
            "surname": self.surname,
            "givenName": self.given_name,
            "organizationName": self.organization_name,
            "organizationIdentifier": self.organization_identifier,
            "countryName": self.country_name,
            "serialNumber": self.serial_number,
            "uniqueIdentifier": self.unique_identifier,
        }
        return tuple((oid, values[name]) for name, oid in ENROLLMENT_ATTRIBUTES if values[name])

    def x509_name(self) -> x509.Name:
        """The subject as a ``cryptography`` Name (one RDN per attribute), ready for a CSR."""
        return x509.Name(
            [x509.NameAttribute(ObjectIdentifier(oid), value) for oid, value in self.attributes()]
        )


@dataclass(frozen=True)
class EnrollmentAccepted:
    """KSeF accepted a certificate request for processing."""

    reference_number: str
    timestamp: datetime


@dataclass(frozen=True)
class EnrollmentStatus:
    """The state of a certificate request; ``certificate_serial_number`` is set on success."""

    request_date: datetime
    status: Status
    certificate_serial_number: str | None


@dataclass(frozen=True)
class RetrievedCertificate:
    """A KSeF certificate as downloaded (the leaf only, DER)."""

    certificate_der: bytes
    name: str
    serial_number: str
    certificate_type: str


@dataclass(frozen=True)
class CertificateInfo:
    """One KSeF certificate in ``POST /certificates/query``."""

    serial_number: str
    name: str
    certificate_type: str
    common_name: str
    status: str
    subject_identifier_type: str
    subject_identifier_value: str
    valid_from: datetime
    valid_to: datetime
    last_use_date: datetime | None
    request_date: datetime


@dataclass(frozen=True)
class CertificatesPage:
    """A page of certificates."""

    certificates: tuple[CertificateInfo, ...]
    has_more: bool


@dataclass(frozen=True)
class OperationAccepted:
    """KSeF accepted a permission operation (grant or revoke); poll it with ``operation_status``."""

    reference_number: str


@dataclass(frozen=True)
class OperationStatus:
    """The state of a permission operation."""

    status: Status


@dataclass(frozen=True)
class EntityGrant:
    """A permission another entity granted to the current context (``/permissions/query/entities/grants``)."""

    id: str
    context_type: str
    context_value: str
    permission_scope: str
    description: str
    start_date: datetime
    can_delegate: bool


@dataclass(frozen=True)
class EntityGrantsPage:
    """A page of entity grants."""

    permissions: tuple[EntityGrant, ...]
    has_more: bool


@dataclass(frozen=True)
class PersonalGrant:
    """One of the caller's own permissions in the current context (``/permissions/query/personal/grants``)."""

    id: str
    permission_scope: str
    description: str
    state: str
    start_date: datetime
    can_delegate: bool
    context_type: str | None
    context_value: str | None


@dataclass(frozen=True)
class PersonalGrantsPage:
    """A page of the caller's own permissions."""

    permissions: tuple[PersonalGrant, ...]
    has_more: bool


@dataclass(frozen=True)
class PublicKeyCertificate:
    """One of the Ministry's public-key certificates used to encrypt KSeF tokens or symmetric keys."""

    certificate_der: bytes
    certificate_id: str
    public_key_id: str
    valid_from: datetime
    valid_to: datetime
    usage: tuple[str, ...]


@dataclass(frozen=True)
class RateLimit:
    """One group's API rate limit: requests per second, minute and hour (0: no such threshold)."""

    per_second: int
    per_minute: int
    per_hour: int


@dataclass(frozen=True)
class AvailabilityMessage:
    """One Latarnia message (a failure or maintenance notice)."""

    id: str
    event_id: int | None
    category: str
    type: str
    title: str
    text: str
    start: datetime | None
    end: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AvailabilityMessage:
        """Parse a Latarnia ``Message``."""
        return cls(
            id=str(data.get("id", "")),
            event_id=data.get("eventId"),
            category=data.get("category", ""),
            type=data.get("type", ""),
            title=data.get("title", ""),
            text=data.get("text", ""),
            start=clock.parse_optional(data.get("start")),
            end=clock.parse_optional(data.get("end")),
        )


@dataclass(frozen=True)
class Availability:
    """KSeF's availability as Latarnia reports it."""

    status: str
    messages: tuple[AvailabilityMessage, ...]

    @property
    def available(self) -> bool:
        """True when KSeF works normally."""
        return self.status == "AVAILABLE"
