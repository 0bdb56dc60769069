"""Signing as KSeF's own clients do: XAdES-BES (SigningTime, SigningCertificate), enveloped or enveloping,
with libxmlsec1.

The portal signs with its own KSeF Authentication certificate; the sandbox signs test files in the styles
accountants upload (enveloped, enveloping, Profil-Zaufany-like with an XPath transform). Both use this one
implementation, so the checker is always tested against real signatures.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from klucznik import clock
from klucznik.text import Text
from klucznik.xades.messages import XadesError
from klucznik.xades.names import ALG_BASE64
from klucznik.xades.names import ALG_ENVELOPED
from klucznik.xades.names import ALG_EXC_C14N
from klucznik.xades.names import ALG_FILTER2
from klucznik.xades.names import ALG_XPATH
from klucznik.xades.names import DS_SIGNATURE
from klucznik.xades.names import DSIG_MORE
from klucznik.xades.names import FILTER2_SIGNATURE
from klucznik.xades.names import NS_DS
from klucznik.xades.names import NS_FILTER2
from klucznik.xades.names import NS_XADES
from klucznik.xades.names import SIGNED_PROPERTIES_TYPE
from klucznik.xades.names import STYLES
from klucznik.xades.names import XPATH_NOT_SIGNATURE
from klucznik.xades.names import q
from klucznik.xades.parse import parser


@dataclass(frozen=True)
class SigningOptions:
    """How to sign (the defaults are what KSeF's own clients emit: enveloped, exclusive c14n, SHA-256).

    ``data_transform`` picks how the signature leaves itself out of the digest: "enveloped-signature",
    "xpath" (Profil Zaufany) or "filter2" (EU DSS). ``claimed_role`` is an element placed under
    SignerRole/ClaimedRoles/ClaimedRole (Profil Zaufany puts the person's data there). The remaining
    fields exist so tests can build hostile files with the real signer (e.g. a widened XPath).
    """

    style: str = "enveloped"  # "enveloped" | "enveloping"
    data_transform: str = "enveloped-signature"
    c14n: str = ALG_EXC_C14N
    digest: str = "http://www.w3.org/2001/04/xmlenc#sha256"
    enveloping_base64: bool = False
    claimed_role: etree._Element | None = None
    xpath_expression: str = XPATH_NOT_SIGNATURE
    reference_uri: str | None = None  # None = "" (enveloped) or "#<object id>" (enveloping)
    extra_data_transforms: tuple[str, ...] = ()
    include_signing_certificate: bool = True


def _signature_method(private_key: object) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return DSIG_MORE + "rsa-sha256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return {256: DSIG_MORE + "ecdsa-sha256", 384: DSIG_MORE + "ecdsa-sha384"}.get(
            private_key.curve.key_size, DSIG_MORE + "ecdsa-sha512"
        )
    raise XadesError(
        Text(
            "Ten rodzaj klucza nie nadaje się do podpisu XAdES (potrzebny RSA lub EC).",
            "This kind of key cannot make a XAdES signature (RSA or EC needed).",
        ),
        code="key_unsupported",
    )


def _sub(
    parent: etree._Element, ns: str, local: str, text: str | None = None, **attrs: str
) -> etree._Element:
    el = etree.SubElement(parent, q(ns, local), **attrs)
    if text is not None:
        el.text = text
    return el


def _xades_timestamp(moment: datetime) -> str:
    return clock.to_utc(moment).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _add_reference(
    signed_info: etree._Element, uri: str, transforms: list[etree._Element | str], digest: str, **attrs: str
) -> etree._Element:
    ref = _sub(signed_info, NS_DS, "Reference", URI=uri, **attrs)
    if transforms:
        tr = _sub(ref, NS_DS, "Transforms")
        for item in transforms:
            if isinstance(item, str):
                _sub(tr, NS_DS, "Transform", Algorithm=item)
            else:
                tr.append(item)
    _sub(ref, NS_DS, "DigestMethod", Algorithm=digest)
    _sub(ref, NS_DS, "DigestValue")
    return ref


def _data_transforms(options: SigningOptions) -> list[etree._Element | str]:
    items: list[etree._Element | str] = []
    if options.style == "enveloped":
        if options.data_transform == "enveloped-signature":
            items.append(ALG_ENVELOPED)
        elif options.data_transform == "xpath":
            t = etree.Element(q(NS_DS, "Transform"), Algorithm=ALG_XPATH, nsmap={"ds": NS_DS})
            _sub(t, NS_DS, "XPath", options.xpath_expression)
            items.append(t)
        elif options.data_transform == "filter2":
            t = etree.Element(q(NS_DS, "Transform"), Algorithm=ALG_FILTER2, nsmap={"ds": NS_DS})
            x = etree.SubElement(
                t, q(NS_FILTER2, "XPath"), Filter="subtract", nsmap={"dsig-xpath": NS_FILTER2, "ds": NS_DS}
            )
            x.text = FILTER2_SIGNATURE
            items.append(t)
        elif options.data_transform != "none":
            raise XadesError(
                Text("Nieznane przekształcenie podpisu.", "Unknown signature transform."),
                code="transform_unsupported",
            )
    elif options.enveloping_base64:
        items.append(ALG_BASE64)
    items.extend(options.extra_data_transforms)
    items.append(options.c14n)
    return items


def sign_xades(
    xml: bytes,
    *,
    certificate: x509.Certificate,
    private_key: object,
    options: SigningOptions = SigningOptions(),
    signing_time: datetime | None = None,
) -> bytes:
    """Sign ``xml`` as XAdES-BES (SigningTime, SigningCertificate, optional ClaimedRole) with libxmlsec1."""
    if options.style not in STYLES:
        raise XadesError(
            Text(
                "Nieznany rodzaj podpisu (dozwolone: otaczany, otaczający).",
                "Unknown signature style (allowed: enveloped, enveloping).",
            ),
            code="style_unsupported",
        )
    signing_time = signing_time or clock.utcnow()
    method = _signature_method(private_key)
    token = secrets.token_hex(8)
    sig_id, sp_id, obj_id = f"Signature-{token}", f"SignedProperties-{token}", f"Object-{token}"

    sig = etree.Element(DS_SIGNATURE, Id=sig_id, nsmap={"ds": NS_DS})
    signed_info = _sub(sig, NS_DS, "SignedInfo")
    _sub(signed_info, NS_DS, "CanonicalizationMethod", Algorithm=options.c14n)
    _sub(signed_info, NS_DS, "SignatureMethod", Algorithm=method)
    data_uri = options.reference_uri
    if data_uri is None:
        data_uri = "" if options.style == "enveloped" else f"#{obj_id}"
    _add_reference(signed_info, data_uri, _data_transforms(options), options.digest)
    _add_reference(signed_info, f"#{sp_id}", [options.c14n], options.digest, Type=SIGNED_PROPERTIES_TYPE)
    _sub(sig, NS_DS, "SignatureValue", Id=f"SignatureValue-{token}")
    key_info = _sub(sig, NS_DS, "KeyInfo")
    x509_data = _sub(key_info, NS_DS, "X509Data")
    cert_der = certificate.public_bytes(serialization.Encoding.DER)
    _sub(x509_data, NS_DS, "X509Certificate", base64.b64encode(cert_der).decode("ascii"))

    data_object = None
    if options.style == "enveloping":
        data_object = _sub(sig, NS_DS, "Object", Id=obj_id)
        if options.enveloping_base64:
            data_object.text = base64.b64encode(xml).decode("ascii")
        else:
            data_object.append(etree.fromstring(xml, parser()))

    qp_object = _sub(sig, NS_DS, "Object")
    qp = etree.SubElement(
        qp_object, q(NS_XADES, "QualifyingProperties"), Target=f"#{sig_id}", nsmap={"xades": NS_XADES}
    )
    sp = _sub(qp, NS_XADES, "SignedProperties", Id=sp_id)
    ssp = _sub(sp, NS_XADES, "SignedSignatureProperties")
    _sub(ssp, NS_XADES, "SigningTime", _xades_timestamp(signing_time))
    if options.include_signing_certificate:
        cert = _sub(_sub(ssp, NS_XADES, "SigningCertificate"), NS_XADES, "Cert")
        digest = _sub(cert, NS_XADES, "CertDigest")
        _sub(digest, NS_DS, "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
        _sub(
            digest, NS_DS, "DigestValue", base64.b64encode(hashlib.sha256(cert_der).digest()).decode("ascii")
        )
        issuer_serial = _sub(cert, NS_XADES, "IssuerSerial")
        _sub(issuer_serial, NS_DS, "X509IssuerName", certificate.issuer.rfc4514_string())
        _sub(issuer_serial, NS_DS, "X509SerialNumber", str(certificate.serial_number))
    if options.claimed_role is not None:
        role = _sub(
            _sub(_sub(ssp, NS_XADES, "SignerRole"), NS_XADES, "ClaimedRoles"), NS_XADES, "ClaimedRole"
        )
        role.append(etree.fromstring(etree.tostring(options.claimed_role), parser()))

    if options.style == "enveloped":
        root = etree.fromstring(xml, parser())
        root.append(sig)
        tree_root = root
    else:
        tree_root = sig
    # ids are registered on the final tree, so serialise and re-parse the template first (stable namespaces)
    tree_root = etree.fromstring(etree.tostring(tree_root), parser())
    sig = tree_root if options.style == "enveloping" else tree_root.find(DS_SIGNATURE)
    ctx = xmlsec.SignatureContext()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ctx.key = xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatPem)
    for el in tree_root.iter(etree.Element):
        if el.get("Id"):
            ctx.register_id(el, "Id")
    try:
        ctx.sign(sig)
    except xmlsec.Error as exc:
        raise XadesError(
            Text("Nie udało się podpisać pliku.", f"Signing failed: {exc}"), code="sign_failed"
        ) from exc
    return etree.tostring(tree_root, xml_declaration=True, encoding="UTF-8")


def sign_auth_token_request(
    xml: bytes,
    *,
    certificate: x509.Certificate,
    private_key: object,
    style: str = "enveloped",
    signing_time: datetime | None = None,
) -> bytes:
    """Sign an AuthTokenRequest the way KSeF's clients do (XAdES-BES, enveloped or enveloping)."""
    return sign_xades(
        xml,
        certificate=certificate,
        private_key=private_key,
        options=SigningOptions(style=style),
        signing_time=signing_time,
    )
