"""KSeF's status codes in plain words: the one table the portal uses to explain them.

Asynchronous KSeF operations report a ``status`` with a numeric code: an authentication
(``GET /auth/{referenceNumber}``: 100 in progress, 200 done, 4xx/5xx refused) and a permission or
certificate operation (100, 200, 400, 420, 500, 550). Every page, log entry and error that explains such a
code takes its words from here, so the same code always reads the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from klucznik.text import Text


@dataclass(frozen=True)
class Explanation:
    """What a KSeF authentication status code means for the user, and whether it is final."""

    code: int
    final: bool
    ok: bool
    text: Text
    ksef_description: str = ""

    @property
    def message_pl(self) -> str:
        return self.text.pl

    @property
    def message_en(self) -> str:
        return self.text.en

    def message(self, lang: str) -> str:
        """The message in ``lang`` ("pl" or "en")."""
        return self.text.get(lang)


_AUTH_EXPLANATIONS: Mapping[int, Text] = {
    100: Text(
        "KSeF sprawdza podpis i uprawnienia. Przy podpisie kwalifikowanym może to potrwać kilka minut, bo KSeF "
        "pyta wystawcę certyfikatu o jego ważność.",
        "KSeF is checking the signature and permissions. With a qualified signature this can take a few "
        "minutes, because KSeF asks the certificate's issuer whether it is valid.",
    ),
    200: Text("Uwierzytelnienie w KSeF zakończone sukcesem.", "KSeF authentication succeeded."),
    415: Text(
        "Podpisujący nie ma w KSeF uprawnień do tej firmy. Poproś właściciela o nadanie uprawnień albo niech "
        "plik podpisze właściciel firmy (lub jej pieczęć).",
        "The signer has no KSeF permissions for this company. Ask the owner to grant them, or have the file "
        "signed by the owner (or the company's seal).",
    ),
    425: Text(
        "To uwierzytelnienie zostało unieważnione (np. wylogowano sesję). Pobierz nowy plik i podpisz go ponownie.",
        "This authentication was revoked (e.g. the session was logged out). Download a new file and sign it "
        "again.",
    ),
    450: Text(
        "KSeF odrzucił plik: wyzwanie jest nieprawidłowe, już użyte albo wygasło. Pobierz nowy plik, podpisz go "
        "od razu i wgraj.",
        "KSeF refused the file: the challenge is invalid, already used or expired. Download a new file, sign "
        "it right away and upload it.",
    ),
    460: Text(
        "Certyfikat użyty do podpisu jest nieważny ({detail}). Podpisz plik ważnym podpisem kwalifikowanym "
        "albo pieczęcią kwalifikowaną.",
        "The signing certificate is not valid ({detail}). Sign the file with a valid qualified signature or "
        "qualified seal.",
    ),
    470: Text(
        "KSeF odmówił: próba użycia danych osoby zmarłej. Plik musi podpisać inna osoba uprawniona.",
        "KSeF refused: the credentials of a deceased person were used. Another authorized person must sign.",
    ),
    480: Text(
        "KSeF zablokował logowanie w tej firmie (podejrzenie incydentu bezpieczeństwa). Skontaktuj się z "
        "Ministerstwem Finansów przez formularz zgłoszeniowy.",
        "KSeF blocked logins for this company (suspected security incident). Contact the Ministry of "
        "Finance through its contact form.",
    ),
    500: Text(
        "KSeF zgłosił nieznany błąd. Spróbuj ponownie za kilka minut z nowym plikiem.",
        "KSeF reported an unknown error. Try again in a few minutes with a new file.",
    ),
    550: Text(
        "KSeF przerwał operację z przyczyn wewnętrznych. Pobierz nowy plik i spróbuj ponownie.",
        "KSeF cancelled the operation for internal reasons. Download a new file and try again.",
    ),
}
#: Every authentication status code KSeF documents for ``GET /auth/{referenceNumber}``.
AUTH_STATUS_CODES = tuple(sorted(_AUTH_EXPLANATIONS))


def explain_auth_status(code: int, description: str = "", details: tuple[str, ...] = ()) -> Explanation:
    """The user's explanation of an authentication status code (any unknown code ≥ 400 is a failure)."""
    text = _AUTH_EXPLANATIONS.get(code, _AUTH_EXPLANATIONS[500])
    detail = "; ".join(details) or description or "-"
    return Explanation(
        code=code,
        final=code != 100,
        ok=code == 200,
        text=text.format(detail=detail),
        ksef_description=description,
    )


_OPERATION_EXPLANATIONS: Mapping[int, Text] = {
    100: Text("KSeF przyjął operację i ją wykonuje.", "KSeF accepted the operation and is working on it."),
    200: Text("Operacja w KSeF zakończona sukcesem.", "The KSeF operation succeeded."),
    400: Text("KSeF odrzucił operację.", "KSeF refused the operation."),
    420: Text(
        "Osoba, która podpisała plik, nie może nadawać uprawnień w tej firmie (potrzebne uprawnienie do "
        "zarządzania uprawnieniami lub właściciel).",
        "The person who signed may not grant permissions in this company (the credentials-management "
        "permission or the owner is needed).",
    ),
    500: Text(
        "KSeF zgłosił nieznany błąd. Spróbuj ponownie za kilka minut.",
        "KSeF reported an unknown error. Try again in a few minutes.",
    ),
    550: Text(
        "KSeF przerwał operację z przyczyn wewnętrznych. Spróbuj ponownie.",
        "KSeF cancelled the operation for internal reasons. Try again.",
    ),
}


def explain_operation_status(code: int, description: str = "", details: tuple[str, ...] = ()) -> Explanation:
    """The explanation of a permission/enrollment operation status (100 = in progress, 200 = done)."""
    text = _OPERATION_EXPLANATIONS.get(code, _OPERATION_EXPLANATIONS[400])
    if code not in _OPERATION_EXPLANATIONS and description:
        text = text + f"KSeF: {description}"
    if details and code >= 400:
        text = text + f"({'; '.join(details)})"
    return Explanation(code=code, final=code != 100, ok=code == 200, text=text, ksef_description=description)
