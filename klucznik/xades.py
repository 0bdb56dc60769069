"""The KSeF login file (``AuthTokenRequest``): build it, sign it (XAdES), and check a file signed elsewhere.

Why this module is strict. The client signs the file outside the portal (a qualified signature or seal tool,
or Profil Zaufany on gov.pl) and uploads whatever the tool saved. Before the portal sends it to KSeF it
must know, from the *signed* content only, which challenge and which company the file is for and who signed
it, and it must refuse files that only look signed: a signature over part of the document, an XPath
transform that quietly leaves out the challenge, a second request next to the signed one, a DTD with
entities. The rules follow ``SIGNED-XML.md`` §5.4 and every refusal is a :class:`Problem` with a plain
Polish and English message (§6) instead of an exception.

Why python-xmlsec (libxmlsec1) verifies. signxml skips the XPath and XPath-Filter-2 transforms that Profil
Zaufany and EU DSS tools emit, so it computes the wrong digest for exactly the files accountants upload.
libxmlsec1 implements them; we whitelist the transforms ourselves *before* it runs (an XPath transform only
with the exact expression ``not(ancestor-or-self::ds:Signature)``) and read the fields from the canonical
form of what the verified reference covers ("see what is signed").

Signing uses the same library, so the portal (its own KSeF Authentication certificate) and the sandbox
(enveloped, enveloping and Profil-Zaufany-like files) share one implementation.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from functools import cache
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as DefusedET
from lxml import etree

from klucznik import nip as nip_module
from klucznik.errors import PortalError
from klucznik.errors import ValidationError

# --- names ------------------------------------------------------------------------------------------------

NS_AUTH_20 = "http://ksef.mf.gov.pl/auth/token/2.0"
NS_AUTH_21 = "http://ksef.mf.gov.pl/auth/token/2.1"
AUTH_NAMESPACES = (NS_AUTH_20, NS_AUTH_21)
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XADES = "http://uri.etsi.org/01903/v1.3.2#"
NS_XADES141 = "http://uri.etsi.org/01903/v1.4.1#"
NS_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
NS_PZ = "http://crd.gov.pl/xml/schematy/podpis_zaufany/"
NS_PPZP = "http://crd.gov.pl/xml/schematy/ppzp/"
NS_OSOBA = "http://crd.gov.pl/xml/schematy/osoba/2009/03/06/"

SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
ALG_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ALG_XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
ALG_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
ALG_BASE64 = "http://www.w3.org/2000/09/xmldsig#base64"
ALG_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ALG_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_ALGORITHMS = frozenset(
    {
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
        ALG_EXC_C14N,
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        ALG_C14N,
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    }
)
#: The only XPath expression accepted (the one Profil Zaufany emits): "everything except the signature".
XPATH_NOT_SIGNATURE = "not(ancestor-or-self::ds:Signature)"
#: The only XPath-Filter-2 expression accepted (EU DSS): subtract the signature.
FILTER2_SIGNATURE = "/descendant::ds:Signature"

MAX_BYTES = 1024 * 1024
CHALLENGE_RE = re.compile(r"\d{8}-CR-[A-F0-9]{10}-[A-F0-9]{10}-[A-F0-9]{2}")
SUBJECT_CERTIFICATE = "certificateSubject"
STYLES = ("enveloped", "enveloping")

DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": ("sha1", xmlsec.constants.TransformSha1),
    "http://www.w3.org/2001/04/xmlenc#sha256": ("sha256", xmlsec.constants.TransformSha256),
    "http://www.w3.org/2001/04/xmldsig-more#sha384": ("sha384", xmlsec.constants.TransformSha384),
    "http://www.w3.org/2001/04/xmlenc#sha512": ("sha512", xmlsec.constants.TransformSha512),
}
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
SIGNATURE_METHODS = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": ("rsa", hashes.SHA1, xmlsec.constants.TransformRsaSha1),
    _MORE + "rsa-sha256": ("rsa", hashes.SHA256, xmlsec.constants.TransformRsaSha256),
    _MORE + "rsa-sha384": ("rsa", hashes.SHA384, xmlsec.constants.TransformRsaSha384),
    _MORE + "rsa-sha512": ("rsa", hashes.SHA512, xmlsec.constants.TransformRsaSha512),
    _MORE + "ecdsa-sha1": ("ec", hashes.SHA1, xmlsec.constants.TransformEcdsaSha1),
    _MORE + "ecdsa-sha256": ("ec", hashes.SHA256, xmlsec.constants.TransformEcdsaSha256),
    _MORE + "ecdsa-sha384": ("ec", hashes.SHA384, xmlsec.constants.TransformEcdsaSha384),
    _MORE + "ecdsa-sha512": ("ec", hashes.SHA512, xmlsec.constants.TransformEcdsaSha512),
}
_C14N_TRANSFORMS = (
    xmlsec.constants.TransformExclC14N,
    xmlsec.constants.TransformExclC14NWithComments,
    xmlsec.constants.TransformInclC14N,
    xmlsec.constants.TransformInclC14NWithComments,
    xmlsec.constants.TransformInclC14N11,
    xmlsec.constants.TransformInclC14N11WithComments,
)


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


DS_SIGNATURE = _q(NS_DS, "Signature")


# --- errors, results ----------------------------------------------------------------------------------------


class XadesError(PortalError):
    """Root of this module's exceptions (building or signing refused; checks return Problems instead)."""

    code = "xades"


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


@dataclass(frozen=True)
class Problem:
    """One reason a signed file cannot be sent, in plain words."""

    code: str
    message_pl: str
    message_en: str

    def as_dict(self) -> dict[str, str]:
        """``{"code", "message_pl", "message_en"}``."""
        return {"code": self.code, "message_pl": self.message_pl, "message_en": self.message_en}


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


# --- the messages (SIGNED-XML.md §6) --------------------------------------------------------------------------

_WRAPPING = (
    "Podpis nie obejmuje całego dokumentu lub plik zawiera kilka podpisów. "
    "Podpisz ponownie pobrany plik jednym podpisem.",
    "The signature does not cover the whole document or the file has several signatures. "
    "Sign the downloaded file again with one signature.",
)
MESSAGES: dict[str, tuple[str, str]] = {
    "not_xml": (
        "To nie jest plik XML. Podpisz plik AuthTokenRequest.xml w formacie XAdES (nie PDF).",
        "This is not an XML file. Sign the AuthTokenRequest.xml file in XAdES format (not PDF).",
    ),
    "encoding": (
        "Plik ma nieobsługiwane kodowanie znaków. Wgraj plik zapisany przez program do podpisu bez zmian (UTF-8).",
        "Unsupported character encoding. Upload the file exactly as the signing tool saved it (UTF-8).",
    ),
    "too_large": (
        "Plik jest za duży (maks. {n} MB).",
        "The file is too large (max {n} MB).",
    ),
    "dtd_forbidden": (
        "Plik zawiera niedozwoloną deklarację DTD.",
        "The file contains a forbidden DTD declaration.",
    ),
    "wrong_root": (
        "To nie jest plik logowania do KSeF wygenerowany przez ten portal.",
        "This is not the KSeF login file generated by this portal.",
    ),
    "not_signed": (
        "Plik nie zawiera podpisu. Podpisz pobrany plik profilem zaufanym lub podpisem kwalifikowanym "
        "i wgraj plik podpisany.",
        "The file is not signed. Sign the downloaded file with Profil Zaufany or a qualified signature "
        "and upload the signed file.",
    ),
    "detached_signature": (
        "Wgrano podpis zewnętrzny (osobny plik). KSeF go nie przyjmuje. Podpisz ponownie, wybierając podpis "
        "wewnętrzny (otoczony) w formacie XAdES.",
        "This is a detached (external) signature. KSeF does not accept it. Sign again choosing an internal "
        "(enveloped) XAdES signature.",
    ),
    "multiple_signatures": _WRAPPING,
    "unexpected_transform": _WRAPPING,
    "partial_reference": _WRAPPING,
    "bad_signature": (
        "Treść pliku zmieniono po podpisaniu, więc podpis jest nieważny. Nie edytuj pliku — podpisz ponownie "
        "świeżo pobrany plik.",
        "The file was changed after signing, so the signature is invalid. Do not edit the file — sign a freshly "
        "downloaded one.",
    ),
    "bad_signature_resaved": (
        "Plik został zmieniony po podpisaniu (np. otwarty i zapisany w edytorze). Nie otwieraj pliku — wgraj "
        "dokładnie to, co zapisał program do podpisu.",
        "The file was modified after signing (e.g. opened and saved in an editor). Do not open it — upload "
        "exactly what the signing tool saved.",
    ),
    "challenge_mismatch": (
        "Ten plik dotyczy innej próby logowania. Pobierz plik ponownie z tej strony, podpisz go i wgraj.",
        "This file belongs to a different login attempt. Download the file again from this page, sign it "
        "and upload it.",
    ),
    "nip_mismatch": (
        "Podpisany plik dotyczy innej firmy (NIP {x}) niż wybrana ({y}).",
        "The signed file is for a different company (NIP {x}) than the one selected ({y}).",
    ),
    "challenge_expired": (
        "Minęło ponad 10 minut od pobrania pliku — KSeF już go nie przyjmie. Pobierz nowy plik i podpisz go "
        "od razu.",
        "More than 10 minutes have passed since the download — KSeF will no longer accept it. Download a new "
        "file and sign it right away.",
    ),
    "schema_invalid": (
        "Plik logowania ma budowę niezgodną ze schematem KSeF, więc KSeF go odrzuci. Pobierz plik ponownie "
        "z tej strony i podpisz go bez zmian.",
        "The login file does not match the KSeF schema, so KSeF would reject it. Download the file again "
        "from this page and sign it without changes.",
    ),
}
#: The codes a check can report (the CLI contract).
PROBLEM_CODES = (
    "not_xml",
    "too_large",
    "dtd_forbidden",
    "wrong_root",
    "not_signed",
    "detached_signature",
    "multiple_signatures",
    "unexpected_transform",
    "partial_reference",
    "bad_signature",
    "challenge_mismatch",
    "nip_mismatch",
    "challenge_expired",
    "schema_invalid",
)


def problem(code: str, *, variant: str | None = None, **values: object) -> Problem:
    """The :class:`Problem` for ``code`` (``variant`` picks another wording for the same code)."""
    pl, en = MESSAGES[variant or code]
    return Problem(code, pl.format(**values), en.format(**values))


# --- the official schema ------------------------------------------------------------------------------------

#: The official ``schemat_auth_v2-1.xsd`` from the KSeF documentation, shipped unchanged (the 2.0 file does not
#: compile in lxml; 2.1 describes the same document in its own namespace).
XSD_PATH = Path(__file__).resolve().parent / "schemas" / "schemat_auth_v2-1.xsd"


def _parser() -> etree.XMLParser:
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


@cache
def _schema() -> etree.XMLSchema:
    """The compiled official schema (read once)."""
    return etree.XMLSchema(etree.parse(str(XSD_PATH), _parser()))


def schema_errors(request: etree._Element) -> list[str]:
    """Validate an AuthTokenRequest (2.0 or 2.1 namespace, without its ds:Signature) against the 2.1 XSD.

    The 2.0 and 2.1 schemas differ only in the namespace and the IP patterns of the optional policy, so a
    2.0 document is checked with its elements renamed into the 2.1 namespace (on a copy).
    """
    copy = etree.fromstring(etree.tostring(request), _parser())
    for sig in copy.findall(DS_SIGNATURE):
        copy.remove(sig)
    for el in copy.iter(etree.Element):
        qname = etree.QName(el)
        if qname.namespace == NS_AUTH_20:
            el.tag = _q(NS_AUTH_21, qname.localname)
    etree.cleanup_namespaces(copy)
    schema = _schema()
    if schema.validate(copy):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


# --- building the file to sign ---------------------------------------------------------------------------------


def build_auth_token_request(*, challenge: str, nip: str) -> bytes:
    """The unsigned AuthTokenRequest (namespace 2.0) for ``nip``, subject type certificateSubject, XSD-valid."""
    if not isinstance(challenge, str) or not CHALLENGE_RE.fullmatch(challenge):
        raise ValidationError(
            "KSeF zwrócił wyzwanie w nieznanym formacie; spróbuj ponownie za chwilę.",
            "KSeF returned a challenge in an unknown format; try again in a moment.",
            field="challenge",
            code="challenge_invalid",
        )
    nip = nip_module.normalize(nip)
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
    errors = schema_errors(etree.fromstring(data, _parser()))
    if errors:  # cannot happen for a valid challenge and NIP; kept as a guard against schema drift
        raise XadesError(
            "Nie udało się zbudować pliku logowania.",
            "Could not build the login file.",
            code="schema_invalid",
        )
    return data


# --- signing ------------------------------------------------------------------------------------------------------


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
        return _MORE + "rsa-sha256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return {256: _MORE + "ecdsa-sha256", 384: _MORE + "ecdsa-sha384"}.get(
            private_key.curve.key_size, _MORE + "ecdsa-sha512"
        )
    raise XadesError(
        "Ten rodzaj klucza nie nadaje się do podpisu XAdES (potrzebny RSA lub EC).",
        "This kind of key cannot make a XAdES signature (RSA or EC needed).",
        code="key_unsupported",
    )


def _sub(
    parent: etree._Element, ns: str, local: str, text: str | None = None, **attrs: str
) -> etree._Element:
    el = etree.SubElement(parent, _q(ns, local), **attrs)
    if text is not None:
        el.text = text
    return el


def _xades_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


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
            t = etree.Element(_q(NS_DS, "Transform"), Algorithm=ALG_XPATH, nsmap={"ds": NS_DS})
            _sub(t, NS_DS, "XPath", options.xpath_expression)
            items.append(t)
        elif options.data_transform == "filter2":
            t = etree.Element(_q(NS_DS, "Transform"), Algorithm=ALG_FILTER2, nsmap={"ds": NS_DS})
            x = etree.SubElement(
                t, _q(NS_FILTER2, "XPath"), Filter="subtract", nsmap={"dsig-xpath": NS_FILTER2, "ds": NS_DS}
            )
            x.text = FILTER2_SIGNATURE
            items.append(t)
        elif options.data_transform != "none":
            raise XadesError(
                "Nieznane przekształcenie podpisu.",
                "Unknown signature transform.",
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
            "Nieznany rodzaj podpisu (dozwolone: otoczony, otaczający).",
            "Unknown signature style (allowed: enveloped, enveloping).",
            code="style_unsupported",
        )
    signing_time = signing_time or datetime.now(UTC)
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
            data_object.append(etree.fromstring(xml, _parser()))

    qp_object = _sub(sig, NS_DS, "Object")
    qp = etree.SubElement(
        qp_object, _q(NS_XADES, "QualifyingProperties"), Target=f"#{sig_id}", nsmap={"xades": NS_XADES}
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
        role.append(etree.fromstring(etree.tostring(options.claimed_role), _parser()))

    if options.style == "enveloped":
        root = etree.fromstring(xml, _parser())
        root.append(sig)
        tree_root = root
    else:
        tree_root = sig
    # ids are registered on the final tree, so serialise and re-parse the template first (stable namespaces)
    tree_root = etree.fromstring(etree.tostring(tree_root), _parser())
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
            "Nie udało się podpisać pliku.", f"Signing failed: {exc}", code="sign_failed"
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


# --- checking ----------------------------------------------------------------------------------------------------


class _Refusal(Exception):
    """Internal: stop the check with this problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.code)
        self.problem = problem


def _refuse(code: str, *, variant: str | None = None, **values: object) -> _Refusal:
    return _Refusal(problem(code, variant=variant, **values))


_XML_DECL_RE = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


def _gate_bytes(data: bytes) -> bytes:
    """Size, magic bytes and encoding; returns the bytes to parse and forward (a UTF-8 BOM removed)."""
    if len(data) > MAX_BYTES:
        raise _refuse("too_large", n=MAX_BYTES // (1024 * 1024))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise _refuse("not_xml")
    if data.startswith((b"%PDF", b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"\x1f\x8b", b"Rar!", b"7z")):
        raise _refuse("not_xml")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:200]:
        raise _refuse("not_xml", variant="encoding")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("not_xml", variant="encoding") from None
    declared = _XML_DECL_RE.match(data)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise _refuse("not_xml", variant="encoding")
    if not data.lstrip().startswith(b"<"):
        raise _refuse("not_xml")
    return data


def _parse(data: bytes) -> etree._Element:
    """defusedxml pre-screen (no DTD, no entities, no external references), then the hardened lxml parse."""
    try:
        DefusedET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise _refuse("dtd_forbidden") from None
    except DefusedET.ParseError:
        raise _refuse("not_xml") from None
    try:
        tree = etree.fromstring(data, _parser()).getroottree()
    except etree.XMLSyntaxError:
        raise _refuse("not_xml") from None
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise _refuse("dtd_forbidden")
    root = tree.getroot()
    for el in root.iter():
        if isinstance(el, etree._Entity):
            raise _refuse("dtd_forbidden")
    return root


def _text(el: etree._Element | None) -> str | None:
    """All text of ``el`` (comments skipped): ``<Challenge><!--x-->2025…</Challenge>`` still reads right."""
    if el is None:
        return None
    return "".join(t for t in el.itertext(etree.Element))


def _is_request(el: etree._Element) -> bool:
    qname = etree.QName(el)
    return qname.localname == "AuthTokenRequest" and qname.namespace in AUTH_NAMESPACES


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
    return ref.findall(f"{_q(NS_DS, 'Transforms')}/{_q(NS_DS, 'Transform')}")


def _xpath_transform_ok(transform: etree._Element) -> bool:
    children = [c for c in transform if isinstance(c.tag, str)]
    if len(children) != 1 or children[0].tag != _q(NS_DS, "XPath"):
        return False
    xpath = children[0]
    return (
        (_text(xpath) or "").strip() == XPATH_NOT_SIGNATURE
        and xpath.nsmap.get("ds") == NS_DS
        and not len(xpath)
    )


def _filter2_transform_ok(transform: etree._Element) -> bool:
    children = [c for c in transform if isinstance(c.tag, str)]
    if len(children) != 1 or children[0].tag != _q(NS_FILTER2, "XPath"):
        return False
    xpath = children[0]
    return (
        xpath.get("Filter") == "subtract"
        and (_text(xpath) or "").strip() == FILTER2_SIGNATURE
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
        raise _refuse("unexpected_transform")
    return is_base64


def _check_other_transforms(ref: etree._Element) -> None:
    for transform in _transforms(ref):
        if transform.get("Algorithm") not in C14N_ALGORITHMS:
            raise _refuse("unexpected_transform")


def _structure(root: etree._Element) -> _Shape:
    """Root, signature count and place, references and transforms (SIGNED-XML.md §5.4 steps 4–6)."""
    signatures = list(root.iter(DS_SIGNATURE))
    if root.tag == DS_SIGNATURE:
        style = "enveloping"
        signature = root
    elif _is_request(root):
        style = "enveloped"
        if not signatures:
            raise _refuse("not_signed")
        signature = signatures[0]
    else:
        raise _refuse("wrong_root")
    if len(signatures) > 1:
        raise _refuse("multiple_signatures")
    if sum(1 for el in root.iter(etree.Element) if etree.QName(el).localname == "AuthTokenRequest") > 1:
        raise _refuse("partial_reference")  # a second request next to the signed one: classic wrapping
    if style == "enveloped" and signature.getparent() is not root:
        raise _refuse("partial_reference")

    ids: dict[str, etree._Element] = {}
    for el in root.iter(etree.Element):
        for attr in ("Id", "ID", "id"):
            value = el.get(attr)
            if value is not None:
                if value in ids:  # duplicate ids are how wrapping attacks pick "the other" element
                    raise _refuse("partial_reference")
                ids[value] = el

    signed_info = signature.find(_q(NS_DS, "SignedInfo"))
    if signed_info is None:
        raise _refuse("not_signed")
    references = signed_info.findall(_q(NS_DS, "Reference"))
    if not references:
        raise _refuse("not_signed")

    data_refs: list[etree._Element] = []
    signed_properties = None
    for ref in references:
        uri = ref.get("URI")
        if uri is None or (uri and not uri.startswith("#")):
            raise _refuse("detached_signature")
        target = ids.get(uri[1:]) if uri else None
        if uri and target is None:
            raise _refuse("partial_reference")
        if ref.get("Type") == SIGNED_PROPERTIES_TYPE:
            if (
                signed_properties is not None
                or target is None
                or target.tag != _q(NS_XADES, "SignedProperties")
            ):
                raise _refuse("partial_reference")
            if not _inside(target, signature):
                raise _refuse("partial_reference")
            _check_other_transforms(ref)
            signed_properties = target
        elif target is not None and _inside(target, signature) and target.tag != _q(NS_DS, "Object"):
            _check_other_transforms(ref)  # e.g. a reference to KeyInfo: covers nothing of the request
        else:
            data_refs.append(ref)
    if len(data_refs) != 1:
        raise _refuse("partial_reference")
    data_ref = data_refs[0]
    uri = data_ref.get("URI")
    if style == "enveloped":
        if uri != "":
            raise _refuse("partial_reference")
        _check_data_transforms(data_ref, style)
        return _Shape(root, signature, style, data_ref, signed_properties, request=root, ids=ids)

    # enveloping: the data reference points at a ds:Object of this signature holding exactly the request
    target = ids.get(uri[1:]) if uri else None
    if target is None or target.tag != _q(NS_DS, "Object") or target.getparent() is not signature:
        raise _refuse("partial_reference")
    is_base64 = _check_data_transforms(data_ref, style)
    children = [c for c in target if isinstance(c.tag, str)]
    if is_base64:
        if children:
            raise _refuse("partial_reference")
        try:
            inner = base64.b64decode("".join((target.text or "").split()), validate=True)
        except ValueError:
            raise _refuse("not_xml") from None
        return _Shape(root, signature, style, data_ref, signed_properties, base64_request=inner, ids=ids)
    if len(children) != 1 or (target.text or "").strip() or (children[0].tail or "").strip():
        raise _refuse("partial_reference")
    if not _is_request(children[0]):
        raise _refuse("wrong_root")
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
        f"{_q(NS_DS, 'KeyInfo')}/{_q(NS_DS, 'X509Data')}/{_q(NS_DS, 'X509Certificate')}"
    ):
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode("".join((el.text or "").split()))))
        except ValueError:
            continue
    return certs


def _signing_certificate(shape: _Shape, certs: list[x509.Certificate]) -> x509.Certificate:
    """The embedded certificate named by SigningCertificate(V2)/CertDigest, else the only/first one."""
    if not certs:
        raise _refuse("bad_signature")
    digests = []
    if shape.signed_properties is not None:
        for name in ("SigningCertificate", "SigningCertificateV2"):
            for cert_el in shape.signed_properties.iter(_q(NS_XADES, name)):
                for digest_el in cert_el.iter(_q(NS_XADES, "CertDigest")):
                    method = digest_el.find(_q(NS_DS, "DigestMethod"))
                    value = digest_el.find(_q(NS_DS, "DigestValue"))
                    if method is not None and value is not None:
                        digests.append((method.get("Algorithm"), _text(value) or ""))
    if not digests:
        return certs[0]
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        for alg, value in digests:
            name = DIGESTS.get(alg, (None,))[0]
            if name and base64.b64encode(hashlib.new(name, der).digest()).decode() == "".join(value.split()):
                return cert
    raise _refuse("bad_signature")  # SigningCertificate names a certificate that is not the one embedded


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
            *_C14N_TRANSFORMS,
            xmlsec.constants.TransformEnveloped,
            xmlsec.constants.TransformXPath,
            xmlsec.constants.TransformXPath2,
            *(d[1] for d in DIGESTS.values()),
        ):
            ctx.enable_reference_transform(transform)
    for transform in (*_C14N_TRANSFORMS, *(m[2] for m in SIGNATURE_METHODS.values())):
        ctx.enable_signature_transform(transform)
    try:
        ctx.verify(shape.signature)
    except xmlsec.Error:
        variant = "bad_signature" if _signed_info_valid(shape.signature, cert) else "bad_signature_resaved"
        raise _refuse("bad_signature", variant=variant) from None


def _signed_info_valid(signature: etree._Element, cert: x509.Certificate) -> bool:
    """Diagnosis only (the verdict is libxmlsec1's): does SignatureValue match SignedInfo?

    True means the signature itself is intact and a reference digest failed (the content was edited);
    False means SignedInfo changed too (typically an editor re-saved or re-indented the file).
    """
    try:
        signed_info = signature.find(_q(NS_DS, "SignedInfo"))
        c14n = signed_info.find(_q(NS_DS, "CanonicalizationMethod")).get("Algorithm")
        kind, hash_cls, _ = SIGNATURE_METHODS[signed_info.find(_q(NS_DS, "SignatureMethod")).get("Algorithm")]
        exclusive = c14n.startswith("http://www.w3.org/2001/10/xml-exc-c14n")
        if "c14n11" in c14n:
            return False
        data = etree.tostring(
            signed_info, method="c14n", exclusive=exclusive, with_comments=c14n.endswith("Comments")
        )
        value = base64.b64decode("".join((_text(signature.find(_q(NS_DS, "SignatureValue"))) or "").split()))
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
        inner = _parse(_gate_bytes(shape.base64_request))
        if not _is_request(inner):
            raise _refuse("wrong_root")
        if any(
            etree.QName(el).localname in ("AuthTokenRequest", "Signature") for el in inner.iterdescendants()
        ):
            raise _refuse("partial_reference")
        source = inner
    else:
        source = etree.fromstring(etree.tostring(shape.request), _parser())
    for sig in source.findall(DS_SIGNATURE):
        source.remove(sig)
    canonical = etree.tostring(source, method="c14n", exclusive=False, with_comments=False)
    return etree.fromstring(canonical, _parser()), canonical


def _signing_time(signed_properties: etree._Element | None) -> datetime | None:
    if signed_properties is None:
        return None
    el = signed_properties.find(f".//{_q(NS_XADES, 'SigningTime')}")
    text = (_text(el) or "").strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def mask_pesel(pesel: str) -> str:
    """``88102341294`` → ``*******1294`` (enough to recognise, not enough to reuse)."""
    return "*" * (len(pesel) - 4) + pesel[-4:]


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _signer_from_claimed_role(signed_properties: etree._Element | None) -> Signer | None:
    """Profil Zaufany: the person is in the signed ClaimedRole (EPSignature, or the older PodpisZP)."""
    if signed_properties is None:
        return None
    ep = signed_properties.find(f".//{_q(NS_XADES, 'ClaimedRole')}/{_q(NS_PZ, 'EPSignature')}")
    if ep is not None:
        person = ep.find(_q(NS_PZ, "NaturalPerson"))
        first = _text(person.find(_q(NS_PZ, "FirstName"))) if person is not None else None
        last = _text(person.find(_q(NS_PZ, "CurrentFamilyName"))) if person is not None else None
        pesel = _text(person.find(_q(NS_PZ, "PersonalIdentifier"))) if person is not None else None
        return _person("trusted_profile", first, last, pesel)
    zp = signed_properties.find(f".//{_q(NS_XADES, 'ClaimedRole')}/{_q(NS_PPZP, 'PodpisZP')}")
    if zp is not None:
        person = zp.find(f".//{_q(NS_PPZP, 'DaneZPOsobyFizycznej')}")
        first = _text(person.find(_q(NS_OSOBA, "Imie"))) if person is not None else None
        last = _text(person.find(_q(NS_OSOBA, "Nazwisko"))) if person is not None else None
        pesel = _text(person.find(_q(NS_OSOBA, "PESEL"))) if person is not None else None
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
        kind=kind, nip=nip, pesel=pesel, pesel_masked=mask_pesel(pesel) if pesel else None, name=name
    )


_PESEL_RE = re.compile(r"(?:PNOPL|PESEL).*?(\d{11})")
_NIP_PERSON_RE = re.compile(r"(?:TINPL|NIP).*?(\d{10})")
_VATPL_RE = re.compile(r"VATPL.*?(\d{10})")


#: The NIP of the Ministry whose qualified seal signs every Profil Zaufany document.
TRUSTED_PROFILE_SEAL_NIP = "5252955037"


def _is_trusted_profile_seal(cert: x509.Certificate) -> bool:
    """True for the seal gov.pl applies to Profil Zaufany signatures (the only signer whose claimed role counts).

    Anyone can write a claimed role into their own signature; believing it from an ordinary seal would let
    a company's seal pose as a person. Only the Ministry's Profil Zaufany seal vouches for it.
    """
    org_id = _attr(cert.subject, NameOID.ORGANIZATION_IDENTIFIER) or ""
    common = (_attr(cert.subject, NameOID.COMMON_NAME) or "").lower()
    return (
        org_id.endswith(TRUSTED_PROFILE_SEAL_NIP)
        or "podpisu zaufanego" in common
        or "podpis zaufany" in common
    )


def signer_from_certificate(cert: x509.Certificate) -> Signer:
    """A qualified certificate's subject: seal (organizationIdentifier VATPL-…) or person (serialNumber …)."""
    subject = cert.subject
    given = _attr(subject, NameOID.GIVEN_NAME)
    surname = _attr(subject, NameOID.SURNAME)
    serial = _attr(subject, NameOID.SERIAL_NUMBER) or ""
    org_id = _attr(subject, NameOID.ORGANIZATION_IDENTIFIER) or ""
    common = _attr(subject, NameOID.COMMON_NAME)
    org = _attr(subject, NameOID.ORGANIZATION_NAME)
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


def check_signed_request(
    data: bytes,
    *,
    challenge: str | None,
    nip: str | None,
    at: datetime,
    challenge_expires_at: datetime | None = None,
) -> CheckResult:
    """Check an uploaded signed AuthTokenRequest (SIGNED-XML.md §5.4); never raises for bad input.

    ``challenge``/``nip`` = what the portal issued (``None``: do not compare); ``challenge_expires_at`` with
    ``at`` decides expiry. The result's fields come only from what the verified signature covers.
    """
    try:
        payload = _gate_bytes(bytes(data))
        root = _parse(payload)
        shape = _structure(root)
        cert = _signing_certificate(shape, _embedded_certificates(shape.signature))
        _verify_crypto(shape, cert)
        request, canonical = _verified_request(shape)
    except _Refusal as refusal:
        return CheckResult(ok=False, signer=None, problems=(refusal.problem,))

    signer = signer_from_certificate(cert)
    claimed = _signer_from_claimed_role(shape.signed_properties)
    if claimed is not None and (
        _is_trusted_profile_seal(cert) or (claimed.pesel and claimed.pesel == signer.pesel)
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
    got_challenge = (_text(request.find(_q(ns, "Challenge"))) or "").strip()
    context = request.find(_q(ns, "ContextIdentifier"))
    got_nip_el = context.find(_q(ns, "Nip")) if context is not None else None
    got_nip = (_text(got_nip_el) or "").strip() if got_nip_el is not None else None
    subject_type = (_text(request.find(_q(ns, "SubjectIdentifierType"))) or "").strip()
    result = replace(base, challenge=got_challenge, nip=got_nip, subject_type=subject_type)

    problems: list[Problem] = []
    comparing = challenge is not None or nip is not None
    if comparing and (
        subject_type != SUBJECT_CERTIFICATE or request.find(_q(ns, "AuthorizationPolicy")) is not None
    ):
        problems.append(problem("wrong_root"))  # a valid file, but not one this portal generates
    if challenge is not None and got_challenge != challenge:
        problems.append(problem("challenge_mismatch"))
    if nip is not None:
        expected = nip_module.normalize(nip)
        if got_nip != expected:
            shown = (
                got_nip or (_text(context[0]) or "").strip() if context is not None and len(context) else None
            )
            problems.append(
                problem(
                    "nip_mismatch", x=nip_module.format_nip(shown or "?"), y=nip_module.format_nip(expected)
                )
            )
    if challenge_expires_at is not None and at >= challenge_expires_at:
        problems.append(problem("challenge_expired"))
    return replace(result, ok=not problems, problems=tuple(problems))
