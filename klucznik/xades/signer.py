"""Who signed a login file, from what the signature itself says: a company's seal, a person, or Profil Zaufany.

A qualified certificate names its holder in its subject. Profil Zaufany is different: every document is
sealed by the Ministry's one seal, and the person is named in a *signed* claimed role (``EPSignature`` or
the older ``PodpisZP``); that role is believed only under the Ministry's seal (or when it names the same
PESEL as the certificate), since anyone can write a claimed role into their own signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import replace

from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

from klucznik import ids
from klucznik.xades.names import NS_OSOBA
from klucznik.xades.names import NS_PPZP
from klucznik.xades.names import NS_PZ
from klucznik.xades.names import NS_XADES
from klucznik.xades.names import q
from klucznik.xades.parse import text_of


@dataclass(frozen=True)
class Signer:
    """Who signed, as far as the signed data says: a company's seal, a person, or Profil Zaufany."""

    kind: str  # "seal" | "person" | "trusted_profile"
    nip: str | None = None
    pesel: str | None = None
    pesel_masked: str | None = None
    name: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The public JSON shape (no full PESEL): kind plus the fields that are known."""
        data = {"kind": self.kind}
        for key in ("nip", "pesel_masked", "name"):
            value = getattr(self, key)
            if value:
                data[key] = value
        return data


def signer_from_claimed_role(signed_properties: etree._Element | None) -> Signer | None:
    """Profil Zaufany: the person is in the signed ClaimedRole (EPSignature, or the older PodpisZP)."""
    if signed_properties is None:
        return None
    ep = signed_properties.find(f".//{q(NS_XADES, 'ClaimedRole')}/{q(NS_PZ, 'EPSignature')}")
    if ep is not None:
        person = ep.find(q(NS_PZ, "NaturalPerson"))
        first = text_of(person.find(q(NS_PZ, "FirstName"))) if person is not None else None
        last = text_of(person.find(q(NS_PZ, "CurrentFamilyName"))) if person is not None else None
        pesel = text_of(person.find(q(NS_PZ, "PersonalIdentifier"))) if person is not None else None
        return _person("trusted_profile", first, last, pesel)
    zp = signed_properties.find(f".//{q(NS_XADES, 'ClaimedRole')}/{q(NS_PPZP, 'PodpisZP')}")
    if zp is not None:
        person = zp.find(f".//{q(NS_PPZP, 'DaneZPOsobyFizycznej')}")
        first = text_of(person.find(q(NS_OSOBA, "Imie"))) if person is not None else None
        last = text_of(person.find(q(NS_OSOBA, "Nazwisko"))) if person is not None else None
        pesel = text_of(person.find(q(NS_OSOBA, "PESEL"))) if person is not None else None
        return _person("trusted_profile", first, last, pesel)
    return None


def _person(
    kind: str, first: str | None, last: str | None, pesel: str | None, nip: str | None = None
) -> Signer:
    name = " ".join(p.strip() for p in (first, last) if p and p.strip()) or None
    pesel = (pesel or "").strip() or None
    if pesel and not (pesel.isdigit() and len(pesel) == 11):
        pesel = None
    return Signer(
        kind=kind, nip=nip, pesel=pesel, pesel_masked=ids.mask_pesel(pesel) if pesel else None, name=name
    )


_PESEL_RE = re.compile(r"(?:PNOPL|PESEL).*?(\d{11})")
_NIP_PERSON_RE = re.compile(r"(?:TINPL|NIP).*?(\d{10})")
_VATPL_RE = re.compile(r"VATPL.*?(\d{10})")


#: The NIP of the Ministry whose qualified seal signs every Profil Zaufany document.
TRUSTED_PROFILE_SEAL_NIP = "5252955037"


def is_trusted_profile_seal(cert: x509.Certificate) -> bool:
    """True for the seal gov.pl applies to Profil Zaufany signatures (the only signer whose claimed role counts).

    Anyone can write a claimed role into their own signature; believing it from an ordinary seal would let
    a company's seal pose as a person. Only the Ministry's Profil Zaufany seal vouches for it.
    """
    org_id = ids.first_attribute(cert.subject, NameOID.ORGANIZATION_IDENTIFIER) or ""
    common = (ids.first_attribute(cert.subject, NameOID.COMMON_NAME) or "").lower()
    return (
        org_id.endswith(TRUSTED_PROFILE_SEAL_NIP)
        or "podpisu zaufanego" in common
        or "podpis zaufany" in common
    )


def signer_from_certificate(cert: x509.Certificate) -> Signer:
    """A qualified certificate's subject: seal (organizationIdentifier VATPL-…) or person (serialNumber …)."""
    subject = cert.subject
    given = ids.first_attribute(subject, NameOID.GIVEN_NAME)
    surname = ids.first_attribute(subject, NameOID.SURNAME)
    serial = ids.first_attribute(subject, NameOID.SERIAL_NUMBER) or ""
    org_id = ids.first_attribute(subject, NameOID.ORGANIZATION_IDENTIFIER) or ""
    common = ids.first_attribute(subject, NameOID.COMMON_NAME)
    org = ids.first_attribute(subject, NameOID.ORGANIZATION_NAME)
    if not given and not surname:
        # a seal: NIP in organizationIdentifier (VATPL-…), or, in older seals, in serialNumber with an O=
        if m := _VATPL_RE.search(org_id):
            return Signer(kind="seal", nip=m.group(1), name=org or common)
        if org and (m := _VATPL_RE.search(serial) or _NIP_PERSON_RE.search(serial)):
            return Signer(kind="seal", nip=m.group(1), name=org)
    pesel = m.group(1) if (m := _PESEL_RE.search(serial)) else None
    nip = m.group(1) if (m := _NIP_PERSON_RE.search(serial)) else None
    signer = _person("person", given, surname, pesel, nip)
    if signer.name is None and common:
        signer = replace(signer, name=common)
    return signer
