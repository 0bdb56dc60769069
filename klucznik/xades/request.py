"""The login file KSeF wants signed (``AuthTokenRequest``), and the official schema it must match."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

from klucznik import ids
from klucznik.errors import ValidationError
from klucznik.text import Text
from klucznik.xades.messages import XadesError
from klucznik.xades.names import CHALLENGE_RE
from klucznik.xades.names import DS_SIGNATURE
from klucznik.xades.names import NS_AUTH_20
from klucznik.xades.names import NS_AUTH_21
from klucznik.xades.names import SUBJECT_CERTIFICATE
from klucznik.xades.names import q
from klucznik.xades.parse import parser

#: The official ``schemat_auth_v2-1.xsd`` from the KSeF documentation, shipped unchanged (the 2.0 file does not
#: compile in lxml; 2.1 describes the same document in its own namespace).
XSD_PATH = Path(__file__).resolve().parent / "schemas" / "schemat_auth_v2-1.xsd"


@cache
def schema() -> etree.XMLSchema:
    """The compiled official schema (read once)."""
    return etree.XMLSchema(etree.parse(str(XSD_PATH), parser()))


def schema_errors(request: etree._Element) -> list[str]:
    """Validate an AuthTokenRequest (2.0 or 2.1 namespace, without its ds:Signature) against the 2.1 XSD.

    The 2.0 and 2.1 schemas differ only in the namespace and the IP patterns of the optional policy, so a
    2.0 document is checked with its elements renamed into the 2.1 namespace (on a copy).
    """
    copy = etree.fromstring(etree.tostring(request), parser())
    for sig in copy.findall(DS_SIGNATURE):
        copy.remove(sig)
    for el in copy.iter(etree.Element):
        qname = etree.QName(el)
        if qname.namespace == NS_AUTH_20:
            el.tag = q(NS_AUTH_21, qname.localname)
    etree.cleanup_namespaces(copy)
    compiled = schema()
    if compiled.validate(copy):
        return []
    return [f"line {e.line}: {e.message}" for e in compiled.error_log]


def build_auth_token_request(*, challenge: str, nip: str) -> bytes:
    """The unsigned AuthTokenRequest (namespace 2.0) for ``nip``, subject type certificateSubject, XSD-valid."""
    if not isinstance(challenge, str) or not CHALLENGE_RE.fullmatch(challenge):
        raise ValidationError(
            Text(
                "KSeF zwrócił wyzwanie w nieznanym formacie; spróbuj ponownie za chwilę.",
                "KSeF returned a challenge in an unknown format; try again in a moment.",
            ),
            field="challenge",
            code="challenge_invalid",
        )
    nip = ids.normalize_nip(nip)
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<AuthTokenRequest xmlns="{NS_AUTH_20}">\n'
        f"  <Challenge>{challenge}</Challenge>\n"
        "  <ContextIdentifier>\n"
        f"    <Nip>{nip}</Nip>\n"
        "  </ContextIdentifier>\n"
        f"  <SubjectIdentifierType>{SUBJECT_CERTIFICATE}</SubjectIdentifierType>\n"
        "</AuthTokenRequest>\n"
    )
    data = text.encode("utf-8")
    errors = schema_errors(etree.fromstring(data, parser()))
    if errors:  # cannot happen for a valid challenge and NIP; kept as a guard against schema drift
        raise XadesError(
            Text("Nie udało się zbudować pliku logowania.", "Could not build the login file."),
            code="schema_invalid",
        )
    return data
