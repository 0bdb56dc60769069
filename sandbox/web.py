"""The sandbox's other hosts and pages: Latarnia, the QR host (KOD II), the test signer page, the admin routes.

In the real world Latarnia and the QR host are separate hosts; here they share the sandbox's origin under
``/latarnia`` and ``/qr`` (``klucznik.ksef_client.environment("sandbox", url)`` knows the layout). The admin
routes live under ``/_sandbox`` so nobody mistakes them for KSeF's API.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import render_template
from flask import request

from klucznik.errors import PortalError
from sandbox import ca
from sandbox.faults import Fault
from sandbox.state import SandboxState

latarnia = Blueprint("latarnia", __name__, url_prefix="/latarnia")
qr = Blueprint("qr", __name__, url_prefix="/qr")
admin = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")
pages = Blueprint(
    "sandbox_pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/_sandbox/static",
)


def state() -> SandboxState:
    """The sandbox state of the current app."""
    return current_app.extensions["ksef_sandbox"]


# -- Latarnia ---------------------------------------------------------------------------------------


@latarnia.get("/status")
def latarnia_status():
    """Latarnia ``GET /status``."""
    st = state()
    return jsonify({"status": st.availability, "messages": list(st.messages)})


@latarnia.get("/messages")
def latarnia_messages():
    """Latarnia ``GET /messages``."""
    return jsonify(list(state().messages))


# -- QR host: KOD II --------------------------------------------------------------------------------


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _signature_ok(cert, data: bytes, signature: bytes) -> bool:
    """RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) or ECDSA P-256 (IEEE P1363 R||S, or DER)."""
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                signature,
                data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) == 64:
                signature = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def verify_kod2(
    *, host_path: str, context_type: str, context_value: str, seller_nip: str, serial: str, signature_b64: str
) -> dict:
    """Check a KOD II link like KSeF: certificate known, Offline, active; signature; permission; seller."""
    st = state()
    now = st.now()
    checks: list[dict] = []

    def check(name: str, ok: bool, message: str) -> bool:
        checks.append({"check": name, "ok": ok, "message": message})
        return ok

    found = st.certificate(serial)
    if check(
        "certificate_exists",
        found is not None,
        "Certyfikat istnieje w KSeF." if found else "Certyfikat o tym numerze nie istnieje w KSeF.",
    ):
        status = found.status_at(now)
        check(
            "certificate_type",
            found.certificate_type == "Offline",
            "Certyfikat typu Offline."
            if found.certificate_type == "Offline"
            else "Do podpisu KOD II służy wyłącznie certyfikat typu Offline.",
        )
        active = status == "Active" and found.certificate.not_valid_before_utc <= now
        check(
            "certificate_status",
            active,
            "Certyfikat ważny." if active else f"Certyfikat nieważny ({status}).",
        )
        try:
            signature = _b64url_decode(signature_b64)
        except (binascii.Error, ValueError):
            signature = b""
        good = _signature_ok(found.certificate, host_path.encode("utf-8"), signature)
        check("signature", good, "Podpis poprawny." if good else "Podpis linku jest niepoprawny.")
        permitted = context_type == "Nip" and bool(
            st.permissions_in(context_value, found.subject) & {"Owner", "InvoiceWrite"}
        )
        check(
            "permission",
            permitted,
            "Podmiot certyfikatu ma uprawnienie do wystawiania faktur w kontekście."
            if permitted
            else "Podmiot certyfikatu nie ma uprawnienia InvoiceWrite w tym kontekście.",
        )
        seller_ok = context_type == "Nip" and seller_nip == context_value
        check(
            "seller",
            seller_ok,
            "Kontekst może wystawiać faktury sprzedawcy."
            if seller_ok
            else "Kontekst nie może wystawiać faktur w imieniu tego sprzedawcy.",
        )
    valid = all(c["ok"] for c in checks)
    return {
        "valid": valid,
        "checks": checks,
        "certificate": {
            "serialNumber": serial,
            "subject": found.certificate.subject.rfc4514_string() if found else None,
        },
    }


@qr.get("/certificate/<context_type>/<context_value>/<seller_nip>/<serial>/<invoice_hash>/<signature>")
def kod2(
    context_type: str, context_value: str, seller_nip: str, serial: str, invoice_hash: str, signature: str
):
    """KOD II verification: the string to sign is the URL without the scheme, up to the invoice hash."""
    signed = f"{request.host}{request.script_root}/qr/certificate/{context_type}/{context_value}/{seller_nip}/{serial}/{invoice_hash}"
    verdict = verify_kod2(
        host_path=signed,
        context_type=context_type,
        context_value=context_value,
        seller_nip=seller_nip,
        serial=serial,
        signature_b64=signature,
    )
    if request.accept_mimetypes.best == "text/html":
        return render_template("sandbox/kod2.html", verdict=verdict)
    return jsonify(verdict)


# -- admin ------------------------------------------------------------------------------------------


@admin.get("/")
def admin_index():
    """What the sandbox holds (counts), its availability and its faults."""
    st = state()
    return jsonify(
        {
            "sandbox": "Klucznik KSeF sandbox (not KSeF, not the Ministry of Finance)",
            "now": st.now().isoformat(),
            "availability": st.availability,
            "counts": {
                "auths": len(st.auths),
                "persons": len(st.persons),
                "grants": len(st.grants),
                "certificates": len(st.certificates),
            },
            "faultHits": [list(h) for h in st.faults.hits],
        }
    )


@admin.post("/availability")
def admin_availability():
    """Set Latarnia's status: ``{"status": "FAILURE", "title"?: ..., "text"?: ...}``."""
    body = request.get_json(silent=True) or {}
    try:
        state().set_availability(
            body.get("status", ""),
            title=body.get("title"),
            text=body.get("text"),
            messages=body.get("messages"),
        )
    except ValueError as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify({"status": state().availability})


@admin.post("/faults")
def admin_faults():
    """Add a fault: ``{"endpoint": "POST /auth/challenge", "kind": "error", "status": 503, "times": 2}``."""
    body = dict(request.get_json(silent=True) or {})
    endpoint = body.pop("endpoint", None)
    if not endpoint:
        return jsonify({"error": "endpoint is required"}), 400
    try:
        state().faults.add(endpoint, Fault(**body))
    except (TypeError, ValueError) as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify({"ok": True}), 201


@admin.delete("/faults")
def admin_clear_faults():
    """Remove every fault (``?seed=N`` reseeds)."""
    seed = request.args.get("seed", type=int)
    state().faults.clear(seed)
    return "", 204


@admin.post("/warnings")
def admin_warnings():
    """Send ``X-System-Warning`` with an endpoint's successful answers:
    ``{"endpoint": "POST /auth/xades-signature", "warning": "[sig-001]: ..."}`` (``warning`` null: stop)."""
    body = request.get_json(silent=True) or {}
    endpoint = body.get("endpoint")
    if not endpoint:
        return jsonify({"error": "endpoint is required"}), 400
    if body.get("warning"):
        state().system_warnings[endpoint] = str(body["warning"])
    else:
        state().system_warnings.pop(endpoint, None)
    return jsonify(state().system_warnings)


@admin.get("/rate-limits")
def admin_rate_limits():
    """The rate limits: on/off, every group's limit, how many requests were accepted and refused."""
    return jsonify(state().rate_limits.snapshot())


@admin.post("/rate-limits")
def admin_set_rate_limits():
    """Set the rate limits: ``{"enabled": true, "reset": true, "scale": 10,
    "groups": {"other": {"perSecond": 2, "perMinute": 5, "perHour": 100}}}`` (every key optional)."""
    from sandbox.ratelimits import Limit

    body = request.get_json(silent=True) or {}
    try:
        groups = {name: Limit.from_json(values) for name, values in (body.get("groups") or {}).items()}
        scale = body.get("scale")
        state().rate_limits.configure(
            enabled=body.get("enabled"),
            groups=groups,
            scale=None if scale is None else float(scale),
            reset=bool(body.get("reset")),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify(state().rate_limits.snapshot())


@admin.post("/clock")
def admin_clock():
    """Move the sandbox's clock: ``{"advanceSeconds": 660}``."""
    body = request.get_json(silent=True) or {}
    state().clock.advance(timedelta(seconds=float(body.get("advanceSeconds", 0))))
    return jsonify({"now": state().now().isoformat()})


@admin.get("/ca.pem")
def admin_ca():
    """The sandbox KSeF CA certificate (PEM)."""
    pem = ca.sandbox_ca_certificate().public_bytes(serialization.Encoding.PEM)
    return Response(pem, mimetype="application/x-pem-file")


@admin.post("/owners")
def admin_owner():
    """Seed an owner quickly: ``{"nip": ..., "pesel": ...}`` (the same as ``/v2/testdata/person``)."""
    from sandbox.state import Person

    body = request.get_json(silent=True) or {}
    state().add_person(Person(nip=body["nip"], pesel=body["pesel"], description="Sandbox owner"))
    return jsonify({"ok": True}), 201


# -- pages: the test signer -------------------------------------------------------------------------


@pages.get("/")
def index():
    """The sandbox's home page: what it is and where things are."""
    return render_template("sandbox/index.html", st=state())


@pages.route("/sign", methods=["GET", "POST"])
def sign_page():
    """Sign an uploaded AuthTokenRequest with a sandbox "qualified" identity and download it."""
    from sandbox import signer

    if request.method == "GET":
        return render_template("sandbox/sign.html", error=None)
    upload = request.files.get("file")
    nip = (request.form.get("nip") or "").strip() or None
    pesel = (request.form.get("pesel") or "").strip() or None
    style = request.form.get("style", "enveloped")
    error = None
    if upload is None or not upload.filename:
        error = "Wybierz plik XML do podpisania. / Choose the XML file to sign."
    elif bool(nip) == bool(pesel):
        error = (
            "Podaj NIP (pieczęć) albo PESEL (osoba) — jedno z dwóch. / Give a NIP (seal) or a PESEL (person)."
        )
    elif style not in ("enveloped", "enveloping", "profil-zaufany"):
        error = "Nieznany styl podpisu. / Unknown signature style."
    elif style == "profil-zaufany" and not pesel:
        error = "Profil Zaufany podpisuje osoba: podaj PESEL. / Profil Zaufany needs a PESEL."
    if error:
        return render_template("sandbox/sign.html", error=error), 422
    certificate, key = ca.qualified_identity(nip=nip, pesel=pesel)
    try:
        signed = signer.sign(upload.read(), certificate=certificate, private_key=key, style=style)
    except PortalError as exc:
        return render_template("sandbox/sign.html", error=f"{exc.message_pl} / {exc.message_en}"), 422
    name = (upload.filename.rsplit(".", 1)[0] or "AuthTokenRequest") + ".signed.xml"
    return Response(
        signed, mimetype="application/xml", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
