"""Files that only look signed: signature wrapping, partial references, widened XPath, DTD tricks.

Each hostile file is made with the real signer (libxmlsec1), so the signature in it is cryptographically
valid where the attack needs that: the check must refuse it for what it *covers*, not for a broken digest.
"""

from __future__ import annotations

import re
import socket

import pytest
import xmlsec
from lxml import etree

from klucznik import xades
from klucznik.xades.names import ALG_ENVELOPED
from klucznik.xades.names import DS_SIGNATURE
from klucznik.xades.names import NS_AUTH_20
from klucznik.xades.names import NS_DS
from klucznik.xades.verify import _embedded_certificates
from tests.fixtures.signing import CHALLENGE
from tests.fixtures.signing import NIP
from tests.fixtures.signing import OTHER_CHALLENGE
from tests.fixtures.signing import OTHER_NIP

DS = NS_DS


def codes(result: xades.CheckResult) -> list[str]:
    return [p.code for p in result.problems]


def verifies_with_xmlsec(signed: bytes, kit) -> bool:
    """Would a verifier that only checks the cryptography accept this file? (proves the attack is real)"""
    root = etree.fromstring(signed)
    sig = root if root.tag == DS_SIGNATURE else root.find(f".//{DS_SIGNATURE}")
    ctx = xmlsec.SignatureContext()
    cert = _embedded_certificates(sig)[0]
    from cryptography.hazmat.primitives import serialization

    ctx.key = xmlsec.Key.from_memory(
        cert.public_bytes(serialization.Encoding.PEM), xmlsec.constants.KeyDataFormatCertPem
    )
    for el in root.iter(etree.Element):
        if el.get("Id"):
            ctx.register_id(el, "Id")
    try:
        ctx.verify(sig)
    except xmlsec.Error:
        return False
    return True


def test_widened_xpath_that_leaves_out_the_challenge(xades_kit):
    widened = "not(ancestor-or-self::ds:Signature) and not(ancestor-or-self::*[local-name()='Challenge'])"
    signed = xades_kit.sign_with(xades.SigningOptions(data_transform="xpath", xpath_expression=widened))
    swapped = signed.replace(CHALLENGE.encode(), OTHER_CHALLENGE.encode())
    assert verifies_with_xmlsec(swapped, xades_kit)  # the cryptography alone is fooled...
    result = xades_kit.check(swapped, challenge=OTHER_CHALLENGE)
    assert codes(result) == ["unexpected_transform"]  # ...the check is not
    assert result.problems[0].message_pl.startswith("Podpis nie obejmuje całego dokumentu")


@pytest.mark.parametrize(
    "expression",
    [
        "not(ancestor-or-self::ds:Signature) or true()",
        "true()",
        "not(ancestor-or-self::ds:Signature)  or  false()",
    ],
)
def test_any_other_xpath_is_refused(xades_kit, expression):
    signed = xades_kit.sign_with(xades.SigningOptions(data_transform="xpath", xpath_expression=expression))
    assert codes(xades_kit.check(signed)) == ["unexpected_transform"]


def test_xpath_with_ds_bound_to_another_namespace_is_refused(xades_kit):
    signed = xades_kit.sign_with(xades.SigningOptions(data_transform="xpath"))
    rebound = signed.replace(b"<ds:XPath>", b'<ds:XPath xmlns:ds="urn:not-xmldsig">', 1)
    rebound = rebound.replace(b"</ds:XPath>", b"</ds:XPath>", 1)
    root = etree.fromstring(rebound)  # still well-formed: the element is now in another namespace
    assert root is not None
    assert codes(xades_kit.check(rebound)) == ["unexpected_transform"]


def test_unknown_transform_is_refused(xades_kit):
    signed = xades_kit.sign("enveloped").replace(
        ALG_ENVELOPED.encode(), b"http://www.w3.org/TR/1999/REC-xslt-19991116"
    )
    assert codes(xades_kit.check(signed)) == ["unexpected_transform"]


def test_filter2_intersect_is_refused(xades_kit):
    signed = xades_kit.sign_with(xades.SigningOptions(data_transform="filter2"))
    assert codes(xades_kit.check(signed.replace(b'Filter="subtract"', b'Filter="intersect"'))) == [
        "unexpected_transform"
    ]


def test_reference_to_a_part_of_the_document(xades_kit):
    unsigned = xades_kit.request().replace(b"<ContextIdentifier>", b'<ContextIdentifier Id="ctx">')
    signed = xades_kit.sign_with(
        xades.SigningOptions(reference_uri="#ctx", data_transform="none"), xml=unsigned
    )
    assert verifies_with_xmlsec(signed, xades_kit)
    assert codes(xades_kit.check(signed)) == ["partial_reference"]


def test_second_auth_token_request_inside_the_signature(xades_kit):
    signed = xades_kit.sign("enveloped", xml=xades_kit.request(challenge=OTHER_CHALLENGE, nip=OTHER_NIP))
    decoy = xades_kit.request().split(b"?>", 1)[1]
    wrapped = signed.replace(b"</ds:Signature>", b"<ds:Object>" + decoy + b"</ds:Object></ds:Signature>")
    assert verifies_with_xmlsec(wrapped, xades_kit)  # an unreferenced ds:Object is not covered by anything
    result = xades_kit.check(wrapped)
    assert codes(result) == ["partial_reference"]
    assert result.challenge is None


def test_signed_request_wrapped_in_another_root(xades_kit):
    signed = xades_kit.sign("enveloped").split(b"?>", 1)[1]
    wrapped = b'<Wrapper xmlns="urn:x">' + signed + b"</Wrapper>"
    assert codes(xades_kit.check(wrapped)) == ["wrong_root"]


def test_enveloping_object_with_two_requests(xades_kit):
    signed = xades_kit.sign("enveloping")
    decoy = xades_kit.request(challenge=OTHER_CHALLENGE).split(b"?>", 1)[1]
    doubled = re.sub(
        rb"(<ds:Object Id=\"Object-[0-9a-f]+\">)", rb"\1" + decoy.replace(b"\\", b"\\\\"), signed
    )
    assert doubled != signed
    assert codes(xades_kit.check(doubled, challenge=OTHER_CHALLENGE)) == ["partial_reference"]


def test_second_signature(xades_kit):
    once = xades_kit.sign("enveloped")
    twice = xades_kit.sign_with(xades.SigningOptions(), xml=once, identity=xades_kit.person)
    result = xades_kit.check(twice)
    assert codes(result) == ["multiple_signatures"]
    assert result.problems[0].message_en.endswith("Sign the downloaded file again with one signature.")


def test_signature_not_directly_under_the_root(xades_kit):
    signed = xades_kit.sign("enveloped")
    root = etree.fromstring(signed)
    sig = root.find(DS_SIGNATURE)
    root.find(f"{{{NS_AUTH_20}}}ContextIdentifier").append(sig)
    moved = etree.tostring(root)
    assert codes(xades_kit.check(moved)) == ["partial_reference"]


def test_duplicate_ids_are_refused(xades_kit):
    signed = xades_kit.sign("enveloped")
    sp_id = re.search(rb'SignedProperties Id="([^"]+)"', signed).group(1)
    dup = signed.replace(b"<ContextIdentifier>", b'<ContextIdentifier Id="' + sp_id + b'">')
    assert codes(xades_kit.check(dup)) == ["partial_reference"]


def test_signing_certificate_swapped_for_another(xades_kit):
    signed = xades_kit.sign("enveloped")
    other = xades_kit.sign("enveloped", identity=xades_kit.person)
    cert_re = rb"<ds:X509Certificate>[^<]+</ds:X509Certificate>"
    swapped = re.sub(cert_re, re.search(cert_re, other).group(0), signed)
    assert codes(xades_kit.check(swapped)) == ["bad_signature"]


@pytest.mark.parametrize("style", ["enveloped", "enveloping", "profil-zaufany"])
def test_signed_then_nip_changed(xades_kit, style):
    signed = xades_kit.sign(style)
    edited = signed.replace(f"<Nip>{NIP}</Nip>".encode(), f"<Nip>{OTHER_NIP}</Nip>".encode())
    assert edited != signed
    assert codes(xades_kit.check(edited, nip=OTHER_NIP)) == ["bad_signature"]


def test_signature_value_removed(xades_kit):
    signed = xades_kit.sign("enveloped")
    blank = re.sub(rb"(<ds:SignatureValue[^>]*>)[^<]+", rb"\1", signed)
    assert codes(xades_kit.check(blank)) == ["bad_signature"]


def test_signature_without_references(xades_kit):
    signed = xades_kit.sign("enveloped")
    empty = re.sub(rb"<ds:Reference .*?</ds:Reference>", b"", signed, flags=re.S)
    assert codes(xades_kit.check(empty)) == ["not_signed"]


class _Listener:
    """A loopback TCP socket that records whether anyone connected (proves no network access)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connected(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "template",
    [
        b'<?xml version="1.0"?><!DOCTYPE AuthTokenRequest SYSTEM "http://127.0.0.1:%d/x.dtd">'
        b'<AuthTokenRequest xmlns="http://ksef.mf.gov.pl/auth/token/2.0"/>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY %% p SYSTEM "http://127.0.0.1:%d/p.dtd"> %%p;]>'
        b'<AuthTokenRequest xmlns="http://ksef.mf.gov.pl/auth/token/2.0"/>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:%d/x">]>'
        b'<AuthTokenRequest xmlns="http://ksef.mf.gov.pl/auth/token/2.0"><Challenge>&x;</Challenge></AuthTokenRequest>',
    ],
)
def test_external_dtd_and_entities_never_touch_the_network(xades_kit, template):
    listener = _Listener()
    try:
        result = xades_kit.check(template % listener.port)
        assert codes(result) == ["dtd_forbidden"]
        assert not listener.connected()
    finally:
        listener.close()


def test_xinclude_is_not_processed(xades_kit):
    signed = xades_kit.sign("enveloped")
    xi = signed.replace(
        b"</ContextIdentifier>",
        b'</ContextIdentifier><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
        b'href="file:///etc/passwd" parse="text"/>',
    )
    assert codes(xades_kit.check(xi)) == ["bad_signature"]


def test_billion_laughs_is_refused_quickly_and_without_expansion(xades_kit):
    entities = b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 30))
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "ha">' + entities + b"]>"
        b'<AuthTokenRequest xmlns="http://ksef.mf.gov.pl/auth/token/2.0">&l29;</AuthTokenRequest>'
    )
    assert codes(xades_kit.check(bomb)) == ["dtd_forbidden"]


def test_key_info_retrieval_method_is_never_fetched(xades_kit):
    signed = xades_kit.sign("enveloped")
    listener = _Listener()
    try:
        lured = signed.replace(
            b"<ds:KeyInfo>",
            b'<ds:KeyInfo><ds:RetrievalMethod URI="http://127.0.0.1:%d/cert.der" '
            b'Type="http://www.w3.org/2000/09/xmldsig#rawX509Certificate"/>' % listener.port,
        )
        result = xades_kit.check(lured)
        assert result.ok, result.problems  # KeyInfo is not signed; the embedded certificate is used
        assert not listener.connected()
    finally:
        listener.close()


def test_signing_certificate_is_picked_from_a_chain_by_its_digest(xades_kit):
    import base64

    from cryptography.hazmat.primitives import serialization

    signed = xades_kit.sign("enveloped")
    ca_b64 = base64.b64encode(xades_kit.ca.certificate.public_bytes(serialization.Encoding.DER))
    chained = signed.replace(
        b"<ds:X509Data>", b"<ds:X509Data><ds:X509Certificate>" + ca_b64 + b"</ds:X509Certificate>"
    )
    result = xades_kit.check(chained)
    assert result.ok, result.problems
    assert result.certificate == xades_kit.seal.certificate  # not the CA listed first


def test_a_claimed_role_from_an_ordinary_seal_does_not_pose_as_a_person(xades_kit):
    from sandbox import signer as sandbox_signer

    role = sandbox_signer.claimed_role(
        sandbox_signer.Person(given_name="Jan", surname="Podszywacz", pesel="99010112345")
    )
    signed = xades_kit.sign_with(xades.SigningOptions(data_transform="xpath", claimed_role=role))
    result = xades_kit.check(signed)
    assert result.ok, result.problems
    assert (
        result.signer.kind == "seal" and result.signer.nip == NIP
    )  # the certificate's identity, not the claim
    assert result.signer.name != "Jan Podszywacz"
