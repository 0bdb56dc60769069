"""Who is who: NIP and PESEL numbers, and the identity an X.509 name carries for KSeF.

A company is a NIP (10 digits with a check digit); a person a PESEL (11 digits, shown masked because it
encodes the birth date). KSeF certificates and qualified certificates carry them in their subject:
``organizationIdentifier`` ``VATPL-…`` for a company seal, ``serialNumber`` ``TINPL-…``/``NIP-…`` or
``PNOPL-…``/``PESEL-…`` for a person. These rules are shared by the certificate checks, the signed-XML
check and the records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID
from stdnum.pl import nip as stdnum_nip

from klucznik.errors import ValidationError
from klucznik.text import Text

# -- NIP --------------------------------------------------------------------------------------------------

#: A NIP field longer than this is not a NIP with separators (``PL 123-456-32-18`` has 16 characters).
MAX_NIP_INPUT = 32


def normalize_nip(value: str) -> str:
    """Return the 10 digits of ``value`` or raise :class:`ValidationError` with a plain message.

    Accepts spaces, dashes and a leading ``PL``; refuses a wrong checksum and ``0000000000``
    (which passes the checksum but is no one's NIP).
    """
    if len(value or "") > MAX_NIP_INPUT:
        raise ValidationError(
            Text(
                "NIP ma 10 cyfr; w tym polu jest o wiele więcej znaków. Wpisz sam NIP, np. 123-456-32-18.",
                "A NIP has 10 digits; this field holds far more characters. Enter the NIP alone, e.g. 123-456-32-18.",
            ),
            field="nip",
            code="nip_invalid",
        )
    if any(ch.isdigit() and not ("0" <= ch <= "9") for ch in value or ""):
        raise ValidationError(
            Text(
                "NIP może zawierać tylko cyfry 0–9 (oraz spacje lub myślniki): w polu są cyfry innego "
                "rodzaju, np. skopiowane z dokumentu. Wpisz NIP ponownie z klawiatury.",
                "A NIP can contain only the digits 0–9 (and spaces or dashes): the field holds digits of "
                "another kind, e.g. copied from a document. Type the NIP again on the keyboard.",
            ),
            field="nip",
            code="nip_invalid",
        )
    compact = stdnum_nip.compact(value or "")
    if compact.upper().startswith("PL"):
        compact = compact[2:]
    if not compact:
        raise ValidationError(
            Text("Wpisz NIP firmy (10 cyfr).", "Enter the company's NIP (10 digits)."),
            field="nip",
            code="nip_invalid",
        )
    if not compact.isdigit() or len(compact) != 10:
        raise ValidationError(
            Text(
                "NIP ma 10 cyfr; sprawdź, czy nie brakuje cyfry lub nie wpisano liter.",
                "A NIP has 10 digits; check for a missing digit or letters.",
            ),
            field="nip",
            code="nip_invalid",
        )
    if compact == "0000000000" or not stdnum_nip.is_valid(compact):
        raise ValidationError(
            Text(
                "Ten NIP ma błędną cyfrę kontrolną: sprawdź go z dokumentem firmy.",
                "This NIP's check digit is wrong: compare it with the company's documents.",
            ),
            field="nip",
            code="nip_invalid",
        )
    return compact


def is_valid_nip(value: str) -> bool:
    """True when ``value`` is a valid NIP."""
    try:
        normalize_nip(value)
    except ValidationError:
        return False
    return True


def format_nip(value: str) -> str:
    """``1234563218`` → ``123-456-32-18`` (the usual written form)."""
    v = value or ""
    if len(v) != 10:
        return v
    return f"{v[0:3]}-{v[3:6]}-{v[6:8]}-{v[8:10]}"


# -- PESEL ------------------------------------------------------------------------------------------------


def mask_pesel(pesel: str) -> str:
    """``85010112345`` → ``*******2345``: enough to recognise, not enough to reuse (the birth date is hidden)."""
    return "*" * (len(pesel) - 4) + pesel[-4:]


# -- X.509 names ------------------------------------------------------------------------------------------

_NIP_PATTERN = re.compile(r"^(?:TINPL|NIP|VATPL)[-:]?(\d{10})$", re.IGNORECASE)
_PESEL_PATTERN = re.compile(r"^(?:PNOPL|PESEL)[-:]?(\d{11})$", re.IGNORECASE)


@dataclass(frozen=True)
class Identity:
    """Whom a certificate identifies in KSeF: a NIP or a PESEL (``shown`` is masked for a PESEL)."""

    type: str
    value: str
    shown: str

    def as_dict(self) -> dict[str, str]:
        """The CLI/JSON form; a PESEL is always masked."""
        return {"type": self.type, "value": self.shown}


def attribute_values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    """Every string value of ``oid`` in ``name``."""
    return [str(attr.value).strip() for attr in name.get_attributes_for_oid(oid)]


def first_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    """The first value of ``oid`` in ``name`` or ``None``."""
    values = attribute_values(name, oid)
    return values[0] if values else None


def identity_of(subject: x509.Name) -> Identity | None:
    """NIP (organizationIdentifier VATPL-, serialNumber TINPL-/NIP-) or PESEL (PNOPL-/PESEL-) of a subject."""
    for value in attribute_values(subject, NameOID.ORGANIZATION_IDENTIFIER):
        match = _NIP_PATTERN.match(value) or re.fullmatch(r"(\d{10})", value)
        if match:
            return Identity("NIP", match.group(1), match.group(1))
    for value in attribute_values(subject, NameOID.SERIAL_NUMBER):
        match = _NIP_PATTERN.match(value) or re.fullmatch(r"(\d{10})", value)
        if match:
            return Identity("NIP", match.group(1), match.group(1))
        match = _PESEL_PATTERN.match(value) or re.fullmatch(r"(\d{11})", value)
        if match:
            return Identity("PESEL", match.group(1), mask_pesel(match.group(1)))
    return None
