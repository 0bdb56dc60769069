"""NIP (Polish tax identification number): normalise, validate, format."""

from __future__ import annotations

from stdnum.pl import nip as stdnum_nip

from klucznik.errors import ValidationError


def normalize(value: str) -> str:
    """Return the 10 digits of ``value`` or raise :class:`ValidationError` with a plain message.

    Accepts spaces, dashes and a leading ``PL``; refuses a wrong checksum and ``0000000000``
    (which passes the checksum but is no one's NIP).
    """
    compact = stdnum_nip.compact(value or "")
    if compact.upper().startswith("PL"):
        compact = compact[2:]
    if not compact:
        raise ValidationError("Wpisz NIP firmy (10 cyfr).", "Enter the company's NIP (10 digits).", field="nip",
                              code="nip_invalid")
    if not compact.isdigit() or len(compact) != 10:
        raise ValidationError(
            "NIP ma 10 cyfr; sprawdź, czy nie brakuje cyfry lub nie wpisano liter.",
            "A NIP has 10 digits; check for a missing digit or letters.", field="nip", code="nip_invalid")
    if compact == "0000000000" or not stdnum_nip.is_valid(compact):
        raise ValidationError(
            "Ten NIP ma błędną cyfrę kontrolną: sprawdź go z dokumentem firmy.",
            "This NIP's check digit is wrong: compare it with the company's documents.", field="nip",
            code="nip_invalid")
    return compact


def is_valid(value: str) -> bool:
    """True when ``value`` is a valid NIP."""
    try:
        normalize(value)
    except ValidationError:
        return False
    return True


def format_nip(value: str) -> str:
    """``1234563218`` → ``123-456-32-18`` (the usual written form)."""
    v = value or ""
    if len(v) != 10:
        return v
    return f"{v[0:3]}-{v[3:6]}-{v[6:8]}-{v[8:10]}"
