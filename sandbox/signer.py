"""Sign files the way the tools accountants use do: a qualified-signature tool, or Profil Zaufany on gov.pl.

The sandbox (``klucznik sandbox sign``) and the tests need realistic signed ``AuthTokenRequest`` files
without a real qualified certificate or a gov.pl account. The XAdES work is done by
:func:`klucznik.xades.sign_xades` (libxmlsec1); this module only chooses the shape:

* ``enveloped``: what KSeF's own clients emit (enveloped-signature transform, exclusive c14n);
* ``enveloping``: the file inside ``ds:Object`` of a ``ds:Signature`` root ("podpis otaczający");
* ``profil-zaufany``: the structure of a gov.pl Profil Zaufany signature (docs/SIGNED-XML.md): the XPath
  transform ``not(ancestor-or-self::ds:Signature)`` instead of enveloped-signature, and the person's given
  name, surname and PESEL in a signed ``ClaimedRole`` (``pz:EPSignature``, or the older ``ppZP:PodpisZP``).
  Real Profil Zaufany files are sealed with the Ministry's certificate, shared by every user; the person
  is known only from the claimed role, so that is where the portal must read it from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

from klucznik.text import Text
from klucznik.xades.messages import XadesError
from klucznik.xades.names import NS_OSOBA
from klucznik.xades.names import NS_PPZP
from klucznik.xades.names import NS_PZ
from klucznik.xades.sign import SigningOptions
from klucznik.xades.sign import sign_xades

STYLES = ("enveloped", "enveloping", "profil-zaufany")


@dataclass(frozen=True)
class Person:
    """The person a Profil Zaufany signature names."""

    given_name: str
    surname: str
    pesel: str
    date_of_birth: str = "1980-01-01"


def person_from_certificate(certificate: x509.Certificate) -> Person:
    """Given name, surname and PESEL (``serialNumber=PNOPL-…``) from a personal certificate's subject."""

    def _attr(oid: x509.ObjectIdentifier) -> str:
        values = certificate.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    serial = _attr(NameOID.SERIAL_NUMBER)
    pesel = "".join(ch for ch in serial if ch.isdigit()) if serial.startswith(("PNOPL", "PESEL")) else ""
    if not pesel:
        raise XadesError(
            Text("Do podpisu w stylu Profilu Zaufanego potrzebny jest certyfikat osoby z numerem PESEL.",
            "A Profil Zaufany-style signature needs a personal certificate with a PESEL."),
            code="person_required",
        )
    return Person(given_name=_attr(NameOID.GIVEN_NAME), surname=_attr(NameOID.SURNAME), pesel=pesel)


def claimed_role(person: Person, *, role_format: str = "EPSignature", issued_at: str = "") -> etree._Element:
    """The signed ClaimedRole content gov.pl emits: ``pz:EPSignature`` (new) or ``ppZP:PodpisZP`` (old)."""
    if role_format == "EPSignature":
        root = etree.Element(f"{{{NS_PZ}}}EPSignature", nsmap={"pz": NS_PZ})
        natural = etree.SubElement(root, f"{{{NS_PZ}}}NaturalPerson")
        for tag, value in (
            ("CurrentFamilyName", person.surname),
            ("FirstName", person.given_name),
            ("DateOfBirth", person.date_of_birth),
            ("PersonalIdentifier", person.pesel),
        ):
            etree.SubElement(natural, f"{{{NS_PZ}}}{tag}").text = value
        data = etree.SubElement(root, f"{{{NS_PZ}}}SignatureData")
        etree.SubElement(data, f"{{{NS_PZ}}}IdentityIssuer").text = "sandbox.login.gov.pl.invalid"
        etree.SubElement(data, f"{{{NS_PZ}}}IdentityIssueTimestamp").text = (
            issued_at or "2026-01-01T00:00:00Z"
        )
        return root
    if role_format == "PodpisZP":
        root = etree.Element(f"{{{NS_PPZP}}}PodpisZP", nsmap={"ppZP": NS_PPZP, "os": NS_OSOBA})
        dane = etree.SubElement(root, f"{{{NS_PPZP}}}DaneZP")
        osoba = etree.SubElement(dane, f"{{{NS_PPZP}}}DaneZPOsobyFizycznej")
        etree.SubElement(osoba, f"{{{NS_OSOBA}}}Imie").text = person.given_name
        etree.SubElement(osoba, f"{{{NS_OSOBA}}}Nazwisko", rodzajCzlonu="pierwszy").text = person.surname
        etree.SubElement(osoba, f"{{{NS_OSOBA}}}PESEL").text = person.pesel
        podpis = etree.SubElement(root, f"{{{NS_PPZP}}}DanePodpisu")
        etree.SubElement(podpis, f"{{{NS_PPZP}}}IdKontaUzytkownikaEpuap").text = "sandbox-user"
        return root
    raise XadesError(
        Text("Nieznany format danych Profilu Zaufanego.",
        "Unknown Profil Zaufany data format."),
        code="role_format_unsupported",
    )


def sign(
    xml: bytes,
    *,
    certificate: x509.Certificate,
    private_key: object,
    style: str,
    signing_time: datetime | None = None,
    person: Person | None = None,
    role_format: str = "EPSignature",
) -> bytes:
    """Sign ``xml`` in ``style`` ("enveloped" | "enveloping" | "profil-zaufany").

    For "profil-zaufany" the claimed role names ``person`` (default: read from the certificate's subject).
    """
    if style == "enveloped":
        options = SigningOptions(style="enveloped")
    elif style == "enveloping":
        options = SigningOptions(style="enveloping")
    elif style == "profil-zaufany":
        options = SigningOptions(
            style="enveloped",
            data_transform="xpath",
            claimed_role=claimed_role(
                person or person_from_certificate(certificate), role_format=role_format
            ),
        )
    else:
        raise XadesError(
            Text("Nieznany styl podpisu (dozwolone: enveloped, enveloping, profil-zaufany).",
            "Unknown signature style (allowed: enveloped, enveloping, profil-zaufany)."),
            code="style_unsupported",
        )
    return sign_xades(
        xml, certificate=certificate, private_key=private_key, options=options, signing_time=signing_time
    )
