"""Make the instance in ``instance/`` next to this script with the code of the checkout it runs from.

Run from the repository root at the commit named in README.md (main before the package layout):

    .venv/bin/python tests/data/instances/pre-layout-2026-11/make_instance.py

It writes a small but complete instance through the public domain functions only: the administrator
(login in README.md), a staff user, then a staff user removed again (a key rotation), three clients,
one client with a stored credential (the real KSeF TEST certificate and its encrypted key from
tests/data/certs/), and the audit entries those functions write. TEST_KDF keeps the test fast; the KDF
parameters are stored in keyring.json, so the instance opens with any later code.
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
sys.path.insert(0, str(ROOT))

from klucznik.keyring import TEST_KDF  # noqa: E402
from klucznik.storage import Store  # noqa: E402

from klucznik import clients  # noqa: E402
from klucznik import credentials  # noqa: E402
from klucznik import users  # noqa: E402

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1"
CLIENTS = [
    ("5261040828", "Zakład Usług Księgowych „Żółw” Sp. z o.o."),
    ("6852332948", "Łódzka Hurtownia Śrub"),
    ("5795955811", "Jan Kowalski — Usługi Transportowe"),
]


class Facts:
    """What a credentials row keeps of a certificate (the CertificateFacts protocol)."""

    def __init__(self, pem: bytes) -> None:
        cert = x509.load_pem_x509_certificate(pem)
        self.der = cert.public_bytes(Encoding.DER)
        self.serial = f"{cert.serial_number:016X}"
        self.subject = cert.subject.rfc4514_string()
        self.issuer = cert.issuer.rfc4514_string()
        self.fingerprint = cert.fingerprint(hashes.SHA256()).hex()
        self.not_before = cert.not_valid_before_utc
        self.not_after = cert.not_valid_after_utc


def main() -> None:
    instance = HERE / "instance"
    if instance.exists():
        shutil.rmtree(instance)
    store = Store(instance, kdf=TEST_KDF)
    code = store.setup(ADMIN, ADMIN_PASSWORD, at=AT)
    (HERE / "recovery-code.txt").write_text(code + "\n", "ascii")
    users.create_user(
        store, username="ksiegowa", role="staff", password="staff-password-1", actor=ADMIN, at=AT
    )
    users.create_user(
        store, username="odszedl", role="staff", password="staff-password-2", actor=ADMIN, at=AT
    )
    users.remove_user(store, username="odszedl", actor=ADMIN, at=AT)
    ids = []
    for nip, name in CLIENTS:
        with store.write() as db:
            ids.append(clients.create_client(db, clients.validate(nip=nip, name=name), actor=ADMIN, at=AT).id)
    certs = ROOT / "tests" / "data" / "certs"
    with store.write() as db:
        credentials.add_credential(
            db,
            client_id=ids[2],
            slot="online",
            origin="uploaded",
            info=Facts((certs / "mf-test-authentication.crt").read_bytes()),
            ksef_type="Authentication",
            private_key=(certs / "mf-test-authentication.key").read_bytes(),
            key_password="Qwertyuiop@12345",
            actor=ADMIN,
            at=AT,
        )
    store.seal()


if __name__ == "__main__":
    main()
