"""Reading untrusted XML: the byte gate (size, encoding, magic bytes), a hardened parser, no DTDs ever.

defusedxml pre-screens for DTDs, entities and external references; lxml then parses with entity
expansion, network access and huge trees off. Text is read with every text node joined (comments
skipped), so a comment inside ``<Challenge>`` cannot hide part of the value.
"""

from __future__ import annotations

import re

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as DefusedET
from lxml import etree

from klucznik.xades.messages import refuse
from klucznik.xades.names import AUTH_NAMESPACES
from klucznik.xades.names import MAX_BYTES


def parser() -> etree.XMLParser:
    """The hardened parser: no DTD loading, no entity expansion, no network, no huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        recover=False,
    )


_XML_DECL_RE = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


def gate_bytes(data: bytes) -> bytes:
    """Size, magic bytes and encoding; returns the bytes to parse and forward (a UTF-8 BOM removed)."""
    if len(data) > MAX_BYTES:
        raise refuse("too_large", n=MAX_BYTES // (1024 * 1024))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise refuse("not_xml")
    if data.startswith((b"%PDF", b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"\x1f\x8b", b"Rar!", b"7z")):
        raise refuse("not_xml")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:200]:
        raise refuse("not_xml", variant="encoding")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("not_xml", variant="encoding") from None
    declared = _XML_DECL_RE.match(data)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise refuse("not_xml", variant="encoding")
    if not data.lstrip().startswith(b"<"):
        raise refuse("not_xml")
    return data


def parse_untrusted(data: bytes) -> etree._Element:
    """defusedxml pre-screen (no DTD, no entities, no external references), then the hardened lxml parse."""
    try:
        DefusedET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise refuse("dtd_forbidden") from None
    except DefusedET.ParseError:
        raise refuse("not_xml") from None
    try:
        tree = etree.fromstring(data, parser()).getroottree()
    except etree.XMLSyntaxError:
        raise refuse("not_xml") from None
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise refuse("dtd_forbidden")
    root = tree.getroot()
    for el in root.iter():
        if isinstance(el, etree._Entity):
            raise refuse("dtd_forbidden")
    return root


def text_of(el: etree._Element | None) -> str | None:
    """All text of ``el`` (comments skipped): ``<Challenge><!--x-->2025…</Challenge>`` still reads right."""
    if el is None:
        return None
    return "".join(t for t in el.itertext(etree.Element))


def is_request(el: etree._Element) -> bool:
    qname = etree.QName(el)
    return qname.localname == "AuthTokenRequest" and qname.namespace in AUTH_NAMESPACES
