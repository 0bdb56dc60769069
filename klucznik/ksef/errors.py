"""KSeF's errors in plain words: one exception type for every failure, from either of KSeF's error formats.

KSeF answers errors in a legacy JSON shape (``ExceptionResponse``) or as ``application/problem+json``; 429
has its own shape, and a 403 carries a ``reasonCode``. :func:`error_from_response` reads all of them into
one :class:`KsefError` with the HTTP status, KSeF's codes and texts, and a :class:`~klucznik.text.Text`
written for accountants: by KSeF code first, then by reason, then by HTTP status.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime

import requests

from klucznik.errors import PortalError
from klucznik.text import Text

#: KSeF exception codes, for accountants: what happened, what to do.
_CODE_MESSAGES: Mapping[int, Text] = {
    9101: Text(
        "KSeF nie rozpoznał przesłanego pliku jako poprawnego dokumentu XML. Pobierz plik z portalu "
        "jeszcze raz, podpisz go bez otwierania i edycji, i wgraj ponownie.",
        "KSeF did not accept the file as a valid XML document. Download the file from the portal again, "
        "sign it without opening or editing it, and upload it again.",
    ),
    9102: Text(
        "Plik nie zawiera podpisu. Podpisz plik podpisem kwalifikowanym albo pieczęcią kwalifikowaną "
        "i wgraj podpisany plik.",
        "The file carries no signature. Sign it with a qualified signature or a qualified seal and upload the "
        "signed file.",
    ),
    9103: Text(
        "Plik ma więcej niż jeden podpis. Podpisz oryginalny plik tylko raz.",
        "The file has more than one signature. Sign the original file only once.",
    ),
    9105: Text(
        "KSeF odrzucił podpis (podpis nieprawidłowy lub w formacie, którego KSeF nie przyjmuje). Podpisz "
        "plik ponownie podpisem otaczanym lub otaczającym (XAdES), nie „zewnętrznym”.",
        "KSeF rejected the signature (invalid, or in a format KSeF does not accept). Sign the file again "
        "with an enveloped or enveloping XAdES signature, not a detached one.",
    ),
    21001: Text(
        "KSeF nie mógł odczytać pliku. Wgraj plik dokładnie taki, jaki zwrócił program do podpisu.",
        "KSeF could not read the file. Upload the file exactly as the signing software saved it.",
    ),
    21111: Text(
        "Wyzwanie autoryzacyjne jest nieprawidłowe albo wygasło (ważne 10 minut). Wygeneruj nowy plik "
        "w portalu, podpisz go i wgraj w ciągu 10 minut.",
        "The authorisation challenge is invalid or expired (it lasts 10 minutes). Generate a new file in "
        "the portal, sign it and upload it within 10 minutes.",
    ),
    21115: Text(
        "KSeF nie przyjął certyfikatu użytego do podpisu. Użyj ważnego certyfikatu kwalifikowanego, "
        "pieczęci kwalifikowanej.",
        "KSeF did not accept the certificate used to sign. Use a valid qualified certificate or qualified "
        "seal.",
    ),
    21117: Text(
        "Identyfikator firmy w pliku nie pasuje do rodzaju kontekstu. Wygeneruj plik ponownie w portalu.",
        "The company identifier in the file does not match the context type. Generate the file again.",
    ),
    21217: Text(
        "KSeF nie odczytał znaków w pliku (kodowanie). Wgraj plik bez otwierania go i zapisywania na nowo.",
        "KSeF could not read the characters in the file (encoding). Upload the file without re-saving it.",
    ),
    21301: Text(
        "KSeF nie wydał tokenów tej sesji (już zostały pobrane albo sesja została unieważniona). "
        "Uwierzytelnij się ponownie.",
        "KSeF did not issue tokens for this session (already collected, or the session was revoked). "
        "Authenticate again.",
    ),
    21304: Text(
        "KSeF nie zna tej operacji uwierzytelniania. Rozpocznij uwierzytelnianie od nowa.",
        "KSeF does not know this authentication. Start authenticating again.",
    ),
    21308: Text(
        "KSeF zablokował uwierzytelnianie danymi osoby zmarłej.",
        "KSeF blocked authentication with the credentials of a deceased person.",
    ),
    21401: Text(
        "Plik nie jest zgodny ze schematem KSeF. Wygeneruj plik ponownie w portalu i nie zmieniaj go przed "
        "podpisaniem.",
        "The file does not match KSeF's schema. Generate it again in the portal and do not change it before "
        "signing.",
    ),
    21405: Text(
        "KSeF odrzucił dane żądania jako niepoprawne. Sprawdź wpisane dane i spróbuj ponownie.",
        "KSeF rejected the request data as invalid. Check what was entered and try again.",
    ),
    21406: Text(
        "Rodzaj podpisu nie pasuje do sposobu uwierzytelnienia wskazanego w pliku.",
        "The kind of signature does not match the authentication type named in the file.",
    ),
    21418: Text(
        "KSeF nie przyjął znacznika kolejnej strony listy. Odśwież listę od początku.",
        "KSeF did not accept the next-page marker. Reload the list from the start.",
    ),
    25001: Text(
        "Po tym sposobie logowania KSeF nie wydaje danych do certyfikatu. Uwierzytelnij się podpisem "
        "kwalifikowanym albo pieczęcią kwalifikowaną.",
        "KSeF does not give certificate data after this kind of login. Authenticate with a qualified "
        "signature or a qualified seal.",
    ),
    25002: Text(
        "Po tym sposobie logowania nie można wnioskować o certyfikat KSeF. Uwierzytelnij się podpisem "
        "kwalifikowanym albo pieczęcią kwalifikowaną.",
        "A KSeF certificate cannot be requested after this kind of login. Authenticate with a qualified "
        "signature or a qualified seal.",
    ),
    25003: Text(
        "Dane we wniosku o certyfikat nie zgadzają się z danymi osoby lub firmy, która się "
        "uwierzytelniła. Wniosek musi zawierać dokładnie dane podane przez KSeF.",
        "The data in the certificate request do not match the person or company that authenticated. The "
        "request must contain exactly the data KSeF provided.",
    ),
    25004: Text(
        "Wniosek o certyfikat (CSR) jest uszkodzony albo źle podpisany. Wygeneruj go ponownie.",
        "The certificate request (CSR) is damaged or badly signed. Generate it again.",
    ),
    25005: Text("KSeF nie zna tego wniosku o certyfikat.", "KSeF does not know this certificate request."),
    25006: Text(
        "Wyczerpano limit wniosków o certyfikaty KSeF dla tej osoby lub firmy.",
        "The limit of KSeF certificate requests for this person or company has been reached.",
    ),
    25007: Text(
        "Osiągnięto limit aktywnych certyfikatów KSeF. Unieważnij niepotrzebny certyfikat i spróbuj ponownie.",
        "The limit of active KSeF certificates has been reached. Revoke one you no longer need and retry.",
    ),
    25008: Text(
        "KSeF nie zna certyfikatu o tym numerze seryjnym.",
        "KSeF does not know a certificate with this serial number.",
    ),
    25009: Text(
        "Tego certyfikatu nie można unieważnić: jest już unieważniony, zablokowany lub wygasł.",
        "This certificate cannot be revoked: it is already revoked, blocked or expired.",
    ),
    25010: Text(
        "KSeF nie przyjmuje takiego klucza: potrzebny jest EC P-256 albo RSA 2048 bitów.",
        "KSeF does not accept this key: it needs EC P-256 or RSA with 2048 bits.",
    ),
    25011: Text(
        "KSeF nie przyjmuje algorytmu podpisu wniosku o certyfikat.",
        "KSeF does not accept the signature algorithm of the certificate request.",
    ),
    30001: Text(
        "Ten podmiot lub uprawnienie już istnieje w środowisku testowym.",
        "This subject or permission already exists in the test environment.",
    ),
}

_HTTP_MESSAGES: Mapping[int, Text] = {
    400: Text("KSeF odrzucił żądanie.", "KSeF rejected the request."),
    401: Text(
        "KSeF nie rozpoznał logowania (token wygasł lub jest nieprawidłowy). Uwierzytelnij się ponownie.",
        "KSeF did not recognise the login (the token expired or is invalid). Authenticate again.",
    ),
    403: Text(
        "Brak uprawnień w KSeF do tej operacji w bieżącym kontekście. Poproś właściciela firmy o nadanie "
        "uprawnień.",
        "No KSeF permission for this operation in the current context. Ask the company's owner to grant it.",
    ),
    404: Text(
        "KSeF nie zna tego adresu. Sprawdź adres środowiska KSeF w ustawieniach biura.",
        "KSeF does not know this address. Check the KSeF environment address in the office settings.",
    ),
    410: Text(
        "Wynik tej operacji nie jest już dostępny w KSeF (minął okres przechowywania). Rozpocznij od nowa.",
        "The result of this operation is no longer kept by KSeF. Start again.",
    ),
    415: Text(
        "KSeF nie przyjął formatu przesłanych danych.", "KSeF did not accept the format of the data sent."
    ),
    429: Text(
        "KSeF ogranicza liczbę żądań. Odczekaj chwilę i spróbuj ponownie.",
        "KSeF is limiting the number of requests. Wait a moment and try again.",
    ),
}

# 403 reasonCode -> (Polish, English)
_REASON_MESSAGES: Mapping[str, Text] = {
    "ip-not-allowed": Text(
        "KSeF odrzucił żądanie, bo przyszło z innego adresu IP niż dozwolony przy logowaniu. Uwierzytelnij się "
        "ponownie z tego adresu albo popraw listę dozwolonych adresów.",
        "KSeF refused the request because it came from an IP address the login did not allow. Authenticate "
        "again from this address or correct the list of allowed addresses.",
    ),
    "auth-method-not-allowed": Text(
        "Tej operacji nie można wykonać po takim sposobie logowania do KSeF. Uwierzytelnij się podpisem "
        "kwalifikowanym albo pieczęcią kwalifikowaną.",
        "This operation is not available after this kind of KSeF login. Authenticate with a qualified "
        "signature or a qualified seal.",
    ),
    "security-service-blocked": Text(
        "KSeF zablokował żądanie (mechanizmy bezpieczeństwa). Skontaktuj się z Ministerstwem Finansów.",
        "KSeF's security mechanisms blocked the request. Contact the Ministry of Finance.",
    ),
}

_SERVER_MESSAGE = Text(
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
        text: Text,
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
        super().__init__(text, code=code)
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


def _text_for(http_status: int | None, codes: tuple[int, ...], descriptions: tuple[str, ...]) -> Text:
    """Plain Polish and English texts for an error: by KSeF code first, then by HTTP status."""
    for c in codes:
        if c in _CODE_MESSAGES:
            return _CODE_MESSAGES[c]
    if http_status is not None and http_status >= 500:
        return _SERVER_MESSAGE
    text = _HTTP_MESSAGES.get(http_status or 0, _HTTP_MESSAGES[400])
    return text + f"KSeF: {descriptions[0]}" if descriptions else text


def explain(http_status: int | None, codes: Iterable[int] = ()) -> Text:
    """What an error KSeF answered means and what to do, from the one table above (by code, then HTTP status).

    Pages that list errors recorded earlier (the status page's "KSeF errors") use it, so a recorded error
    reads exactly like the one shown when it happened.
    """
    return _text_for(http_status, tuple(codes), ())


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
    text = _REASON_MESSAGES.get(reason_code or "") or _text_for(status, tuple(codes), tuple(descriptions))
    code = f"ksef_{codes[0]}" if codes else f"ksef_http_{status}"
    return KsefError(
        text,
        code=code,
        http_status=status,
        codes=codes,
        descriptions=descriptions,
        details=details,
        reason_code=reason_code,
        trace_id=trace_id,
        retry_after=retry_after_seconds(response),
    )


def retry_after_seconds(response: requests.Response) -> float | None:
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
