"""The KSeF 2.0 REST API client: authentication, certificates, permissions.

Results are the frozen dataclasses of :mod:`klucznik.ksef.models`; every failure is a
:class:`~klucznik.ksef.errors.KsefError`; how requests are sent and retried is
:mod:`klucznik.ksef.transport`. No Flask here: the client is shared by the portal, the console commands
and the sandbox's tests.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime
from datetime import timedelta
from typing import Any

import requests

from klucznik import clock
from klucznik.clock import Clock
from klucznik.clock import utcnow
from klucznik.ksef.environments import latarnia_for
from klucznik.ksef.errors import KsefError
from klucznik.ksef.latarnia import Latarnia
from klucznik.ksef.models import AuthInit
from klucznik.ksef.models import AuthMethodInfo
from klucznik.ksef.models import AuthSession
from klucznik.ksef.models import AuthStatus
from klucznik.ksef.models import AuthTokens
from klucznik.ksef.models import CertificateInfo
from klucznik.ksef.models import CertificateLimits
from klucznik.ksef.models import CertificatesPage
from klucznik.ksef.models import Challenge
from klucznik.ksef.models import EnrollmentAccepted
from klucznik.ksef.models import EnrollmentData
from klucznik.ksef.models import EnrollmentStatus
from klucznik.ksef.models import EntityGrant
from klucznik.ksef.models import EntityGrantsPage
from klucznik.ksef.models import OperationAccepted
from klucznik.ksef.models import OperationStatus
from klucznik.ksef.models import PersonalGrant
from klucznik.ksef.models import PersonalGrantsPage
from klucznik.ksef.models import PublicKeyCertificate
from klucznik.ksef.models import RateLimit
from klucznik.ksef.models import RetrievedCertificate
from klucznik.ksef.models import SessionsPage
from klucznik.ksef.models import Status
from klucznik.ksef.models import TokenInfo
from klucznik.ksef.models import format_datetime
from klucznik.ksef.testdata import TestData
from klucznik.ksef.transport import BearerAuth
from klucznik.ksef.transport import RetryPolicy
from klucznik.ksef.transport import TokenHolder
from klucznik.ksef.transport import Transport
from klucznik.ksef.warnings import SystemWarning
from klucznik.text import Text


def _path(value: str) -> str:
    """A path segment from an identifier (reference numbers and serials never need more)."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", value or ""):
        raise KsefError(
            Text("Nieprawidłowy identyfikator operacji KSeF.", "Invalid KSeF operation identifier."),
            code="ksef_identifier",
        )
    return value


class KsefClient:
    """The KSeF 2.0 API as Python methods returning frozen dataclasses or raising :class:`KsefError`.

    ``base_url`` is the API root ending in ``/v2`` (see :func:`~klucznik.ksef.environments.base_url_for`).
    After :meth:`redeem` (or :meth:`use_tokens`) the client holds the session's tokens and refreshes the
    access token before it expires; the methods that need an access token use it. ``latarnia`` is the
    availability service of the same environment and ``testdata`` the TEST-only helpers; both share this
    client's connection pool and retry rules.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        retries: RetryPolicy | int | None = None,
        latarnia_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = utcnow,
        refresh_margin: timedelta = timedelta(seconds=60),
        problem_details: bool = True,
        user_agent: str = "Klucznik (KSeF portal)",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = Transport(
            timeout=timeout,
            session=session,
            retries=retries,
            sleep=sleep,
            problem_details=problem_details,
            user_agent=user_agent,
        )
        self.clock = clock
        self.refresh_margin = refresh_margin
        self.tokens: TokenHolder | None = None
        self.latarnia = Latarnia(self.transport, latarnia_url or latarnia_for(self.base_url))
        self.testdata = TestData(self.call, auth=self._access_auth)

    @property
    def session(self) -> requests.Session:
        """The pooled HTTP session (its headers go with every request)."""
        return self.transport.session

    @property
    def warnings(self) -> list[str]:
        """Every ``X-System-Warning`` KSeF sent to this client, oldest first."""
        return self.transport.warnings

    @property
    def system_warnings(self) -> list[SystemWarning]:
        """The same warnings read into codes and messages, each with the call that got it."""
        return self.transport.system_warnings

    def take_warnings(self) -> list[SystemWarning]:
        """The warnings received since the last call (to log and show each once)."""
        return self.transport.take_warnings()

    def close(self) -> None:
        """Close the pooled connections."""
        self.transport.close()

    def __enter__(self) -> KsefClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def use_tokens(self, tokens: AuthTokens) -> TokenHolder:
        """Hold ``tokens`` for the calls that need an access token (refreshing it when due)."""
        self.tokens = TokenHolder(
            tokens, refresher=self.refresh, clock=self.clock, margin=self.refresh_margin
        )
        return self.tokens

    def _access_auth(self) -> BearerAuth:
        if self.tokens is None:
            raise KsefError(
                Text(
                    "Portal nie ma aktywnej sesji KSeF dla tej operacji. Najpierw uwierzytelnij się w KSeF.",
                    "The portal has no active KSeF session for this operation. Authenticate with KSeF first.",
                ),
                code="ksef_not_authenticated",
            )
        return BearerAuth(self.tokens.access_token)

    def call(
        self, method: str, path: str, *, idempotent: bool, expected: Iterable[int] = (200,), **kwargs: Any
    ) -> Any:
        """One API call (``path`` below ``/v2``) with the transport's rules; the answer's JSON or ``None``."""
        return self.transport.json(
            method, f"{self.base_url}{path}", idempotent=idempotent, expected=expected, **kwargs
        )

    # -- authentication -------------------------------------------------------------------------

    def challenge(self) -> Challenge:
        """``POST /auth/challenge``: a fresh challenge (valid 10 minutes)."""
        data = self.call("POST", "/auth/challenge", idempotent=True)
        return Challenge(
            challenge=data["challenge"],
            timestamp=clock.parse(data["timestamp"]),
            timestamp_ms=int(data["timestampMs"]),
            client_ip=data["clientIp"],
        )

    def submit_xades(self, signed_xml: bytes, *, verify_certificate_chain: bool | None = None) -> AuthInit:
        """``POST /auth/xades-signature``: send the signed ``AuthTokenRequest`` bytes unchanged."""
        params = {}
        if verify_certificate_chain is not None:
            params["verifyCertificateChain"] = "true" if verify_certificate_chain else "false"
        data = self.call(
            "POST",
            "/auth/xades-signature",
            idempotent=False,
            expected=(202,),
            data=bytes(signed_xml),
            params=params,
            headers={"Content-Type": "application/xml"},
        )
        return AuthInit(data["referenceNumber"], TokenInfo.from_json(data["authenticationToken"]))

    def auth_status(self, reference: str, authentication_token: str) -> AuthStatus:
        """``GET /auth/{referenceNumber}``: the state of an authentication."""
        data = self.call(
            "GET", f"/auth/{_path(reference)}", idempotent=True, auth=BearerAuth(authentication_token)
        )
        return AuthStatus.from_json(data)

    def wait_for_auth(self, init: AuthInit, *, interval: float = 1.0, timeout: float = 120.0) -> AuthStatus:
        """Poll :meth:`auth_status` until KSeF decides; raise :class:`KsefError` on failure or timeout."""
        status = self._poll(
            lambda: self.auth_status(init.reference_number, init.authentication_token.token),
            lambda r: r.status,
            interval=interval,
            timeout=timeout,
            what=("podpis i uprawnienia", "the signature and permissions"),
        )
        error = status.error()
        if error is not None:
            raise error
        return status

    def _poll(
        self,
        read: Callable[[], Any],
        status_of: Callable[[Any], Status],
        *,
        interval: float,
        timeout: float,
        what: tuple[str, str],
    ) -> Any:
        """Call ``read`` until its status is no longer 100, sleeping ``interval``; give up after ``timeout``."""
        deadline = self.clock() + timedelta(seconds=timeout)
        while True:
            result = read()
            if not status_of(result).in_progress:
                return result
            if self.clock() >= deadline:
                raise KsefError(
                    Text(
                        f"KSeF wciąż przetwarza {what[0]}. Sprawdź status ponownie za kilka minut.",
                        f"KSeF is still processing {what[1]}. Check the status again in a few minutes.",
                    ),
                    code="ksef_pending",
                    codes=(100,),
                )
            self.transport.sleep(interval)

    def wait_for_operation(
        self, reference: str, *, interval: float = 1.0, timeout: float = 120.0
    ) -> OperationStatus:
        """Poll a permission operation until KSeF decides; raise :class:`KsefError` unless it succeeded."""
        result = self._poll(
            lambda: self.operation_status(reference),
            lambda r: r.status,
            interval=interval,
            timeout=timeout,
            what=("operację na uprawnieniach", "the permission operation"),
        )
        if not result.status.succeeded:
            raise KsefError(
                Text(
                    f"KSeF nie wykonał operacji na uprawnieniach: {result.status.description}.",
                    f"KSeF did not complete the permission operation: {result.status.description}.",
                ),
                code=f"ksef_operation_{result.status.code}",
                codes=(result.status.code,),
                descriptions=(result.status.description,),
                details=result.status.details,
            )
        return result

    def wait_for_enrollment(
        self, reference: str, *, interval: float = 1.0, timeout: float = 120.0
    ) -> EnrollmentStatus:
        """Poll a certificate request until KSeF decides; raise :class:`KsefError` unless a certificate came out."""
        result = self._poll(
            lambda: self.enrollment_status(reference),
            lambda r: r.status,
            interval=interval,
            timeout=timeout,
            what=("wniosek o certyfikat", "the certificate request"),
        )
        if not result.status.succeeded or not result.certificate_serial_number:
            detail = "; ".join(result.status.details) or result.status.description
            raise KsefError(
                Text(
                    f"KSeF odrzucił wniosek o certyfikat: {detail}",
                    f"KSeF rejected the certificate request: {detail}",
                ),
                code=f"ksef_enrollment_{result.status.code}",
                codes=(result.status.code,),
                descriptions=(result.status.description,),
                details=result.status.details,
            )
        return result

    def redeem(self, authentication_token: str) -> AuthTokens:
        """``POST /auth/token/redeem`` (works once): the session's tokens, also held by this client."""
        data = self.call(
            "POST", "/auth/token/redeem", idempotent=False, auth=BearerAuth(authentication_token)
        )
        tokens = AuthTokens(
            TokenInfo.from_json(data["accessToken"]), TokenInfo.from_json(data["refreshToken"])
        )
        self.use_tokens(tokens)
        return tokens

    def authenticate(
        self,
        signed_xml: bytes,
        *,
        verify_certificate_chain: bool | None = None,
        interval: float = 1.0,
        timeout: float = 120.0,
    ) -> AuthTokens:
        """Submit a signed request, wait for KSeF's decision and redeem the tokens (held by the client)."""
        init = self.submit_xades(signed_xml, verify_certificate_chain=verify_certificate_chain)
        self.wait_for_auth(init, interval=interval, timeout=timeout)
        return self.redeem(init.authentication_token.token)

    def refresh(self, refresh_token: str) -> TokenInfo:
        """``POST /auth/token/refresh``: a new access token (the refresh token stays the same)."""
        data = self.call("POST", "/auth/token/refresh", idempotent=True, auth=BearerAuth(refresh_token))
        return TokenInfo.from_json(data["accessToken"])

    def sessions(self, *, page_size: int = 10, continuation_token: str | None = None) -> SessionsPage:
        """``GET /auth/sessions``: one page of the context's authentication sessions."""
        headers = {"x-continuation-token": continuation_token} if continuation_token else {}
        data = self.call(
            "GET",
            "/auth/sessions",
            idempotent=True,
            params={"pageSize": page_size},
            headers=headers,
            auth=self._access_auth(),
        )
        items = []
        for item in data["items"]:
            info = item["authenticationMethodInfo"]
            items.append(
                AuthSession(
                    reference_number=item["referenceNumber"],
                    start_date=clock.parse(item["startDate"]),
                    authentication_method=item.get("authenticationMethod") or info.get("category", ""),
                    method_info=AuthMethodInfo(info["category"], info["code"], info["displayName"]),
                    status=Status.from_json(item["status"]),
                    is_current=bool(item.get("isCurrent")),
                    is_token_redeemed=item.get("isTokenRedeemed"),
                    refresh_token_valid_until=clock.parse_optional(item.get("refreshTokenValidUntil")),
                )
            )
        return SessionsPage(tuple(items), data.get("continuationToken") or None)

    def revoke_current(self) -> None:
        """``DELETE /auth/sessions/current``: end this session (its refresh token stops working)."""
        self.call(
            "DELETE", "/auth/sessions/current", idempotent=True, expected=(204,), auth=self._access_auth()
        )
        self.tokens = None

    def revoke_session(self, reference: str) -> None:
        """``DELETE /auth/sessions/{referenceNumber}``: end another session of the context."""
        self.call(
            "DELETE",
            f"/auth/sessions/{_path(reference)}",
            idempotent=True,
            expected=(204,),
            auth=self._access_auth(),
        )

    # -- certificates ---------------------------------------------------------------------------

    def limits(self) -> CertificateLimits:
        """``GET /certificates/limits``: what the authenticated subject may still request."""
        data = self.call("GET", "/certificates/limits", idempotent=True, auth=self._access_auth())
        return CertificateLimits(
            can_request=bool(data["canRequest"]),
            enrollment_remaining=int(data["enrollment"]["remaining"]),
            enrollment_limit=int(data["enrollment"]["limit"]),
            certificate_remaining=int(data["certificate"]["remaining"]),
            certificate_limit=int(data["certificate"]["limit"]),
        )

    def enrollment_data(self) -> EnrollmentData:
        """``GET /certificates/enrollments/data``: the exact subject a CSR must carry."""
        return EnrollmentData.from_json(
            self.call("GET", "/certificates/enrollments/data", idempotent=True, auth=self._access_auth())
        )

    def enroll(
        self, *, name: str, certificate_type: str, csr_der: bytes, valid_from: datetime | None = None
    ) -> EnrollmentAccepted:
        """``POST /certificates/enrollments``: request an ``Authentication`` or ``Offline`` certificate."""
        body: dict[str, Any] = {
            "certificateName": name,
            "certificateType": certificate_type,
            "csr": base64.b64encode(csr_der).decode("ascii"),
        }
        if valid_from is not None:
            body["validFrom"] = format_datetime(valid_from)
        data = self.call(
            "POST",
            "/certificates/enrollments",
            idempotent=False,
            expected=(202,),
            json=body,
            auth=self._access_auth(),
        )
        return EnrollmentAccepted(data["referenceNumber"], clock.parse(data["timestamp"]))

    def enrollment_status(self, reference: str) -> EnrollmentStatus:
        """``GET /certificates/enrollments/{referenceNumber}``."""
        data = self.call(
            "GET", f"/certificates/enrollments/{_path(reference)}", idempotent=True, auth=self._access_auth()
        )
        return EnrollmentStatus(
            clock.parse(data["requestDate"]),
            Status.from_json(data["status"]),
            data.get("certificateSerialNumber"),
        )

    def retrieve(self, serial_numbers: Iterable[str]) -> tuple[RetrievedCertificate, ...]:
        """``POST /certificates/retrieve``: download certificates (DER leaves) by serial number."""
        body = {"certificateSerialNumbers": list(serial_numbers)}
        data = self.call(
            "POST", "/certificates/retrieve", idempotent=True, json=body, auth=self._access_auth()
        )
        return tuple(
            RetrievedCertificate(
                base64.b64decode(item["certificate"]),
                item["certificateName"],
                item["certificateSerialNumber"],
                item["certificateType"],
            )
            for item in data["certificates"]
        )

    def query_certificates(
        self,
        *,
        serial_number: str | None = None,
        name: str | None = None,
        certificate_type: str | None = None,
        status: str | None = None,
        expires_after: datetime | None = None,
        page_size: int = 10,
        page_offset: int = 0,
    ) -> CertificatesPage:
        """``POST /certificates/query``: the subject's certificates, filtered."""
        body: dict[str, Any] = {}
        if serial_number:
            body["certificateSerialNumber"] = serial_number
        if name:
            body["name"] = name
        if certificate_type:
            body["type"] = certificate_type
        if status:
            body["status"] = status
        if expires_after:
            body["expiresAfter"] = format_datetime(expires_after)
        data = self.call(
            "POST",
            "/certificates/query",
            idempotent=True,
            json=body,
            params={"pageSize": page_size, "pageOffset": page_offset},
            auth=self._access_auth(),
        )
        return CertificatesPage(
            tuple(
                CertificateInfo(
                    serial_number=c["certificateSerialNumber"],
                    name=c["name"],
                    certificate_type=c["type"],
                    common_name=c["commonName"],
                    status=c["status"],
                    subject_identifier_type=c["subjectIdentifier"]["type"],
                    subject_identifier_value=c["subjectIdentifier"]["value"],
                    valid_from=clock.parse(c["validFrom"]),
                    valid_to=clock.parse(c["validTo"]),
                    last_use_date=clock.parse_optional(c.get("lastUseDate")),
                    request_date=clock.parse(c["requestDate"]),
                )
                for c in data["certificates"]
            ),
            bool(data["hasMore"]),
        )

    query = query_certificates

    def revoke_certificate(self, serial_number: str, *, reason: str | None = None) -> None:
        """``POST /certificates/{serial}/revoke`` (final): reason Unspecified, Superseded or KeyCompromise."""
        body = {"revocationReason": reason} if reason else {}
        self.call(
            "POST",
            f"/certificates/{_path(serial_number)}/revoke",
            idempotent=False,
            expected=(204,),
            json=body,
            auth=self._access_auth(),
        )

    revoke = revoke_certificate

    # -- permissions ----------------------------------------------------------------------------

    def grant_entity(
        self,
        *,
        nip: str,
        full_name: str,
        description: str,
        permissions: Iterable[str] = ("InvoiceRead", "InvoiceWrite"),
        can_delegate: bool = False,
    ) -> OperationAccepted:
        """``POST /permissions/entities/grants``: grant an entity (the office's NIP) invoice permissions."""
        body = {
            "subjectIdentifier": {"type": "Nip", "value": nip},
            "permissions": [{"type": p, "canDelegate": can_delegate} for p in permissions],
            "description": description,
            "subjectDetails": {"fullName": full_name},
        }
        data = self.call(
            "POST",
            "/permissions/entities/grants",
            idempotent=False,
            expected=(202,),
            json=body,
            auth=self._access_auth(),
        )
        return OperationAccepted(data["referenceNumber"])

    def operation_status(self, reference: str) -> OperationStatus:
        """``GET /permissions/operations/{referenceNumber}``."""
        data = self.call(
            "GET", f"/permissions/operations/{_path(reference)}", idempotent=True, auth=self._access_auth()
        )
        return OperationStatus(Status.from_json(data["status"]))

    def query_entity_grants(
        self, *, grantor_nip: str | None = None, page_size: int = 10, page_offset: int = 0
    ) -> EntityGrantsPage:
        """``POST /permissions/query/entities/grants``: what other entities granted the current context."""
        body = {"contextIdentifier": {"type": "Nip", "value": grantor_nip}} if grantor_nip else {}
        data = self.call(
            "POST",
            "/permissions/query/entities/grants",
            idempotent=True,
            json=body,
            params={"pageSize": page_size, "pageOffset": page_offset},
            auth=self._access_auth(),
        )
        return EntityGrantsPage(
            tuple(
                EntityGrant(
                    id=p["id"],
                    context_type=p["contextIdentifier"]["type"],
                    context_value=p["contextIdentifier"]["value"],
                    permission_scope=p["permissionScope"],
                    description=p["description"],
                    start_date=clock.parse(p["startDate"]),
                    can_delegate=bool(p["canDelegate"]),
                )
                for p in data["permissions"]
            ),
            bool(data["hasMore"]),
        )

    def query_personal_grants(
        self, *, permission_types: Iterable[str] = (), page_size: int = 10, page_offset: int = 0
    ) -> PersonalGrantsPage:
        """``POST /permissions/query/personal/grants``: my permissions in the current context."""
        body = {"permissionTypes": list(permission_types)} if permission_types else {}
        data = self.call(
            "POST",
            "/permissions/query/personal/grants",
            idempotent=True,
            json=body,
            params={"pageSize": page_size, "pageOffset": page_offset},
            auth=self._access_auth(),
        )
        return PersonalGrantsPage(
            tuple(
                PersonalGrant(
                    id=p["id"],
                    permission_scope=p["permissionScope"],
                    description=p["description"],
                    state=p["permissionState"],
                    start_date=clock.parse(p["startDate"]),
                    can_delegate=bool(p["canDelegate"]),
                    context_type=(p.get("contextIdentifier") or {}).get("type"),
                    context_value=(p.get("contextIdentifier") or {}).get("value"),
                )
                for p in data["permissions"]
            ),
            bool(data["hasMore"]),
        )

    def revoke_permission(self, permission_id: str) -> OperationAccepted:
        """``DELETE /permissions/common/grants/{permissionId}``."""
        data = self.call(
            "DELETE",
            f"/permissions/common/grants/{_path(permission_id)}",
            idempotent=True,
            expected=(202,),
            auth=self._access_auth(),
        )
        return OperationAccepted(data["referenceNumber"])

    # -- limits ---------------------------------------------------------------------------------

    def rate_limits(self) -> dict[str, RateLimit]:
        """``GET /rate-limits``: the API rate limits in force for this context and address, by group
        (``other`` covers certificates, permissions and tokens; unknown groups are kept)."""
        data = self.call("GET", "/rate-limits", idempotent=True, auth=self._access_auth())
        return {
            group: RateLimit(
                int(v.get("perSecond") or 0), int(v.get("perMinute") or 0), int(v.get("perHour") or 0)
            )
            for group, v in data.items()
            if isinstance(v, dict)
        }

    # -- security -------------------------------------------------------------------------------

    def public_key_certificates(self) -> tuple[PublicKeyCertificate, ...]:
        """``GET /security/public-key-certificates``: the Ministry's encryption certificates."""
        data = self.call("GET", "/security/public-key-certificates", idempotent=True)
        return tuple(
            PublicKeyCertificate(
                certificate_der=base64.b64decode(item["certificate"]),
                certificate_id=item["certificateId"],
                public_key_id=item["publicKeyId"],
                valid_from=clock.parse(item["validFrom"]),
                valid_to=clock.parse(item["validTo"]),
                usage=tuple(item["usage"]),
            )
            for item in data
        )
