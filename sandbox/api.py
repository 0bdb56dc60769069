"""The sandbox's ``/v2`` API: the paths, field names, status codes and error shapes of KSeF 2.0.

Views are thin: authenticate the bearer token, validate the input against the official OpenAPI document
(400/21405 like KSeF), call :class:`sandbox.state.SandboxState`, and answer in KSeF's shape. Errors come
in both of KSeF's formats: the legacy ``ExceptionResponse`` by default, ``application/problem+json`` when
the request says ``X-Error-Format: problem-details``; 401, 403 and 410 are always Problem Details.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import secrets
from datetime import UTC
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from flask import Blueprint
from flask import current_app
from flask import g
from flask import jsonify
from flask import request
from lxml import etree

from klucznik import xades
from sandbox import ca
from sandbox.spec import request_problems
from sandbox.state import Identity
from sandbox.state import Person
from sandbox.state import SandboxError
from sandbox.state import SandboxState
from sandbox.state import Unauthorized
from sandbox.state import ip_allowed

bp = Blueprint("ksef_api", __name__, url_prefix="/v2")


@bp.before_request
def documented_methods_only():
    """Only the methods the document lists for a path: ``OPTIONS`` lists them, any other answers 405.

    Flask alone would go by its own routes, and ``GET /auth/challenge`` would reach the route
    ``/auth/{referenceNumber}``.
    """
    if request.method == "HEAD":
        return None
    from sandbox.spec import documented_methods

    allowed = documented_methods(request.path.removeprefix("/v2"))
    if not allowed or (request.method in allowed):
        return None
    response = current_app.response_class(status=204 if request.method == "OPTIONS" else 405)
    response.headers["Allow"] = ", ".join(allowed)
    return response


@bp.after_request
def system_warning(response):
    """``X-System-Warning`` on a successful answer: as on TEST, the request's ``X-Test-System-Warning``
    comes back; otherwise a warning a test set for the endpoint (``/_sandbox/warnings``)."""
    if response.status_code >= 400:
        return response
    warning = request.headers.get("X-Test-System-Warning")
    if not warning and request.url_rule is not None:
        from sandbox import endpoint_name

        warning = state().system_warnings.get(endpoint_name(request.method, request.url_rule.rule))
    if warning:
        response.headers["X-System-Warning"] = warning
    return response


AUTH_DESCRIPTIONS = {
    100: "Uwierzytelnianie w toku",
    200: "Uwierzytelnianie zakończone sukcesem",
    415: "Uwierzytelnianie zakończone niepowodzeniem",
    425: "Uwierzytelnienie unieważnione",
    450: "Uwierzytelnianie zakończone niepowodzeniem z powodu błędnego tokenu",
    460: "Uwierzytelnianie zakończone niepowodzeniem z powodu błędu certyfikatu",
    470: "Uwierzytelnianie zakończone niepowodzeniem",
    480: "Uwierzytelnienie zablokowane",
    500: "Nieznany błąd",
}
OPERATION_DESCRIPTIONS = {
    100: "Operacja przyjęta do realizacji",
    200: "Operacja zakończona sukcesem",
    400: "Operacja zakończona niepowodzeniem",
}
ENROLLMENT_DESCRIPTIONS = {
    100: "Wniosek przyjęty do realizacji",
    200: "Wniosek obsłużony (certyfikat wygenerowany)",
    400: "Wniosek odrzucony",
}
METHODS = {  # (authenticationMethod, info code, display name)
    "seal": ("QualifiedSeal", "xades.qualified-seal", "Pieczęć kwalifikowana"),
    "person": ("QualifiedSignature", "xades.qualified-signature", "Podpis kwalifikowany"),
    "trusted_profile": ("TrustedProfile", "xades.trusted-profile", "Profil Zaufany"),
    "internal": ("InternalCertificate", "xades.internal-certificate", "Certyfikat KSeF"),
    "self_signed": ("PersonalSignature", "xades.personal-signature", "Podpis osobisty"),
}
# klucznik.xades problem codes -> (KSeF code, description, details)
XADES_CODES = {
    "not_xml": (21001, "Nieczytelna treść.", []),
    "encoding": (21217, "Nieprawidłowe kodowanie znaków.", []),
    "too_large": (21001, "Nieczytelna treść.", ["Dokument jest zbyt duży."]),
    "dtd_forbidden": (9101, "Nieprawidłowy dokument.", []),
    "wrong_root": (9101, "Nieprawidłowy dokument.", []),
    "not_signed": (9102, "Brak podpisu.", []),
    "detached_signature": (
        9105,
        "Nieprawidłowy podpis.",
        ["Format podpisu niezgodny z akceptowanymi profilami XAdES."],
    ),
    "multiple_signatures": (9103, "Przekroczona liczba dozwolonych podpisów.", []),
    "unexpected_transform": (
        9105,
        "Nieprawidłowy podpis.",
        ["Format podpisu niezgodny z akceptowanymi profilami XAdES."],
    ),
    "partial_reference": (
        9105,
        "Nieprawidłowy podpis.",
        ["Format podpisu niezgodny z akceptowanymi profilami XAdES."],
    ),
    "bad_signature": (9105, "Nieprawidłowy podpis.", ["Podpis zweryfikowany negatywnie."]),
    "schema_invalid": (21401, "Dokument nie jest zgodny ze schemą (xsd).", []),
}


def state() -> SandboxState:
    """The sandbox state of the current app."""
    return current_app.extensions["ksef_sandbox"]


def iso(moment: datetime | None) -> str | None:
    """A datetime as ISO 8601 UTC with ``Z`` (``None`` stays ``None``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


# -- error answers ----------------------------------------------------------------------------------


def _problem_wanted() -> bool:
    return request.headers.get("X-Error-Format", "").lower() == "problem-details"


def _trace() -> str:
    return secrets.token_hex(16)


def bad_request(code: int, description: str, details: list[str] | None = None):
    """A 400 in the format the request asked for."""
    now = iso(state().now())
    if _problem_wanted():
        body = {
            "title": "Bad Request",
            "status": 400,
            "instance": request.path,
            "detail": description,
            "errors": [{"code": code, "description": description, "details": details or None}],
            "timestamp": now,
            "traceId": _trace(),
        }
        response = jsonify(body)
        response.mimetype = "application/problem+json"
    else:
        response = jsonify(
            {
                "exception": {
                    "exceptionDetailList": [
                        {
                            "exceptionCode": code,
                            "exceptionDescription": description,
                            "details": details or None,
                        }
                    ],
                    "serviceCode": f"00-{_trace()}-{secrets.token_hex(8)}-00",
                    "serviceCtx": "srvSANDBOX",
                    "serviceName": "Klucznik sandbox",
                    "timestamp": now,
                }
            }
        )
    response.status_code = 400
    return response


def _problem(status: int, title: str, detail: str, **extra):
    body = {
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "timestamp": iso(state().now()),
        "traceId": _trace(),
        **extra,
    }
    response = jsonify(body)
    response.mimetype = "application/problem+json"
    response.status_code = status
    return response


def unauthorized(detail: str = "Brak lub nieprawidłowy token uwierzytelniający."):
    """A 401 Problem Details answer."""
    return _problem(401, "Unauthorized", detail)


def forbidden(present: set[str], required: list[str]):
    """A 403 ``missing-permissions`` answer."""
    return _problem(
        403,
        "Forbidden",
        "Brak wymaganych uprawnień do wykonania operacji w bieżącym kontekście.",
        reasonCode="missing-permissions",
        security={"requiredAnyOfPermissions": required, "presentPermissions": sorted(present)},
    )


def gone():
    """A 410 Problem Details answer (past the retention period)."""
    return _problem(410, "Gone", "Operacja nie jest już dostępna (minął okres przechowywania).")


def from_error(error: SandboxError):
    """The answer for a :class:`SandboxError`."""
    if error.http == 410:
        return gone()
    return bad_request(error.code, error.description, error.details)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


def authenticated(*kinds: str):
    """Require a bearer token of ``kinds``; puts ``g.token`` and ``g.auth``; validates the input."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                g.token, g.auth = state().token(_bearer(), *kinds)
            except Unauthorized:
                return unauthorized()
            client_ip = request.remote_addr or ""
            if g.token.kind == "access" and not ip_allowed(client_ip, g.auth.allowed_ips):
                return _problem(
                    403,
                    "Forbidden",
                    "Żądanie pochodzi z adresu IP innego niż wskazany podczas uwierzytelnienia.",
                    reasonCode="ip-not-allowed",
                    security={"clientIp": client_ip},
                )
            problems = request_problems(request)
            if problems:
                return bad_request(21405, "Błąd walidacji danych wejściowych.", problems)
            return _answer(view, *args, **kwargs)

        return wrapper

    return decorator


def public(view):
    """An endpoint without authentication; validates the input."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        problems = request_problems(request)
        if problems:
            return bad_request(21405, "Błąd walidacji danych wejściowych.", problems)
        return _answer(view, *args, **kwargs)

    return wrapper


def _answer(view, *args, **kwargs):
    """The view's answer; a refusal in KSeF's shape; 21405 for a body that lacks what the view needs.

    The document makes most request bodies optional, so a request without one passes the validator.
    """
    try:
        return view(*args, **kwargs)
    except SandboxError as error:
        return from_error(error)
    except (KeyError, TypeError, ValueError) as error:
        return bad_request(
            21405, "Błąd walidacji danych wejściowych.", [f"Brak lub błędna wartość pola: {error}"]
        )


def _body() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _require(permissions: set[str], *required: str):
    """``None`` if the caller holds Owner or one of ``required`` in its context, else the 403 answer."""
    if "Owner" in permissions or permissions & set(required):
        return None
    return forbidden(permissions, list(required))


def _caller_permissions() -> set[str]:
    return state().permissions_in(g.auth.context_nip, g.auth.identity)


# -- authentication ---------------------------------------------------------------------------------


@bp.post("/auth/challenge")
@public
def challenge():
    """``POST /auth/challenge``."""
    value, created = state().new_challenge()
    return jsonify(
        {
            "challenge": value,
            "timestamp": iso(created),
            "timestampMs": int(created.timestamp() * 1000),
            "clientIp": request.remote_addr or "127.0.0.1",
        }
    )


def _xades_refusal(result: xades.CheckResult):
    code = result.problems[0].code if result.problems else "bad_signature"
    ksef_code, description, details = XADES_CODES.get(code, (9101, "Nieprawidłowy dokument.", []))
    return bad_request(
        ksef_code, description, details or [result.problems[0].message_pl] if result.problems else []
    )


def _identity_of(result: xades.CheckResult) -> Identity | None:
    signer = result.signer
    if result.subject_type == "certificateFingerprint" and result.certificate is not None:
        return Identity("Fingerprint", result.certificate.fingerprint(hashes.SHA256()).hex().upper())
    if signer is None:
        return None
    if signer.kind == "seal" and signer.nip:
        return Identity("Nip", signer.nip)
    if signer.pesel:
        return Identity("Pesel", signer.pesel)
    if signer.nip:
        return Identity("Nip", signer.nip)
    return None


def _allowed_ips(result: xades.CheckResult) -> tuple[str, ...]:
    """The AuthorizationPolicy/AllowedIps of the verified request (Ip4Address, Ip4Range, Ip4Mask)."""
    if not result.signed_content:
        return ()
    root = etree.fromstring(
        result.signed_content, parser=etree.XMLParser(resolve_entities=False, no_network=True)
    )
    found = root.xpath(
        "//*[local-name()='AllowedIps']/*[local-name()='Ip4Address' or local-name()='Ip4Range' "
        "or local-name()='Ip4Mask']"
    )
    return tuple((el.text or "").strip() for el in found if (el.text or "").strip())


def _trusted_profile_attributes(signer: xades.Signer) -> dict[str, str]:
    given, _, surname = (signer.name or "").partition(" ")
    data = {
        "commonName": signer.name or "Osoba",
        "countryName": "PL",
        "serialNumber": f"PNOPL-{signer.pesel}",
    }
    if given:
        data["givenName"] = given
    if surname:
        data["surname"] = surname
    return data


def _judge_certificate(result: xades.CheckResult, verify_chain: bool):
    """(method key, failure or None, identity, subject attributes, serial) for a verified signature."""
    from sandbox.state import subject_attributes_from_certificate

    st = state()
    cert = result.certificate
    now = st.now()
    identity = _identity_of(result)
    attributes = subject_attributes_from_certificate(cert)
    issued = st.certificate_for(cert)
    if issued is not None:
        failure = None
        status = issued.status_at(now)
        if status == "Revoked":
            failure = (460, ["Certyfikat odwołany"])
        elif status != "Active" or cert.not_valid_before_utc > now:
            failure = (460, ["Nieważny certyfikat"])
        elif issued.certificate_type != "Authentication":
            failure = (460, ["Niepoprawny certyfikat"])
        else:
            st.touch_certificate(issued.serial)
        if result.subject_type != "certificateFingerprint":
            identity = issued.subject
        return "internal", failure, identity, attributes, issued.serial
    if result.signer is not None and result.signer.kind == "trusted_profile":
        return "trusted_profile", None, identity, _trusted_profile_attributes(result.signer), None
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        return "self_signed", (460, ["Nieważny certyfikat"]), identity, attributes, None
    trusted = ca.qualified_ca().issued(cert)
    if verify_chain and not trusted:
        return "self_signed", (460, ["Niezaufany łańcuch certyfikatów"]), identity, attributes, None
    kind = result.signer.kind if result.signer is not None else "person"
    return (kind if trusted else "self_signed"), None, identity, attributes, None


@bp.post("/auth/xades-signature")
@public
def xades_signature():
    """``POST /auth/xades-signature``: verify the XAdES signature for real, then authenticate."""
    if request.mimetype != "application/xml":
        return bad_request(
            21405, "Błąd walidacji danych wejściowych.", ["Content-Type musi być application/xml."]
        )
    st = state()
    data = request.get_data(cache=False)
    result = xades.check_signed_request(data, challenge=None, nip=None, at=st.now())
    if result.certificate is None or result.problems:
        return _xades_refusal(result)
    st.take_challenge(result.challenge)
    if not result.nip:
        return bad_request(
            21117,
            "Nieprawidłowy identyfikator podmiotu dla wskazanego typu kontekstu.",
            ["Sandbox obsługuje kontekst Nip."],
        )
    verify = request.args.get("verifyCertificateChain", "false").lower() == "true"
    method_key, failure, identity, attributes, serial = _judge_certificate(result, verify)
    method, code, name = METHODS[method_key]
    auth, token, valid_until = st.start_auth(
        context_nip=result.nip,
        identity=identity,
        method=method,
        method_code=code,
        method_name=name,
        failure=failure,
        subject_attributes=attributes,
        certificate_serial=serial,
        allowed_ips=_allowed_ips(result),
    )
    response = jsonify(
        {
            "referenceNumber": auth.reference,
            "authenticationToken": {"token": token, "validUntil": iso(valid_until)},
        }
    )
    response.status_code = 202
    return response


def _auth_json(auth, *, current: str | None = None, with_reference: bool = False) -> dict:
    st = state()
    code = st.status_code(auth)
    status = {"code": code, "description": AUTH_DESCRIPTIONS.get(code, "Nieznany błąd")}
    if code == 425:
        status["details"] = [
            "Uwierzytelnienie i powiązane refresh tokeny zostały unieważnione przez użytkownika"
        ]
    elif code >= 400 and auth.final_details:
        status["details"] = list(auth.final_details)
    body = {
        "startDate": iso(auth.started),
        "authenticationMethod": auth.method,
        "authenticationMethodInfo": {
            "category": "XadesSignature",
            "code": auth.method_code,
            "displayName": auth.method_name,
        },
        "status": status,
        "isTokenRedeemed": auth.redeemed,
        "lastTokenRefreshDate": iso(auth.last_refresh),
        "refreshTokenValidUntil": iso(auth.refresh_valid_until),
    }
    if with_reference:
        body["referenceNumber"] = auth.reference
        body["isCurrent"] = auth.reference == current
    return body


@bp.get("/auth/<referenceNumber>")
@authenticated("authentication")
def auth_status(referenceNumber: str):  # noqa: N803 (the OpenAPI parameter name)
    """``GET /auth/{referenceNumber}`` (with the operation's authenticationToken)."""
    if g.auth.reference != referenceNumber:
        return unauthorized("Token nie dotyczy tej operacji uwierzytelniania.")
    return jsonify(_auth_json(state().auth_status(referenceNumber)))


@bp.post("/auth/token/redeem")
@authenticated("authentication")
def redeem():
    """``POST /auth/token/redeem`` (once)."""
    tokens = state().redeem(g.auth)
    return jsonify({k: {"token": t, "validUntil": iso(v)} for k, (t, v) in tokens.items()})


@bp.post("/auth/token/refresh")
@authenticated("refresh")
def refresh():
    """``POST /auth/token/refresh``."""
    token, valid_until = state().refresh(g.auth)
    return jsonify({"accessToken": {"token": token, "validUntil": iso(valid_until)}})


@bp.get("/auth/sessions")
@authenticated("access")
def sessions():
    """``GET /auth/sessions``: the context's sessions, newest first, paged by continuation token."""
    page_size = int(request.args.get("pageSize", 10))
    offset = 0
    continuation = request.headers.get("x-continuation-token")
    if continuation:
        try:
            offset = int(base64.b64decode(continuation, validate=True).decode("ascii"))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return bad_request(21418, "Przekazany token kontynuacji ma nieprawidłowy format.")
    items = state().sessions_of(g.auth.context_nip)
    page = items[offset : offset + page_size]
    following = offset + page_size
    token = base64.b64encode(str(following).encode()).decode() if following < len(items) else None
    return jsonify(
        {
            "continuationToken": token,
            "items": [_auth_json(a, current=g.auth.reference, with_reference=True) for a in page],
        }
    )


@bp.delete("/auth/sessions/current")
@authenticated("access", "refresh")
def revoke_current():
    """``DELETE /auth/sessions/current``."""
    state().revoke_auth(g.auth)
    return "", 204


@bp.delete("/auth/sessions/<referenceNumber>")
@authenticated("access")
def revoke_session(referenceNumber: str):  # noqa: N803
    """``DELETE /auth/sessions/{referenceNumber}`` (a session of the same context)."""
    target = state().find_auth(referenceNumber)
    if target is None or target.context_nip != g.auth.context_nip:
        return bad_request(
            21304,
            "Brak uwierzytelnienia.",
            [f"Operacja uwierzytelniania o numerze referencyjnym {referenceNumber} nie została znaleziona."],
        )
    state().revoke_auth(target)
    return "", 204


# -- certificates -----------------------------------------------------------------------------------


@bp.get("/certificates/limits")
@authenticated("access")
def certificate_limits():
    """``GET /certificates/limits``."""
    return jsonify(state().limits_for(g.auth.identity))


@bp.get("/certificates/enrollments/data")
@authenticated("access")
def enrollment_data():
    """``GET /certificates/enrollments/data``: the subject of the certificate used to authenticate."""
    if g.auth.identity is None:
        return bad_request(
            25001, "Brak możliwości pobrania danych do CSR dla wykorzystanego sposobu uwierzytelnienia."
        )
    return jsonify(dict(g.auth.subject_attributes))


@bp.post("/certificates/enrollments")
@authenticated("access")
def enroll():
    """``POST /certificates/enrollments``."""
    body = _body()
    try:
        csr_der = base64.b64decode(body["csr"], validate=True)
    except (binascii.Error, ValueError):
        return bad_request(25004, "Niepoprawny format CSR lub niepoprawny podpis CSR.")
    valid_from = body.get("validFrom")
    enrollment = state().enroll(
        g.auth,
        name=body["certificateName"],
        certificate_type=body["certificateType"],
        csr_der=csr_der,
        valid_from=datetime.fromisoformat(valid_from.replace("Z", "+00:00")) if valid_from else None,
    )
    response = jsonify({"referenceNumber": enrollment.reference, "timestamp": iso(enrollment.requested)})
    response.status_code = 202
    return response


@bp.get("/certificates/enrollments/<referenceNumber>")
@authenticated("access")
def enrollment_status(referenceNumber: str):  # noqa: N803
    """``GET /certificates/enrollments/{referenceNumber}``."""
    found = state().enrollment(g.auth.identity, referenceNumber)
    code = 200 if found.serial else 400 if found.failure else 100
    status = {"code": code, "description": ENROLLMENT_DESCRIPTIONS[code]}
    if found.failure:
        status["details"] = [found.failure]
    return jsonify(
        {"requestDate": iso(found.requested), "status": status, "certificateSerialNumber": found.serial}
    )


@bp.post("/certificates/retrieve")
@authenticated("access")
def retrieve():
    """``POST /certificates/retrieve``: the subject's certificates (DER leaves)."""
    st = state()
    out = []
    for serial in _body()["certificateSerialNumbers"]:
        found = st.certificate(serial)
        if found is not None and found.subject == g.auth.identity:
            der = found.certificate.public_bytes(serialization.Encoding.DER)
            out.append(
                {
                    "certificate": base64.b64encode(der).decode(),
                    "certificateName": found.name,
                    "certificateSerialNumber": found.serial,
                    "certificateType": found.certificate_type,
                }
            )
    return jsonify({"certificates": out})


def _certificate_item(found, now: datetime) -> dict:
    cert = found.certificate
    common = cert.subject.get_attributes_for_oid(ca.NameOID.COMMON_NAME)
    return {
        "certificateSerialNumber": found.serial,
        "name": found.name,
        "type": found.certificate_type,
        "commonName": str(common[0].value) if common else "",
        "status": found.status_at(now),
        "subjectIdentifier": {"type": found.subject.type, "value": found.subject.value},
        "validFrom": iso(cert.not_valid_before_utc),
        "validTo": iso(found.valid_to),
        "lastUseDate": iso(found.last_use),
        "requestDate": iso(found.requested),
    }


@bp.post("/certificates/query")
@authenticated("access")
def query_certificates():
    """``POST /certificates/query``: filtered, newest request first, paged."""
    st = state()
    now = st.now()
    body = _body()
    items = st.certificates_of(g.auth.identity)
    if body.get("certificateSerialNumber"):
        items = [c for c in items if c.serial == body["certificateSerialNumber"]]
    if body.get("name"):
        items = [c for c in items if body["name"].lower() in c.name.lower()]
    if body.get("type"):
        items = [c for c in items if c.certificate_type == body["type"]]
    if body.get("status"):
        items = [c for c in items if c.status_at(now) == body["status"]]
    if body.get("expiresAfter"):
        limit = datetime.fromisoformat(body["expiresAfter"].replace("Z", "+00:00"))
        items = [c for c in items if c.valid_to > limit]
    size = int(request.args.get("pageSize", 10))
    offset = int(request.args.get("pageOffset", 0))
    page = items[offset * size : offset * size + size]
    return jsonify(
        {
            "certificates": [_certificate_item(c, now) for c in page],
            "hasMore": len(items) > offset * size + size,
        }
    )


@bp.post("/certificates/<certificateSerialNumber>/revoke")
@authenticated("access")
def revoke_certificate(certificateSerialNumber: str):  # noqa: N803
    """``POST /certificates/{certificateSerialNumber}/revoke``."""
    state().revoke_certificate(g.auth.identity, certificateSerialNumber)
    return "", 204


# -- permissions ------------------------------------------------------------------------------------


@bp.post("/permissions/entities/grants")
@authenticated("access")
def grant_entity():
    """``POST /permissions/entities/grants`` (needs Owner or CredentialsManage in the context)."""
    refusal = _require(_caller_permissions(), "CredentialsManage")
    if refusal is not None:
        return refusal
    body = _body()
    op = state().grant_entity(
        g.auth.context_nip,
        subject_nip=body["subjectIdentifier"]["value"],
        permissions=body["permissions"],
        description=body["description"],
        full_name=body["subjectDetails"]["fullName"],
    )
    response = jsonify({"referenceNumber": op.reference})
    response.status_code = 202
    return response


@bp.get("/permissions/operations/<referenceNumber>")
@authenticated("access")
def operation_status(referenceNumber: str):  # noqa: N803
    """``GET /permissions/operations/{referenceNumber}``."""
    _, code = state().operation(g.auth.context_nip, referenceNumber)
    return jsonify(
        {"status": {"code": code, "description": OPERATION_DESCRIPTIONS.get(code, "Nieznany błąd")}}
    )


@bp.post("/permissions/query/entities/grants")
@authenticated("access")
def query_entity_grants():
    """``POST /permissions/query/entities/grants``: what other entities granted this context."""
    refusal = _require(_caller_permissions(), "CredentialsManage", "CredentialsRead")
    if refusal is not None:
        return refusal
    body = _body()
    grantor = (body.get("contextIdentifier") or {}).get("value")
    items = state().grants_received(g.auth.context_nip, grantor)
    size = int(request.args.get("pageSize", 10))
    offset = int(request.args.get("pageOffset", 0))
    page = items[offset * size : offset * size + size]
    return jsonify(
        {
            "permissions": [
                {
                    "id": x.id,
                    "contextIdentifier": {"type": "Nip", "value": x.context_nip},
                    "permissionScope": x.scope,
                    "description": x.description,
                    "startDate": iso(x.start),
                    "canDelegate": x.can_delegate,
                }
                for x in page
            ],
            "hasMore": len(items) > offset * size + size,
        }
    )


@bp.post("/permissions/query/personal/grants")
@authenticated("access")
def query_personal_grants():
    """``POST /permissions/query/personal/grants``: the caller's own permissions in the current context."""
    body = _body()
    wanted = set(body.get("permissionTypes") or ())
    state_filter = body.get("permissionState")
    items = [
        item
        for item in state().personal_grants(g.auth.context_nip, g.auth.identity)
        if (not wanted or item["permissionScope"] in wanted)
        and (not state_filter or item["permissionState"] == state_filter)
    ]
    for item in items:
        item["startDate"] = iso(item["startDate"])
    size = int(request.args.get("pageSize", 10))
    offset = int(request.args.get("pageOffset", 0))
    return jsonify(
        {
            "permissions": items[offset * size : offset * size + size],
            "hasMore": len(items) > offset * size + size,
        }
    )


@bp.delete("/permissions/common/grants/<permissionId>")
@authenticated("access")
def revoke_permission(permissionId: str):  # noqa: N803
    """``DELETE /permissions/common/grants/{permissionId}``."""
    refusal = _require(_caller_permissions(), "CredentialsManage")
    if refusal is not None:
        return refusal
    op = state().revoke_grant(g.auth.context_nip, permissionId)
    response = jsonify({"referenceNumber": op.reference})
    response.status_code = 202
    return response


# -- security ---------------------------------------------------------------------------------------


@bp.get("/security/public-key-certificates")
@public
def public_key_certificates():
    """``GET /security/public-key-certificates`` (sandbox stand-ins, not the Ministry's)."""
    out = []
    for cert, usage in ca.encryption_certificates(state().now()):
        der = cert.public_bytes(serialization.Encoding.DER)
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        out.append(
            {
                "certificate": base64.b64encode(der).decode(),
                "certificateId": base64.b64encode(hashlib.sha256(der).digest()).decode(),
                "publicKeyId": base64.b64encode(hashlib.sha256(spki).digest()).decode(),
                "validFrom": iso(cert.not_valid_before_utc),
                "validTo": iso(cert.not_valid_after_utc),
                "usage": [usage],
            }
        )
    return jsonify(out)


# -- limits -----------------------------------------------------------------------------------------


@bp.get("/rate-limits")
@authenticated("access")
def rate_limits():
    """``GET /rate-limits``: the API rate limits in force, per group (what the sandbox enforces when on)."""
    from sandbox.spec import spec_document

    groups = state().rate_limits.groups()
    names = spec_document()["components"]["schemas"]["EffectiveApiRateLimits"]["properties"]
    out = {}
    for name in names:
        limit = groups.get(name)
        values = limit.thresholds() if limit else (None, None, None)
        out[name] = {
            "perSecond": values[0] or 0,
            "perMinute": values[1] or 0,
            "perHour": values[2] or 0,
        }
    return jsonify(out)


# -- TEST environment helpers -----------------------------------------------------------------------


def _ok():
    return "", 200


@bp.post("/testdata/person")
@public
def testdata_person():
    """``POST /testdata/person``: a PESEL owner of a NIP."""
    body = _body()
    state().add_person(
        Person(
            nip=body["nip"],
            pesel=body["pesel"],
            description=body["description"],
            is_bailiff=bool(body.get("isBailiff")),
            is_deceased=bool(body.get("isDeceased")),
        )
    )
    return _ok()


@bp.post("/testdata/person/remove")
@public
def testdata_person_remove():
    """``POST /testdata/person/remove``."""
    state().remove_person(_body()["nip"])
    return _ok()


def _testdata_identity(body: dict) -> tuple[str, Identity]:
    authorized = body["authorizedIdentifier"]
    return body["contextIdentifier"]["value"], Identity(authorized["type"], authorized["value"])


@bp.post("/testdata/permissions")
@public
def testdata_permissions():
    """``POST /testdata/permissions``: permissions in a context (like a paper ZAW-FA)."""
    body = _body()
    context, identity = _testdata_identity(body)
    state().add_test_permissions(context, identity, [p["permissionType"] for p in body["permissions"]])
    return _ok()


@bp.post("/testdata/permissions/revoke")
@public
def testdata_permissions_revoke():
    """``POST /testdata/permissions/revoke``."""
    context, identity = _testdata_identity(_body())
    state().revoke_test_permissions(context, identity)
    return _ok()


@bp.post("/testdata/context/block")
@public
def testdata_block():
    """``POST /testdata/context/block``: authentication in the context ends with 480."""
    state().block_context((_body().get("contextIdentifier") or {}).get("value", ""), True)
    return _ok()


@bp.post("/testdata/context/unblock")
@public
def testdata_unblock():
    """``POST /testdata/context/unblock``."""
    state().block_context((_body().get("contextIdentifier") or {}).get("value", ""), False)
    return _ok()


@bp.put("/testdata/certificates/<serialNumber>")
@authenticated("access")
def testdata_certificate(serialNumber: str):  # noqa: N803
    """``PUT /testdata/certificates/{serialNumber}`` (API 2.7): shorten a certificate's ``validTo``."""
    valid_to = datetime.fromisoformat(_body()["validTo"].replace("Z", "+00:00"))
    if valid_to.tzinfo is None:
        valid_to = valid_to.replace(tzinfo=UTC)
    state().shorten_certificate(g.auth.identity, serialNumber, valid_to)
    return _ok()


@bp.post("/testdata/limits/subject/certificate")
@authenticated("access")
def testdata_limits():
    """``POST /testdata/limits/subject/certificate``: override the caller's certificate limits."""
    body = _body()
    st = state()
    current = st.limits_for(g.auth.identity)
    enrollments = (body.get("enrollment") or {}).get("maxEnrollments")
    certificates = (body.get("certificate") or {}).get("maxCertificates")
    st.set_limits(
        g.auth.identity,
        enrollments=current["enrollment"]["limit"] if enrollments is None else enrollments,
        certificates=current["certificate"]["limit"] if certificates is None else certificates,
    )
    return _ok()
