"""Checking a login file signed outside the portal, before it is sent to KSeF; never raises for bad input.

The client signs with whatever tool they have and uploads what it saved. Before anything is sent the portal
must know, from the *signed* content only, which challenge and company the file is for and who signed it,
and refuse files that only look signed: a signature over part of the document, an XPath transform that
quietly leaves out the challenge, a second request next to the signed one, a DTD with entities.

python-xmlsec (libxmlsec1) verifies, because signxml skips the XPath and XPath-Filter-2 transforms that
Profil Zaufany and EU DSS tools emit and so computes the wrong digest for exactly the files accountants
upload. The transforms are whitelisted here *before* libxmlsec1 runs (an XPath transform only with the exact
expression ``not(ancestor-or-self::ds:Signature)``), and the fields are read from the canonical form of
what the verified reference covers. The checks and their order are described in docs/SIGNED-XML.md.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import UTC
from datetime import datetime

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from klucznik import ids
from klucznik.xades.messages import Problem
from klucznik.xades.messages import Refusal
from klucznik.xades.messages import problem
from klucznik.xades.messages import refuse
from klucznik.xades.names import ALG_BASE64
from klucznik.xades.names import ALG_ENVELOPED
from klucznik.xades.names import ALG_FILTER2
from klucznik.xades.names import ALG_XPATH
from klucznik.xades.names import C14N_ALGORITHMS
from klucznik.xades.names import C14N_TRANSFORMS
from klucznik.xades.names import DIGESTS
from klucznik.xades.names import DS_SIGNATURE
from klucznik.xades.names import FILTER2_SIGNATURE
from klucznik.xades.names import NS_DS
from klucznik.xades.names import NS_FILTER2
from klucznik.xades.names import NS_XADES
from klucznik.xades.names import SIGNATURE_METHODS
from klucznik.xades.names import SIGNED_PROPERTIES_TYPE
from klucznik.xades.names import SUBJECT_CERTIFICATE
from klucznik.xades.names import XPATH_NOT_SIGNATURE
from klucznik.xades.names import q
from klucznik.xades.parse import gate_bytes
from klucznik.xades.parse import is_request
from klucznik.xades.parse import parse_untrusted
from klucznik.xades.parse import parser
from klucznik.xades.parse import text_of
from klucznik.xades.request import schema_errors
from klucznik.xades.signer import Signer
from klucznik.xades.signer import is_trusted_profile_seal
from klucznik.xades.signer import signer_from_certificate
from klucznik.xades.signer import signer_from_claimed_role


@dataclass(frozen=True)
class CheckResult:
    """The verdict on an uploaded file; ``challenge``/``nip``/``subject_type`` come from verified content only."""

    ok: bool
    signer: Signer | None
    problems: tuple[Problem, ...]
    challenge: str | None = None
    nip: str | None = None
    subject_type: str | None = None
    certificate: x509.Certificate | None = None
    #: "enveloped" or "enveloping" once the shape is known.
    style: str | None = None
    #: the SigningTime the signer claimed (signed property), if any.
    signing_time: datetime | None = None
    #: the canonical bytes of the signed AuthTokenRequest (what the signature covers), for display and audit.
    signed_content: bytes | None = None
    #: the bytes to forward to KSeF: the upload itself, only a leading UTF-8 BOM removed (signature-safe).
    payload: bytes | None = None

    def as_dict(self) -> dict[str, object]:
        """The CLI/JSON contract: ``{"ok", "signer", "problems"}``."""
        return {
            "ok": self.ok,
            "signer": self.signer.as_dict() if self.signer else None,
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass(frozen=True)
class _Shape:
    """What the structural check found: the signature element and what its data reference covers."""

    root: etree._Element
    signature: etree._Element
    style: str
    data_reference: etree._Element
    signed_properties: etree._Element | None
    request: etree._Element | None = None  # the element the data reference covers
    base64_request: bytes | None = None  # enveloping with the base64 transform: the decoded bytes
    ids: dict[str, etree._Element] = field(default_factory=dict)


def _transforms(ref: etree._Element) -> list[etree._Element]:
    return ref.findall(f"{q(NS_DS, 'Transforms')}/{q(NS_DS, 'Transform')}")


def _xpath_transform_ok(transform: etree._Element) -> bool:
    children = [c for c in transform if isinstance(c.tag, str)]
    if len(children) != 1 or children[0].tag != q(NS_DS, "XPath"):
        return False
    xpath = children[0]
    return (
        (text_of(xpath) or "").strip() == XPATH_NOT_SIGNATURE
        and xpath.nsmap.get("ds") == NS_DS
        and not len(xpath)
    )


def _filter2_transform_ok(transform: etree._Element) -> bool:
    children = [c for c in transform if isinstance(c.tag, str)]
    if len(children) != 1 or children[0].tag != q(NS_FILTER2, "XPath"):
        return False
    xpath = children[0]
    return (
        xpath.get("Filter") == "subtract"
        and (text_of(xpath) or "").strip() == FILTER2_SIGNATURE
        and xpath.nsmap.get("ds") == NS_DS
        and not len(xpath)
    )


def _check_data_transforms(ref: etree._Element, style: str) -> bool:
    """Refuse any transform not on the list; return True when the content is base64 (enveloping)."""
    is_base64 = False
    for transform in _transforms(ref):
        alg = transform.get("Algorithm")
        if alg in C14N_ALGORITHMS:
            continue
        if style == "enveloped" and alg == ALG_ENVELOPED:
            continue
        if style == "enveloped" and alg == ALG_XPATH and _xpath_transform_ok(transform):
            continue
        if style == "enveloped" and alg == ALG_FILTER2 and _filter2_transform_ok(transform):
            continue
        if style == "enveloping" and alg == ALG_BASE64 and not is_base64:
            is_base64 = True
            continue
        raise refuse("unexpected_transform")
    return is_base64


def _check_other_transforms(ref: etree._Element) -> None:
    for transform in _transforms(ref):
        if transform.get("Algorithm") not in C14N_ALGORITHMS:
            raise refuse("unexpected_transform")


def _structure(root: etree._Element) -> _Shape:
    """Root, signature count and place, references and transforms (docs/SIGNED-XML.md, check 3)."""
    signatures = list(root.iter(DS_SIGNATURE))
    if root.tag == DS_SIGNATURE:
        style = "enveloping"
        signature = root
    elif is_request(root):
        style = "enveloped"
        if not signatures:
            raise refuse("not_signed")
        signature = signatures[0]
    else:
        raise refuse("wrong_root")
    if len(signatures) > 1:
        raise refuse("multiple_signatures")
    if sum(1 for el in root.iter(etree.Element) if etree.QName(el).localname == "AuthTokenRequest") > 1:
        raise refuse("partial_reference")  # a second request next to the signed one: classic wrapping
    if style == "enveloped" and signature.getparent() is not root:
        raise refuse("partial_reference")

    ids: dict[str, etree._Element] = {}
    for el in root.iter(etree.Element):
        for attr in ("Id", "ID", "id"):
            value = el.get(attr)
            if value is not None:
                if value in ids:  # duplicate ids are how wrapping attacks pick "the other" element
                    raise refuse("partial_reference")
                ids[value] = el

    signed_info = signature.find(q(NS_DS, "SignedInfo"))
    if signed_info is None:
        raise refuse("not_signed")
    references = signed_info.findall(q(NS_DS, "Reference"))
    if not references:
        raise refuse("not_signed")

    data_refs: list[etree._Element] = []
    signed_properties = None
    for ref in references:
        uri = ref.get("URI")
        if uri is None or (uri and not uri.startswith("#")):
            raise refuse("detached_signature")
        target = ids.get(uri[1:]) if uri else None
        if uri and target is None:
            raise refuse("partial_reference")
        if ref.get("Type") == SIGNED_PROPERTIES_TYPE:
            if (
                signed_properties is not None
                or target is None
                or target.tag != q(NS_XADES, "SignedProperties")
            ):
                raise refuse("partial_reference")
            if not _inside(target, signature):
                raise refuse("partial_reference")
            _check_other_transforms(ref)
            signed_properties = target
        elif target is not None and _inside(target, signature) and target.tag != q(NS_DS, "Object"):
            _check_other_transforms(ref)  # e.g. a reference to KeyInfo: covers nothing of the request
        else:
            data_refs.append(ref)
    if len(data_refs) != 1:
        raise refuse("partial_reference")
    data_ref = data_refs[0]
    uri = data_ref.get("URI")
    if style == "enveloped":
        if uri != "":
            raise refuse("partial_reference")
        _check_data_transforms(data_ref, style)
        return _Shape(root, signature, style, data_ref, signed_properties, request=root, ids=ids)

    # enveloping: the data reference points at a ds:Object of this signature holding exactly the request
    target = ids.get(uri[1:]) if uri else None
    if target is None or target.tag != q(NS_DS, "Object") or target.getparent() is not signature:
        raise refuse("partial_reference")
    is_base64 = _check_data_transforms(data_ref, style)
    children = [c for c in target if isinstance(c.tag, str)]
    if is_base64:
        if children:
            raise refuse("partial_reference")
        try:
            inner = base64.b64decode("".join((target.text or "").split()), validate=True)
        except ValueError:
            raise refuse("not_xml") from None
        return _Shape(root, signature, style, data_ref, signed_properties, base64_request=inner, ids=ids)
    if len(children) != 1 or (target.text or "").strip() or (children[0].tail or "").strip():
        raise refuse("partial_reference")
    if not is_request(children[0]):
        raise refuse("wrong_root")
    return _Shape(root, signature, style, data_ref, signed_properties, request=children[0], ids=ids)


def _inside(el: etree._Element, ancestor: etree._Element) -> bool:
    node = el
    while node is not None:
        if node is ancestor:
            return True
        node = node.getparent()
    return False


def _embedded_certificates(signature: etree._Element) -> list[x509.Certificate]:
    certs = []
    for el in signature.findall(
        f"{q(NS_DS, 'KeyInfo')}/{q(NS_DS, 'X509Data')}/{q(NS_DS, 'X509Certificate')}"
    ):
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode("".join((el.text or "").split()))))
        except ValueError:
            continue
    return certs


def _signing_certificate(shape: _Shape, certs: list[x509.Certificate]) -> x509.Certificate:
    """The embedded certificate named by SigningCertificate(V2)/CertDigest, else the only/first one."""
    if not certs:
        raise refuse("bad_signature")
    digests = []
    if shape.signed_properties is not None:
        for name in ("SigningCertificate", "SigningCertificateV2"):
            for cert_el in shape.signed_properties.iter(q(NS_XADES, name)):
                for digest_el in cert_el.iter(q(NS_XADES, "CertDigest")):
                    method = digest_el.find(q(NS_DS, "DigestMethod"))
                    value = digest_el.find(q(NS_DS, "DigestValue"))
                    if method is not None and value is not None:
                        digests.append((method.get("Algorithm"), text_of(value) or ""))
    if not digests:
        return certs[0]
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        for alg, value in digests:
            name = DIGESTS.get(alg, (None,))[0]
            if name and base64.b64encode(hashlib.new(name, der).digest()).decode() == "".join(value.split()):
                return cert
    raise refuse("bad_signature")  # SigningCertificate names a certificate that is not the one embedded


def _verify_crypto(shape: _Shape, cert: x509.Certificate) -> None:
    """libxmlsec1 verifies SignatureValue and every reference digest with the embedded certificate's key."""
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(
        cert.public_bytes(serialization.Encoding.PEM), xmlsec.constants.KeyDataFormatCertPem
    )
    for el in shape.ids.values():
        for attr in ("Id", "ID", "id"):
            if el.get(attr) is not None and _inside(el, shape.signature):
                ctx.register_id(el, attr)
    if shape.base64_request is None:  # (python-xmlsec exposes no base64 transform id to whitelist)
        for transform in (
            *C14N_TRANSFORMS,
            xmlsec.constants.TransformEnveloped,
            xmlsec.constants.TransformXPath,
            xmlsec.constants.TransformXPath2,
            *(d[1] for d in DIGESTS.values()),
        ):
            ctx.enable_reference_transform(transform)
    for transform in (*C14N_TRANSFORMS, *(m[2] for m in SIGNATURE_METHODS.values())):
        ctx.enable_signature_transform(transform)
    try:
        ctx.verify(shape.signature)
    except xmlsec.Error:
        variant = "bad_signature" if _signed_info_valid(shape.signature, cert) else "bad_signature_resaved"
        raise refuse("bad_signature", variant=variant) from None


def _signed_info_valid(signature: etree._Element, cert: x509.Certificate) -> bool:
    """Diagnosis only (the verdict is libxmlsec1's): does SignatureValue match SignedInfo?

    True means the signature itself is intact and a reference digest failed (the content was edited);
    False means SignedInfo changed too (typically an editor re-saved or re-indented the file).
    """
    try:
        signed_info = signature.find(q(NS_DS, "SignedInfo"))
        c14n = signed_info.find(q(NS_DS, "CanonicalizationMethod")).get("Algorithm")
        kind, hash_cls, _ = SIGNATURE_METHODS[signed_info.find(q(NS_DS, "SignatureMethod")).get("Algorithm")]
        exclusive = c14n.startswith("http://www.w3.org/2001/10/xml-exc-c14n")
        if "c14n11" in c14n:
            return False
        data = etree.tostring(
            signed_info, method="c14n", exclusive=exclusive, with_comments=c14n.endswith("Comments")
        )
        value = base64.b64decode("".join((text_of(signature.find(q(NS_DS, "SignatureValue"))) or "").split()))
        key = cert.public_key()
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(value, data, padding.PKCS1v15(), hash_cls())
            return True
        if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            half = len(value) // 2
            der = encode_dss_signature(
                int.from_bytes(value[:half], "big"), int.from_bytes(value[half:], "big")
            )
            key.verify(der, data, ec.ECDSA(hash_cls()))
            return True
    except (InvalidSignature, ValueError, KeyError, AttributeError, TypeError):
        return False
    return False


def _verified_request(shape: _Shape) -> tuple[etree._Element, bytes]:
    """The AuthTokenRequest as the verified data reference covers it: canonical form, re-parsed.

    Enveloped: the whole document minus the signature (the only transforms allowed remove exactly that).
    Enveloping: the one element in the referenced ds:Object, or its base64-decoded bytes (parsed with the
    same hardened gate). Comments are not part of the result, so they cannot confuse the comparison.
    """
    if shape.base64_request is not None:
        inner = parse_untrusted(gate_bytes(shape.base64_request))
        if not is_request(inner):
            raise refuse("wrong_root")
        if any(
            etree.QName(el).localname in ("AuthTokenRequest", "Signature") for el in inner.iterdescendants()
        ):
            raise refuse("partial_reference")
        source = inner
    else:
        source = etree.fromstring(etree.tostring(shape.request), parser())
    for sig in source.findall(DS_SIGNATURE):
        source.remove(sig)
    canonical = etree.tostring(source, method="c14n", exclusive=False, with_comments=False)
    return etree.fromstring(canonical, parser()), canonical


def _signing_time(signed_properties: etree._Element | None) -> datetime | None:
    if signed_properties is None:
        return None
    el = signed_properties.find(f".//{q(NS_XADES, 'SigningTime')}")
    text = (text_of(el) or "").strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_signed_request(
    data: bytes,
    *,
    challenge: str | None,
    nip: str | None,
    at: datetime,
    challenge_expires_at: datetime | None = None,
) -> CheckResult:
    """Check an uploaded signed AuthTokenRequest (docs/SIGNED-XML.md); never raises for bad input.

    ``challenge``/``nip`` = what the portal issued (``None``: do not compare); ``challenge_expires_at`` with
    ``at`` decides expiry. The result's fields come only from what the verified signature covers.
    """
    try:
        payload = gate_bytes(bytes(data))
        root = parse_untrusted(payload)
        shape = _structure(root)
        cert = _signing_certificate(shape, _embedded_certificates(shape.signature))
        _verify_crypto(shape, cert)
        request, canonical = _verified_request(shape)
    except Refusal as refusal:
        return CheckResult(ok=False, signer=None, problems=(refusal.problem,))

    signer = signer_from_certificate(cert)
    claimed = signer_from_claimed_role(shape.signed_properties)
    if claimed is not None and (
        is_trusted_profile_seal(cert) or (claimed.pesel and claimed.pesel == signer.pesel)
    ):
        signer = claimed  # Profil Zaufany: the person is named in the signed claimed role, not in the seal
    base = CheckResult(
        ok=False,
        signer=signer,
        problems=(),
        certificate=cert,
        style=shape.style,
        signing_time=_signing_time(shape.signed_properties),
        signed_content=canonical,
        payload=payload,
    )
    if schema_errors(request):
        return replace(base, problems=(problem("schema_invalid"),))

    ns = etree.QName(request).namespace
    got_challenge = (text_of(request.find(q(ns, "Challenge"))) or "").strip()
    context = request.find(q(ns, "ContextIdentifier"))
    got_nip_el = context.find(q(ns, "Nip")) if context is not None else None
    got_nip = (text_of(got_nip_el) or "").strip() if got_nip_el is not None else None
    subject_type = (text_of(request.find(q(ns, "SubjectIdentifierType"))) or "").strip()
    result = replace(base, challenge=got_challenge, nip=got_nip, subject_type=subject_type)

    problems: list[Problem] = []
    comparing = challenge is not None or nip is not None
    if comparing and (
        subject_type != SUBJECT_CERTIFICATE or request.find(q(ns, "AuthorizationPolicy")) is not None
    ):
        problems.append(problem("wrong_root"))  # a valid file, but not one this portal generates
    if challenge is not None and got_challenge != challenge:
        problems.append(problem("challenge_mismatch"))
    if nip is not None:
        expected = ids.normalize_nip(nip)
        if got_nip != expected:
            shown = (
                got_nip or (text_of(context[0]) or "").strip()
                if context is not None and len(context)
                else None
            )
            problems.append(
                problem("nip_mismatch", x=ids.format_nip(shown or "?"), y=ids.format_nip(expected))
            )
    if challenge_expires_at is not None and at >= challenge_expires_at:
        problems.append(problem("challenge_expired"))
    return replace(result, ok=not problems, problems=tuple(problems))
