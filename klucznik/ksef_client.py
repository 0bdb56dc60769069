"""A small, strict client for the KSeF 2.0 REST API (and Latarnia, its availability service).

Why it looks the way it does:

* One :class:`requests.Session` per client, an :class:`~requests.adapters.HTTPAdapter` mounted for
  connection pooling, and a :class:`~requests.auth.AuthBase` that resolves the bearer token at the moment
  each request is sent, so a retried request always carries a fresh access token.
* Every call has a timeout. Retries are done here, not by urllib3, because the rules depend on meaning:
  a 5xx answer, a read timeout or a dropped connection is retried only for calls that are safe to repeat
  (GETs, DELETEs and the read-only POSTs such as queries). A request that never left the machine
  (connection refused, connect timeout) is safe to repeat for every call. A 429 means KSeF did not process
  the request, so every call waits for ``Retry-After`` (bounded) and tries again. A non-idempotent POST
  (submitting a signed document, redeeming tokens, enrolling a certificate, granting permissions) is
  never repeated blindly: the caller decides.
* Results are frozen dataclasses with Python types (``datetime`` in UTC, ``bytes`` for DER), so nothing
  upstream ever reads KSeF's JSON by hand.
* There is one error type, :class:`KsefError`, that carries the HTTP status, KSeF's exception codes and
  descriptions from either error format (legacy ``ExceptionResponse`` or ``application/problem+json``),
  plus a message in Polish and in English written for accountants: what happened and what to do.
* Access tokens live in a :class:`TokenHolder` that refreshes them shortly before they expire (the clock
  is injectable, as is ``sleep``, so tests never wait for real).

No Flask here: the client is shared by the portal, the CLI and the sandbox's tests.
"""

from __future__ import annotations

import base64
import email.utils
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import NameResolutionError
from urllib3.exceptions import NewConnectionError

from klucznik.errors import PortalError

__all__ = [
    "ENVIRONMENTS",
    "AuthInit",
    "AuthMethodInfo",
    "AuthSession",
    "AuthStatus",
    "AuthTokens",
    "Availability",
    "AvailabilityMessage",
    "BearerAuth",
    "CertificateInfo",
    "CertificateLimits",
    "CertificatesPage",
    "Challenge",
    "EnrollmentAccepted",
    "EnrollmentData",
    "EnrollmentStatus",
    "EntityGrant",
    "EntityGrantsPage",
    "Environment",
    "KsefClient",
    "KsefError",
    "OperationAccepted",
    "OperationStatus",
    "PersonalGrant",
    "PersonalGrantsPage",
    "PublicKeyCertificate",
    "RetrievedCertificate",
    "RetryPolicy",
    "SessionsPage",
    "Status",
    "TokenHolder",
    "TokenInfo",
    "base_url_for",
    "environment",
]

# --------------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------------

SANDBOX_DEFAULT_URL = "http://127.0.0.1:8765"


@dataclass(frozen=True)
class Environment:
    """The hosts of one KSeF environment: the API (with ``/v2``), the QR host and Latarnia."""

    name: str
    api_url: str
    qr_url: str
    latarnia_url: str | None


ENVIRONMENTS: Mapping[str, Environment] = {
    "test": Environment(
        "test",
        "https://api-test.ksef.mf.gov.pl/v2",
        "https://qr-test.ksef.mf.gov.pl",
        "https://api-latarnia-test.ksef.mf.gov.pl",
    ),
    # Latarnia has no documented DEMO host.
    "demo": Environment("demo", "https://api-demo.ksef.mf.gov.pl/v2", "https://qr-demo.ksef.mf.gov.pl", None),
    "prod": Environment(
        "prod",
        "https://api.ksef.mf.gov.pl/v2",
        "https://qr.ksef.mf.gov.pl",
        "https://api-latarnia.ksef.mf.gov.pl",
    ),
}


def environment(name: str, sandbox_url: str | None = None) -> Environment:
    """The hosts of ``name`` ("test", "demo", "prod" or "sandbox"; the sandbox at ``sandbox_url``)."""
    if name == "sandbox":
        root = (sandbox_url or SANDBOX_DEFAULT_URL).rstrip("/")
        root = root.removesuffix("/v2")
        return Environment("sandbox", f"{root}/v2", f"{root}/qr", f"{root}/latarnia")
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise KsefError(
            f"Nieznane środowisko KSeF „{name}”. Wybierz test, demo, prod albo sandbox.",
            f"Unknown KSeF environment '{name}'. Choose test, demo, prod or sandbox.",
            code="ksef_environment",
        ) from None


def base_url_for(environment_name: str, sandbox_url: str | None = None) -> str:
    """The API base URL (ending in ``/v2``) of an environment; pass it to :class:`KsefClient`."""
    return environment(environment_name, sandbox_url).api_url


def _latarnia_for(api_url: str) -> str | None:
    """Latarnia's host for a known API URL; for any other URL, the sandbox layout (``<root>/latarnia``)."""
    for env in ENVIRONMENTS.values():
        if env.api_url == api_url:
            return env.latarnia_url
    return environment("sandbox", api_url).latarnia_url


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------

# KSeF exception codes -> (Polish, English) for accountants: what happened, what to do.
_CODE_MESSAGES: Mapping[int, tuple[str, str]] = {
    9101: (
        "KSeF nie rozpoznał przesłanego pliku jako poprawnego dokumentu XML. Pobierz plik z portalu "
        "jeszcze raz, podpisz go bez otwierania i edycji, i wgraj ponownie.",
        "KSeF did not accept the file as a valid XML document. Download the file from the portal again, "
        "sign it without opening or editing it, and upload it again.",
    ),
    9102: (
        "Plik nie zawiera podpisu. Podpisz plik podpisem kwalifikowanym, pieczęcią albo Profilem Zaufanym "
        "i wgraj podpisany plik.",
        "The file carries no signature. Sign it with a qualified signature, a seal or Profil Zaufany and "
        "upload the signed file.",
    ),
    9103: (
        "Plik ma więcej niż jeden podpis. Podpisz oryginalny plik tylko raz.",
        "The file has more than one signature. Sign the original file only once.",
    ),
    9105: (
        "KSeF odrzucił podpis (podpis nieprawidłowy lub w formacie, którego KSeF nie przyjmuje). Podpisz "
        "plik ponownie podpisem otaczanym lub otaczającym (XAdES), nie „zewnętrznym”.",
        "KSeF rejected the signature (invalid, or in a format KSeF does not accept). Sign the file again "
        "with an enveloped or enveloping XAdES signature, not a detached one.",
    ),
    21001: (
        "KSeF nie mógł odczytać pliku. Wgraj plik dokładnie taki, jaki zwrócił program do podpisu.",
        "KSeF could not read the file. Upload the file exactly as the signing software saved it.",
    ),
    21111: (
        "Wyzwanie autoryzacyjne jest nieprawidłowe albo wygasło (ważne 10 minut). Wygeneruj nowy plik "
        "w portalu, podpisz go i wgraj w ciągu 10 minut.",
        "The authorisation challenge is invalid or expired (it lasts 10 minutes). Generate a new file in "
        "the portal, sign it and upload it within 10 minutes.",
    ),
    21115: (
        "KSeF nie przyjął certyfikatu użytego do podpisu. Użyj ważnego certyfikatu kwalifikowanego, "
        "pieczęci albo Profilu Zaufanego.",
        "KSeF did not accept the certificate used to sign. Use a valid qualified certificate, seal or "
        "Profil Zaufany.",
    ),
    21117: (
        "Identyfikator firmy w pliku nie pasuje do rodzaju kontekstu. Wygeneruj plik ponownie w portalu.",
        "The company identifier in the file does not match the context type. Generate the file again.",
    ),
    21217: (
        "KSeF nie odczytał znaków w pliku (kodowanie). Wgraj plik bez otwierania go i zapisywania na nowo.",
        "KSeF could not read the characters in the file (encoding). Upload the file without re-saving it.",
    ),
    21301: (
        "KSeF nie wydał tokenów tej sesji (już zostały pobrane albo sesja została unieważniona). "
        "Uwierzytelnij się ponownie.",
        "KSeF did not issue tokens for this session (already collected, or the session was revoked). "
        "Authenticate again.",
    ),
    21304: (
        "KSeF nie zna tej operacji uwierzytelniania. Rozpocznij uwierzytelnianie od nowa.",
        "KSeF does not know this authentication. Start authenticating again.",
    ),
    21308: (
        "KSeF zablokował uwierzytelnianie danymi osoby zmarłej.",
        "KSeF blocked authentication with the credentials of a deceased person.",
    ),
    21401: (
        "Plik nie jest zgodny ze schematem KSeF. Wygeneruj plik ponownie w portalu i nie zmieniaj go przed "
        "podpisaniem.",
        "The file does not match KSeF's schema. Generate it again in the portal and do not change it before "
        "signing.",
    ),
    21405: (
        "KSeF odrzucił dane żądania jako niepoprawne. Sprawdź wpisane dane i spróbuj ponownie.",
        "KSeF rejected the request data as invalid. Check what was entered and try again.",
    ),
    21406: (
        "Rodzaj podpisu nie pasuje do sposobu uwierzytelnienia wskazanego w pliku.",
        "The kind of signature does not match the authentication type named in the file.",
    ),
    21418: (
        "KSeF nie przyjął znacznika kolejnej strony listy. Odśwież listę od początku.",
        "KSeF did not accept the next-page marker. Reload the list from the start.",
    ),
    25001: (
        "Po tym sposobie logowania KSeF nie wydaje danych do certyfikatu. Uwierzytelnij się podpisem "
        "kwalifikowanym, pieczęcią lub Profilem Zaufanym.",
        "KSeF does not give certificate data after this kind of login. Authenticate with a qualified "
        "signature, a seal or Profil Zaufany.",
    ),
    25002: (
        "Po tym sposobie logowania nie można wnioskować o certyfikat KSeF. Uwierzytelnij się podpisem "
        "kwalifikowanym, pieczęcią lub Profilem Zaufanym.",
        "A KSeF certificate cannot be requested after this kind of login. Authenticate with a qualified "
        "signature, a seal or Profil Zaufany.",
    ),
    25003: (
        "Dane we wniosku o certyfikat nie zgadzają się z danymi osoby lub firmy, która się "
        "uwierzytelniła. Wniosek musi zawierać dokładnie dane podane przez KSeF.",
        "The data in the certificate request do not match the person or company that authenticated. The "
        "request must contain exactly the data KSeF provided.",
    ),
    25004: (
        "Wniosek o certyfikat (CSR) jest uszkodzony albo źle podpisany. Wygeneruj go ponownie.",
        "The certificate request (CSR) is damaged or badly signed. Generate it again.",
    ),
    25005: ("KSeF nie zna tego wniosku o certyfikat.", "KSeF does not know this certificate request."),
    25006: (
        "Wyczerpano limit wniosków o certyfikaty KSeF dla tej osoby lub firmy.",
        "The limit of KSeF certificate requests for this person or company has been reached.",
    ),
    25007: (
        "Osiągnięto limit aktywnych certyfikatów KSeF. Unieważnij niepotrzebny certyfikat i spróbuj ponownie.",
        "The limit of active KSeF certificates has been reached. Revoke one you no longer need and retry.",
    ),
    25008: (
        "KSeF nie zna certyfikatu o tym numerze seryjnym.",
        "KSeF does not know a certificate with this serial number.",
    ),
    25009: (
        "Tego certyfikatu nie można unieważnić: jest już unieważniony, zablokowany lub wygasł.",
        "This certificate cannot be revoked: it is already revoked, blocked or expired.",
    ),
    25010: (
        "KSeF nie przyjmuje takiego klucza: potrzebny jest EC P-256 albo RSA 2048 bitów.",
        "KSeF does not accept this key: it needs EC P-256 or RSA with 2048 bits.",
    ),
    25011: (
        "KSeF nie przyjmuje algorytmu podpisu wniosku o certyfikat.",
        "KSeF does not accept the signature algorithm of the certificate request.",
    ),
    30001: (
        "Ten podmiot lub uprawnienie już istnieje w środowisku testowym.",
        "This subject or permission already exists in the test environment.",
    ),
}

# Final statuses of an authentication (GET /auth/{ref}) -> (Polish, English).
_AUTH_STATUS_MESSAGES: Mapping[int, tuple[str, str]] = {
    415: (
        "Osoba lub firma, która podpisała plik, nie ma w KSeF żadnych uprawnień dla tego NIP. Plik musi "
        "podpisać właściciel firmy (lub osoba z uprawnieniami), albo firma musi najpierw nadać uprawnienia.",
        "The person or company that signed has no KSeF permissions for this NIP. The owner (or someone "
        "with permissions) must sign, or the company must grant permissions first.",
    ),
    425: (
        "Ta sesja KSeF została unieważniona. Uwierzytelnij się ponownie.",
        "This KSeF session was revoked. Authenticate again.",
    ),
    450: (
        "KSeF odrzucił uwierzytelnienie: wyzwanie lub token są nieprawidłowe albo wygasły. Wygeneruj nowy "
        "plik i podpisz go ponownie.",
        "KSeF refused the authentication: the challenge or token is invalid or expired. Generate a new file "
        "and sign it again.",
    ),
    460: (
        "KSeF odrzucił certyfikat użyty do podpisu (nieważny, odwołany, zawieszony lub spoza zaufanej listy). "
        "Podpisz plik ważnym certyfikatem.",
        "KSeF refused the signing certificate (invalid, revoked, suspended or not trusted). Sign with a "
        "valid certificate.",
    ),
    470: (
        "KSeF zablokował uwierzytelnianie danymi osoby zmarłej.",
        "KSeF blocked authentication with the credentials of a deceased person.",
    ),
    480: (
        "KSeF zablokował uwierzytelnianie w tym kontekście (podejrzenie incydentu bezpieczeństwa). "
        "Skontaktuj się z Ministerstwem Finansów przez formularz zgłoszeniowy.",
        "KSeF blocked authentication in this context (suspected security incident). Contact the Ministry "
        "of Finance through its contact form.",
    ),
    500: (
        "KSeF zgłosił nieznany błąd. Spróbuj ponownie za kilka minut.",
        "KSeF reported an unknown error. Try again in a few minutes.",
    ),
    550: (
        "KSeF przerwał operację z przyczyn wewnętrznych. Spróbuj ponownie.",
        "KSeF cancelled the operation for internal reasons. Try again.",
    ),
}

_HTTP_MESSAGES: Mapping[int, tuple[str, str]] = {
    400: ("KSeF odrzucił żądanie.", "KSeF rejected the request."),
    401: (
        "KSeF nie rozpoznał logowania (token wygasł lub jest nieprawidłowy). Uwierzytelnij się ponownie.",
        "KSeF did not recognise the login (the token expired or is invalid). Authenticate again.",
    ),
    403: (
        "Brak uprawnień w KSeF do tej operacji w bieżącym kontekście. Poproś właściciela firmy o nadanie "
        "uprawnień.",
        "No KSeF permission for this operation in the current context. Ask the company's owner to grant it.",
    ),
    404: (
        "KSeF nie zna tego adresu. Sprawdź adres środowiska KSeF w ustawieniach biura.",
        "KSeF does not know this address. Check the KSeF environment address in the office settings.",
    ),
    410: (
        "Wynik tej operacji nie jest już dostępny w KSeF (minął okres przechowywania). Rozpocznij od nowa.",
        "The result of this operation is no longer kept by KSeF. Start again.",
    ),
    415: ("KSeF nie przyjął formatu przesłanych danych.", "KSeF did not accept the format of the data sent."),
    429: (
        "KSeF ogranicza liczbę żądań. Odczekaj chwilę i spróbuj ponownie.",
        "KSeF is limiting the number of requests. Wait a moment and try again.",
    ),
}

# 403 reasonCode -> (Polish, English)
_REASON_MESSAGES: Mapping[str, tuple[str, str]] = {
    "ip-not-allowed": (
        "KSeF odrzucił żądanie, bo przyszło z innego adresu IP niż dozwolony przy logowaniu. Uwierzytelnij się "
        "ponownie z tego adresu albo popraw listę dozwolonych adresów.",
        "KSeF refused the request because it came from an IP address the login did not allow. Authenticate "
        "again from this address or correct the list of allowed addresses.",
    ),
    "auth-method-not-allowed": (
        "Tej operacji nie można wykonać po takim sposobie logowania do KSeF. Uwierzytelnij się podpisem "
        "kwalifikowanym, pieczęcią albo Profilem Zaufanym.",
        "This operation is not available after this kind of KSeF login. Authenticate with a qualified "
        "signature, a seal or Profil Zaufany.",
    ),
    "security-service-blocked": (
        "KSeF zablokował żądanie (mechanizmy bezpieczeństwa). Skontaktuj się z Ministerstwem Finansów.",
        "KSeF's security mechanisms blocked the request. Contact the Ministry of Finance.",
    ),
}

_SERVER_MESSAGE = (
    "KSeF ma chwilowe problemy (błąd po stronie serwera). Spróbuj ponownie za kilka minut; "
    "sprawdź też komunikaty o dostępności KSeF.",
    "KSeF is having temporary problems (a server-side error). Try again in a few minutes and "
    "check KSeF's availability notices.",
)


class KsefError(PortalError):
    """Any failure talking to KSeF: an error answer, an unreachable server, or a failed operation.

    ``http_status`` is ``None`` when no answer came back; ``codes`` and ``descriptions`` are KSeF's
    exception codes and texts (from either error format), ``details`` its free-text details.
    """

    code = "ksef"

    def __init__(
        self,
        message_pl: str,
        message_en: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        codes: Iterable[int] = (),
        descriptions: Iterable[str] = (),
        details: Iterable[str] = (),
        reason_code: str | None = None,
        trace_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message_pl, message_en, code=code)
        self.http_status = http_status
        self.codes = tuple(codes)
        self.descriptions = tuple(descriptions)
        self.details = tuple(details)
        self.reason_code = reason_code
        self.trace_id = trace_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.message_en]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.codes:
            parts.append("KSeF " + ", ".join(str(c) for c in self.codes))
        if self.descriptions:
            parts.append("; ".join(self.descriptions))
        return " | ".join(parts)


def _messages_for(
    http_status: int | None, codes: tuple[int, ...], descriptions: tuple[str, ...]
) -> tuple[str, str]:
    """Plain Polish and English texts for an error: by KSeF code first, then by HTTP status."""
    for c in codes:
        if c in _CODE_MESSAGES:
            return _CODE_MESSAGES[c]
    if http_status is not None and http_status >= 500:
        return _SERVER_MESSAGE
    pl, en = _HTTP_MESSAGES.get(http_status or 0, ("KSeF odrzucił żądanie.", "KSeF rejected the request."))
    if descriptions:
        pl, en = f"{pl} KSeF: {descriptions[0]}", f"{en} KSeF: {descriptions[0]}"
    return pl, en


def error_from_response(response: requests.Response) -> KsefError:
    """Build a :class:`KsefError` from an error answer in either of KSeF's formats."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    codes: list[int] = []
    descriptions: list[str] = []
    details: list[str] = []
    reason_code = trace_id = None
    if isinstance(body, dict):
        if isinstance(body.get("exception"), dict):  # legacy ExceptionResponse
            for item in body["exception"].get("exceptionDetailList") or []:
                if isinstance(item.get("exceptionCode"), int):
                    codes.append(item["exceptionCode"])
                if item.get("exceptionDescription"):
                    descriptions.append(item["exceptionDescription"])
                details.extend(item.get("details") or [])
        elif isinstance(body.get("status"), dict):  # legacy TooManyRequestsResponse
            if body["status"].get("description"):
                descriptions.append(body["status"]["description"])
            details.extend(body["status"].get("details") or [])
        else:  # application/problem+json
            for item in body.get("errors") or []:
                if isinstance(item.get("code"), int):
                    codes.append(item["code"])
                if item.get("description"):
                    descriptions.append(item["description"])
                details.extend(item.get("details") or [])
            if not descriptions and body.get("detail"):
                descriptions.append(str(body["detail"]))
            reason_code = body.get("reasonCode")
            trace_id = body.get("traceId")
    pl, en = _REASON_MESSAGES.get(reason_code or "") or _messages_for(
        status, tuple(codes), tuple(descriptions)
    )
    code = f"ksef_{codes[0]}" if codes else f"ksef_http_{status}"
    return KsefError(
        pl,
        en,
        code=code,
        http_status=status,
        codes=codes,
        descriptions=descriptions,
        details=details,
        reason_code=reason_code,
        trace_id=trace_id,
        retry_after=_retry_after_seconds(response),
    )


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_datetime(value: str) -> datetime:
    """KSeF's date-time (up to 7 fractional digits, ``Z`` or an offset, sometimes none) as aware UTC."""
    text = _FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00"))
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _opt_datetime(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


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
        return cls(token=data["token"], valid_until=parse_datetime(data["validUntil"]))


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
            start_date=parse_datetime(data["startDate"]),
            authentication_method=data["authenticationMethod"],
            method_info=AuthMethodInfo(info["category"], info["code"], info["displayName"]),
            status=Status.from_json(data["status"]),
            is_token_redeemed=data.get("isTokenRedeemed"),
            last_token_refresh_date=_opt_datetime(data.get("lastTokenRefreshDate")),
            refresh_token_valid_until=_opt_datetime(data.get("refreshTokenValidUntil")),
        )

    def error(self) -> KsefError | None:
        """A :class:`KsefError` explaining a failed authentication, or ``None`` if it did not fail."""
        code = self.status.code
        if code in (100, 200):
            return None
        pl, en = _AUTH_STATUS_MESSAGES.get(code, _AUTH_STATUS_MESSAGES[500])
        return KsefError(
            pl,
            en,
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

    def x509_name(self):  # -> cryptography.x509.Name
        """The subject as a ``cryptography`` Name (one RDN per attribute), ready for a CSR."""
        from cryptography import x509
        from cryptography.x509.oid import ObjectIdentifier

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
            start=_opt_datetime(data.get("start")),
            end=_opt_datetime(data.get("end")),
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


# --------------------------------------------------------------------------------------------------
# Transport: retries, Retry-After, bearer tokens
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    ``attempts`` counts tries of a retryable failure (5xx, timeout, dropped connection) including the
    first; waits grow as ``backoff * 2**n`` up to ``backoff_max``. A 429 is retried at most
    ``rate_limit_attempts`` times, waiting ``Retry-After`` seconds, but never longer than
    ``max_retry_after`` (a longer wait is reported to the caller instead).
    """

    attempts: int = 3
    backoff: float = 0.5
    backoff_max: float = 8.0
    rate_limit_attempts: int = 3
    max_retry_after: float = 60.0

    def backoff_for(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return min(self.backoff * 2 ** (retry - 1), self.backoff_max)


def _retry_after_seconds(response: requests.Response) -> float | None:
    """``Retry-After`` as seconds (an integer or an HTTP date), or ``None``."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (so repeating it is always safe)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, NewConnectionError | NameResolutionError):
            return True
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException):
            cause = reason
            continue
        if cause.args and isinstance(cause.args[0], BaseException):
            cause = cause.args[0]
            continue
        cause = cause.__cause__ or cause.__context__
    return False


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>``; the token may be a string or a callable asked on every send."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token() if callable(self._token) else self._token
        request.headers["Authorization"] = f"Bearer {token}"
        return request


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TokenHolder:
    """Keeps an access token fresh: refreshes it when it is within ``margin`` of expiring.

    Thread-safe; one refresh at a time. ``refresher`` takes the refresh token and returns a new access
    :class:`TokenInfo` (normally :meth:`KsefClient.refresh`).
    """

    def __init__(
        self,
        tokens: AuthTokens,
        *,
        refresher: Callable[[str], TokenInfo],
        clock: Callable[[], datetime] = _utcnow,
        margin: timedelta = timedelta(seconds=60),
    ) -> None:
        self._access = tokens.access_token
        self._refresh = tokens.refresh_token
        self._refresher = refresher
        self._clock = clock
        self._margin = margin
        self._lock = threading.Lock()
        self.refresh_count = 0

    @property
    def refresh_token(self) -> TokenInfo:
        """The refresh token (KSeF does not rotate it)."""
        return self._refresh

    @property
    def access(self) -> TokenInfo:
        """The current access token, without refreshing."""
        return self._access

    def access_token(self) -> str:
        """A valid access token, refreshed first if it expires within the margin."""
        with self._lock:
            now = self._clock()
            if self._access.valid_until - self._margin > now:
                return self._access.token
            if self._refresh.valid_until <= now:
                raise KsefError(
                    "Sesja KSeF wygasła (token odświeżania jest ważny najwyżej 7 dni). Uwierzytelnij się ponownie.",
                    "The KSeF session has expired (a refresh token lasts at most 7 days). Authenticate again.",
                    code="ksef_session_expired",
                )
            self._access = self._refresher(self._refresh.token)
            self.refresh_count += 1
            return self._access.token


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


def _path(value: str) -> str:
    """A path segment from an identifier (reference numbers and serials never need more)."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", value or ""):
        raise KsefError(
            "Nieprawidłowy identyfikator operacji KSeF.",
            "Invalid KSeF operation identifier.",
            code="ksef_identifier",
        )
    return value


class KsefClient:
    """The KSeF 2.0 API as Python methods returning frozen dataclasses or raising :class:`KsefError`.

    ``base_url`` is the API root ending in ``/v2`` (see :func:`base_url_for`). After :meth:`redeem` (or
    :meth:`use_tokens`) the client holds the session's tokens and refreshes the access token before it
    expires; the methods that need an access token use it.
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
        clock: Callable[[], datetime] = _utcnow,
        refresh_margin: timedelta = timedelta(seconds=60),
        problem_details: bool = True,
        user_agent: str = "Klucznik (KSeF portal)",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.latarnia_url = (latarnia_url or _latarnia_for(self.base_url) or "").rstrip("/") or None
        self.timeout = timeout
        if isinstance(retries, int):
            retries = RetryPolicy(attempts=retries)
        self.retry = retries or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self.refresh_margin = refresh_margin
        self.tokens: TokenHolder | None = None
        self.warnings: list[str] = []
        self.session = session or requests.Session()
        # Retries are ours (see the module docstring), so urllib3 must not retry on its own.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
        if problem_details:
            self.session.headers["X-Error-Format"] = "problem-details"

    # -- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

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
                "Portal nie ma aktywnej sesji KSeF dla tej operacji. Najpierw uwierzytelnij się w KSeF.",
                "The portal has no active KSeF session for this operation. Authenticate with KSeF first.",
                code="ksef_not_authenticated",
            )
        return BearerAuth(self.tokens.access_token)

    def _request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        expected: Iterable[int],
        **kwargs: Any,
    ) -> requests.Response:
        """Send with timeouts and the retry rules of the module docstring; return an expected answer."""
        expected = tuple(expected)
        failures = 0
        rate_limited = 0
        while True:
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failures += 1
                if (idempotent or _never_sent(exc)) and failures < self.retry.attempts:
                    self.sleep(self.retry.backoff_for(failures))
                    continue
                raise self._transport_error(exc) from exc
            self._note_warning(response)
            if response.status_code in expected:
                return response
            if response.status_code == 429:
                rate_limited += 1
                wait = _retry_after_seconds(response)
                if wait is None:
                    wait = self.retry.backoff_for(rate_limited)
                if rate_limited <= self.retry.rate_limit_attempts and wait <= self.retry.max_retry_after:
                    self.sleep(wait)
                    continue
                raise error_from_response(response)
            if response.status_code >= 500 and idempotent:
                failures += 1
                if failures < self.retry.attempts:
                    self.sleep(self.retry.backoff_for(failures))
                    continue
            raise error_from_response(response)

    def _note_warning(self, response: requests.Response) -> None:
        warning = response.headers.get("X-System-Warning")
        if warning:
            self.warnings.append(warning)

    @staticmethod
    def _transport_error(exc: requests.RequestException) -> KsefError:
        if isinstance(exc, requests.Timeout):
            return KsefError(
                "KSeF nie odpowiedział na czas. Spróbuj ponownie za chwilę; jeśli to się powtarza, sprawdź "
                "komunikaty o dostępności KSeF.",
                "KSeF did not answer in time. Try again shortly; if it keeps happening, check KSeF's "
                "availability notices.",
                code="ksef_timeout",
            )
        return KsefError(
            "Nie udało się połączyć z KSeF albo połączenie zostało przerwane. Sprawdź połączenie z internetem "
            "i spróbuj ponownie.",
            "Could not connect to KSeF, or the connection was cut. Check the internet connection and try again.",
            code="ksef_unreachable",
        )

    def _api(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _json(
        self, method: str, path: str, *, idempotent: bool, expected: Iterable[int] = (200,), **kwargs: Any
    ) -> Any:
        response = self._request(method, self._api(path), idempotent=idempotent, expected=expected, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise KsefError(
                "KSeF zwrócił odpowiedź, której portal nie rozumie. Spróbuj ponownie później.",
                "KSeF returned an answer the portal does not understand. Try again later.",
                code="ksef_bad_answer",
                http_status=response.status_code,
            ) from exc

    # -- authentication -------------------------------------------------------------------------

    def challenge(self) -> Challenge:
        """``POST /auth/challenge``: a fresh challenge (valid 10 minutes)."""
        data = self._json("POST", "/auth/challenge", idempotent=True)
        return Challenge(
            challenge=data["challenge"],
            timestamp=parse_datetime(data["timestamp"]),
            timestamp_ms=int(data["timestampMs"]),
            client_ip=data["clientIp"],
        )

    def submit_xades(self, signed_xml: bytes, *, verify_certificate_chain: bool | None = None) -> AuthInit:
        """``POST /auth/xades-signature``: send the signed ``AuthTokenRequest`` bytes unchanged."""
        params = {}
        if verify_certificate_chain is not None:
            params["verifyCertificateChain"] = "true" if verify_certificate_chain else "false"
        data = self._json(
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
        data = self._json(
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
                    f"KSeF wciąż przetwarza {what[0]}. Sprawdź status ponownie za kilka minut.",
                    f"KSeF is still processing {what[1]}. Check the status again in a few minutes.",
                    code="ksef_pending",
                    codes=(100,),
                )
            self.sleep(interval)

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
                f"KSeF nie wykonał operacji na uprawnieniach: {result.status.description}.",
                f"KSeF did not complete the permission operation: {result.status.description}.",
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
                f"KSeF odrzucił wniosek o certyfikat: {detail}",
                f"KSeF rejected the certificate request: {detail}",
                code=f"ksef_enrollment_{result.status.code}",
                codes=(result.status.code,),
                descriptions=(result.status.description,),
                details=result.status.details,
            )
        return result

    def redeem(self, authentication_token: str) -> AuthTokens:
        """``POST /auth/token/redeem`` (works once): the session's tokens, also held by this client."""
        data = self._json(
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
        data = self._json("POST", "/auth/token/refresh", idempotent=True, auth=BearerAuth(refresh_token))
        return TokenInfo.from_json(data["accessToken"])

    def sessions(self, *, page_size: int = 10, continuation_token: str | None = None) -> SessionsPage:
        """``GET /auth/sessions``: one page of the context's authentication sessions."""
        headers = {"x-continuation-token": continuation_token} if continuation_token else {}
        data = self._json(
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
                    start_date=parse_datetime(item["startDate"]),
                    authentication_method=item["authenticationMethod"],
                    method_info=AuthMethodInfo(info["category"], info["code"], info["displayName"]),
                    status=Status.from_json(item["status"]),
                    is_current=bool(item.get("isCurrent")),
                    is_token_redeemed=item.get("isTokenRedeemed"),
                    refresh_token_valid_until=_opt_datetime(item.get("refreshTokenValidUntil")),
                )
            )
        return SessionsPage(tuple(items), data.get("continuationToken") or None)

    def revoke_current(self) -> None:
        """``DELETE /auth/sessions/current``: end this session (its refresh token stops working)."""
        self._json(
            "DELETE", "/auth/sessions/current", idempotent=True, expected=(204,), auth=self._access_auth()
        )
        self.tokens = None

    def revoke_session(self, reference: str) -> None:
        """``DELETE /auth/sessions/{referenceNumber}``: end another session of the context."""
        self._json(
            "DELETE",
            f"/auth/sessions/{_path(reference)}",
            idempotent=True,
            expected=(204,),
            auth=self._access_auth(),
        )

    # -- certificates ---------------------------------------------------------------------------

    def limits(self) -> CertificateLimits:
        """``GET /certificates/limits``: what the authenticated subject may still request."""
        data = self._json("GET", "/certificates/limits", idempotent=True, auth=self._access_auth())
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
            self._json("GET", "/certificates/enrollments/data", idempotent=True, auth=self._access_auth())
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
        data = self._json(
            "POST",
            "/certificates/enrollments",
            idempotent=False,
            expected=(202,),
            json=body,
            auth=self._access_auth(),
        )
        return EnrollmentAccepted(data["referenceNumber"], parse_datetime(data["timestamp"]))

    def enrollment_status(self, reference: str) -> EnrollmentStatus:
        """``GET /certificates/enrollments/{referenceNumber}``."""
        data = self._json(
            "GET", f"/certificates/enrollments/{_path(reference)}", idempotent=True, auth=self._access_auth()
        )
        return EnrollmentStatus(
            parse_datetime(data["requestDate"]),
            Status.from_json(data["status"]),
            data.get("certificateSerialNumber"),
        )

    def retrieve(self, serial_numbers: Iterable[str]) -> tuple[RetrievedCertificate, ...]:
        """``POST /certificates/retrieve``: download certificates (DER leaves) by serial number."""
        body = {"certificateSerialNumbers": list(serial_numbers)}
        data = self._json(
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
        data = self._json(
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
                    valid_from=parse_datetime(c["validFrom"]),
                    valid_to=parse_datetime(c["validTo"]),
                    last_use_date=_opt_datetime(c.get("lastUseDate")),
                    request_date=parse_datetime(c["requestDate"]),
                )
                for c in data["certificates"]
            ),
            bool(data["hasMore"]),
        )

    query = query_certificates

    def revoke_certificate(self, serial_number: str, *, reason: str | None = None) -> None:
        """``POST /certificates/{serial}/revoke`` (final): reason Unspecified, Superseded or KeyCompromise."""
        body = {"revocationReason": reason} if reason else {}
        self._json(
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
        data = self._json(
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
        data = self._json(
            "GET", f"/permissions/operations/{_path(reference)}", idempotent=True, auth=self._access_auth()
        )
        return OperationStatus(Status.from_json(data["status"]))

    def query_entity_grants(
        self, *, grantor_nip: str | None = None, page_size: int = 10, page_offset: int = 0
    ) -> EntityGrantsPage:
        """``POST /permissions/query/entities/grants``: what other entities granted the current context."""
        body = {"contextIdentifier": {"type": "Nip", "value": grantor_nip}} if grantor_nip else {}
        data = self._json(
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
                    start_date=parse_datetime(p["startDate"]),
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
        data = self._json(
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
                    start_date=parse_datetime(p["startDate"]),
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
        data = self._json(
            "DELETE",
            f"/permissions/common/grants/{_path(permission_id)}",
            idempotent=True,
            expected=(202,),
            auth=self._access_auth(),
        )
        return OperationAccepted(data["referenceNumber"])

    # -- security, Latarnia ---------------------------------------------------------------------

    def public_key_certificates(self) -> tuple[PublicKeyCertificate, ...]:
        """``GET /security/public-key-certificates``: the Ministry's encryption certificates."""
        data = self._json("GET", "/security/public-key-certificates", idempotent=True)
        return tuple(
            PublicKeyCertificate(
                certificate_der=base64.b64decode(item["certificate"]),
                certificate_id=item["certificateId"],
                public_key_id=item["publicKeyId"],
                valid_from=parse_datetime(item["validFrom"]),
                valid_to=parse_datetime(item["validTo"]),
                usage=tuple(item["usage"]),
            )
            for item in data
        )

    def _latarnia(self, path: str) -> Any:
        if not self.latarnia_url:
            raise KsefError(
                "Dla tego środowiska KSeF nie ma usługi Latarnia (komunikatów o dostępności).",
                "This KSeF environment has no Latarnia (availability) service.",
                code="ksef_latarnia_missing",
            )
        response = self._request("GET", f"{self.latarnia_url}{path}", idempotent=True, expected=(200,))
        return response.json()

    def availability_status(self) -> Availability:
        """Latarnia ``GET /status``: is KSeF available, and the current notices."""
        data = self._latarnia("/status")
        return Availability(
            status=data["status"],
            messages=tuple(AvailabilityMessage.from_json(m) for m in data.get("messages") or ()),
        )

    def availability_messages(self) -> tuple[AvailabilityMessage, ...]:
        """Latarnia ``GET /messages``: the current failure and maintenance notices."""
        data = self._latarnia("/messages")
        return tuple(AvailabilityMessage.from_json(m) for m in data)

    # -- TEST environment helpers -----------------------------------------------------------------

    def testdata_person(
        self,
        *,
        nip: str,
        pesel: str,
        description: str = "Osoba testowa",
        is_bailiff: bool = False,
        is_deceased: bool = False,
    ) -> None:
        """TEST only: ``POST /testdata/person`` links a PESEL to a NIP as its owner."""
        body = {
            "nip": nip,
            "pesel": pesel,
            "isBailiff": is_bailiff,
            "description": description,
            "isDeceased": is_deceased,
        }
        self._json("POST", "/testdata/person", idempotent=False, json=body)

    def testdata_remove_person(self, *, nip: str) -> None:
        """TEST only: ``POST /testdata/person/remove``."""
        self._json("POST", "/testdata/person/remove", idempotent=True, json={"nip": nip})

    def testdata_grant(
        self,
        *,
        context_nip: str,
        identifier_type: str,
        identifier: str,
        permissions: Iterable[str],
        description: str = "Uprawnienie testowe",
    ) -> None:
        """TEST only: ``POST /testdata/permissions`` (simulates a paper ZAW-FA grant)."""
        body = {
            "contextIdentifier": {"type": "Nip", "value": context_nip},
            "authorizedIdentifier": {"type": identifier_type, "value": identifier},
            "permissions": [{"description": description, "permissionType": p} for p in permissions],
        }
        self._json("POST", "/testdata/permissions", idempotent=False, json=body)

    def testdata_revoke(self, *, context_nip: str, identifier_type: str, identifier: str) -> None:
        """TEST only: ``POST /testdata/permissions/revoke``."""
        body = {
            "contextIdentifier": {"type": "Nip", "value": context_nip},
            "authorizedIdentifier": {"type": identifier_type, "value": identifier},
        }
        self._json("POST", "/testdata/permissions/revoke", idempotent=True, json=body)
