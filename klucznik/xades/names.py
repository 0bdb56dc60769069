"""The names of XML signatures: namespaces, algorithm URIs, the one accepted XPath, and the login file's limits."""

from __future__ import annotations

import re

import xmlsec
from cryptography.hazmat.primitives import hashes

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
DSIG_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
SIGNATURE_METHODS = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": ("rsa", hashes.SHA1, xmlsec.constants.TransformRsaSha1),
    DSIG_MORE + "rsa-sha256": ("rsa", hashes.SHA256, xmlsec.constants.TransformRsaSha256),
    DSIG_MORE + "rsa-sha384": ("rsa", hashes.SHA384, xmlsec.constants.TransformRsaSha384),
    DSIG_MORE + "rsa-sha512": ("rsa", hashes.SHA512, xmlsec.constants.TransformRsaSha512),
    DSIG_MORE + "ecdsa-sha1": ("ec", hashes.SHA1, xmlsec.constants.TransformEcdsaSha1),
    DSIG_MORE + "ecdsa-sha256": ("ec", hashes.SHA256, xmlsec.constants.TransformEcdsaSha256),
    DSIG_MORE + "ecdsa-sha384": ("ec", hashes.SHA384, xmlsec.constants.TransformEcdsaSha384),
    DSIG_MORE + "ecdsa-sha512": ("ec", hashes.SHA512, xmlsec.constants.TransformEcdsaSha512),
}
C14N_TRANSFORMS = (
    xmlsec.constants.TransformExclC14N,
    xmlsec.constants.TransformExclC14NWithComments,
    xmlsec.constants.TransformInclC14N,
    xmlsec.constants.TransformInclC14NWithComments,
    xmlsec.constants.TransformInclC14N11,
    xmlsec.constants.TransformInclC14N11WithComments,
)


def q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


DS_SIGNATURE = q(NS_DS, "Signature")
