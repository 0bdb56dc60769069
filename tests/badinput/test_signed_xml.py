"""Signed login files uploaded in the wizard (SECURITY.md §3.1, X1–X14): hostile XML, files signed wrongly or
edited after signing. Against the real sandbox (in a thread): the portal takes a real challenge first.

Each file is refused with a plain message; the attempt stays as it was (nothing to send), and the only row
written is the audit entry of the refused upload (every upload is logged, docs/SIGNED-XML.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from io import BytesIO

import pytest
from lxml import etree
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from klucznik import xades
from klucznik.authorize.requests import get_request
from klucznik.ksef.transport import RetryPolicy
from klucznik.xades.names import NS_AUTH_20
from sandbox import ca
from sandbox import signer
from tests.support.badinput import TRACE_MARKERS
from tests.support.badinput import body
from tests.support.badinput import stored
from tests.support.defaults import CLIENT_NIP

OTHER_NIP = "6852332948"
NS = f' xmlns="{NS_AUTH_20}"'.encode()


def _sign(xml: bytes, *, style: str = "enveloped", nip: str = CLIENT_NIP, options=None) -> bytes:  # noqa: ANN001
    certificate, key = ca.qualified_identity(nip=nip)
    if options is not None:
        return xades.sign_xades(xml, certificate=certificate, private_key=key, options=options)
    return signer.sign(xml, certificate=certificate, private_key=key, style=style)


def _bomb(_xml: bytes) -> bytes:
    entities = b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 12))
    return (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "ha">' + entities + b"]><AuthTokenRequest" + NS
            + b">&l11;</AuthTokenRequest>")


def _quadratic(_xml: bytes) -> bytes:
    return (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><AuthTokenRequest' + NS
            + b">" + b"&a;" * 20 + b"</AuthTokenRequest>")


def _deep(_xml: bytes) -> bytes:
    return b"<AuthTokenRequest" + NS + b">" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</AuthTokenRequest>"


def _wrapped(xml: bytes) -> bytes:
    signed = _sign(xml).split(b"?>", 1)[1]
    return b'<Wrapper xmlns="urn:x">' + signed + b"</Wrapper>"


def _second_signature(xml: bytes) -> bytes:
    return _sign(_sign(xml), options=xades.SigningOptions())


def _moved_signature(xml: bytes) -> bytes:
    root = etree.fromstring(_sign(xml))
    signature = root.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    root.find(f"{{{NS_AUTH_20}}}ContextIdentifier").append(signature)
    return etree.tostring(root)


def _comment_in_nip(xml: bytes) -> bytes:
    """The Duo/SAML trick: "5261040828<!---->999" reads as the client's NIP to a parser that stops at the
    comment, but the signed (canonical) value is 5261040828999 (comments are not signed)."""
    signed = _sign(xml.replace(f"<Nip>{CLIENT_NIP}</Nip>".encode(), f"<Nip>{CLIENT_NIP}999</Nip>".encode()))
    return signed.replace(f"<Nip>{CLIENT_NIP}999</Nip>".encode(), f"<Nip>{CLIENT_NIP}<!---->999</Nip>".encode())


def _utf16_declared_utf8(xml: bytes) -> bytes:
    return _sign(xml).decode("utf-8").encode("utf-16")


#: case → the file built from the attempt's unsigned XML.
FILES: dict[str, Callable[[bytes], bytes]] = {
    "empty file": lambda xml: b"",
    "whitespace only": lambda xml: b"  \n\t ",
    "not XML (PDF)": lambda xml: b"%PDF-1.7\n" + b"\x00" * 100,
    "truncated XML": lambda xml: _sign(xml)[:-200],
    "the unsigned file as downloaded": lambda xml: xml,
    "X1 XXE reading a local file": lambda xml: (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM '
                                               b'"file:///etc/hostname">]><AuthTokenRequest' + NS
                                               + b"><Challenge>&x;</Challenge></AuthTokenRequest>"),
    "X2 external DTD over http": lambda xml: (b'<?xml version="1.0"?><!DOCTYPE AuthTokenRequest SYSTEM '
                                             b'"http://127.0.0.1:9/x.dtd"><AuthTokenRequest' + NS + b"/>"),
    "X3 billion laughs": _bomb,
    "X4 quadratic blowup": _quadratic,
    "X5 a plain DOCTYPE": lambda xml: xml.replace(b"?>", b'?><!DOCTYPE AuthTokenRequest>', 1),
    "X6 over the size limit": lambda xml: _sign(xml) + b"<!--" + b"x" * (xades.MAX_BYTES + 10) + b"-->",
    "X6 100k-deep nesting": _deep,
    "X7 wrapped in another root": _wrapped,
    "X7 signature moved inside the document": _moved_signature,
    "X8 signed for another company": lambda xml: _sign(xml.replace(CLIENT_NIP.encode(), OTHER_NIP.encode()),
                                                       nip=OTHER_NIP),
    "X9 comment inside the signed NIP": _comment_in_nip,
    "X9 NIP edited after signing": lambda xml: _sign(xml).replace(CLIENT_NIP.encode(), OTHER_NIP.encode()),
    "X9 challenge edited after signing": lambda xml: re.sub(rb"<Challenge>[^<]+</Challenge>",
                                                            b"<Challenge>20250101-CR-0000000000-0000000000-00"
                                                            b"</Challenge>", _sign(xml)),
    "X10 reference to a part only": lambda xml: _sign(
        xml.replace(b"<ContextIdentifier>", b'<ContextIdentifier Id="ctx">'),
        options=xades.SigningOptions(reference_uri="#ctx", data_transform="none")),
    "X12 two signatures": _second_signature,
    "X12 signature value removed": lambda xml: re.sub(rb"(<ds:SignatureValue[^>]*>)[^<]+", rb"\1", _sign(xml)),
    "X13 XInclude after signing": lambda xml: _sign(xml).replace(
        b"</ContextIdentifier>", b'</ContextIdentifier><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
        b'href="file:///etc/passwd" parse="text"/>'),
    "X14 UTF-16 declared as UTF-8": _utf16_declared_utf8,
    "X14 Latin-2 bytes in a UTF-8 file": lambda xml: _sign(xml).replace(b"</AuthTokenRequest>",
                                                                        b"<!-- \xb1\xea -->\n</AuthTokenRequest>"),
}


@pytest.fixture
def attempt(app, web, store, client_company, sandbox_server, sandbox_office):  # noqa: ANN001, ANN201
    """A fresh method-1 attempt: (web client, its upload address, the unsigned XML, its id)."""
    app.config["KLUCZNIK_CLOCK"] = sandbox_server.state.now
    app.config["KSEF_CLIENT_OPTIONS"] = {"retries": RetryPolicy(attempts=2, backoff=0.0), "sleep": lambda s: None,
                                         "clock": sandbox_server.state.now, "timeout": (2.0, 5.0)}
    base = f"/clients/{client_company.id}/wizard"
    web.get(f"{base}/grant")
    response = web.post(f"{base}/grant/new")
    assert response.status_code == 303, body(response)[:500]
    request_id = int(re.search(r"/attempts/(\d+)", response.headers["Location"]).group(1))
    with store.connect() as db:
        unsigned = get_request(db, request_id).unsigned_xml
    return web, f"{base}/attempts/{request_id}/upload", unsigned, request_id


@pytest.mark.parametrize("case", sorted(FILES))
@pytest.mark.parametrize("htmx", [True, False])
def test_a_bad_signed_file_is_refused_plainly(attempt, store, case: str, htmx: bool) -> None:  # noqa: ANN001
    web, url, unsigned, request_id = attempt
    data = FILES[case](unsigned)
    before_rows, before_ring = stored(store)
    # Encoded in memory (the test client would spool a large body to a temporary file it never closes).
    boundary, payload = encode_multipart(
        {"signed": FileStorage(BytesIO(data), filename="AuthTokenRequest (1).xml")})
    headers = {"X-CSRFToken": web.token(), **({"HX-Request": "true"} if htmx else {})}
    response = web.client.post(url, data=payload, headers=headers,
                               content_type=f"multipart/form-data; boundary={boundary}")
    text = body(response)
    assert response.status_code == 422, (response.status_code, text[:800])
    for marker in (*TRACE_MARKERS, "/etc/hostname", "root:x:0"):
        assert marker not in text, marker
    assert re.search(r'class="alert alert-error"', text), text[:2000]
    after_rows, after_ring = stored(store)
    assert after_ring == before_ring
    assert {k: v for k, v in after_rows.items() if k != "audit_log"} == {
        k: v for k, v in before_rows.items() if k != "audit_log"}
    added = after_rows["audit_log"][len(before_rows["audit_log"]):]
    assert [row[4] for row in added] in ([], ["ksef.auth.upload"])
    with store.connect() as db:
        assert get_request(db, request_id).status == "issued"
