"""A real local SMTP server (aiosmtpd) in a thread: what the reminder tests send e-mail to."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from email import message_from_bytes
from email import policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER = "biuro@example.test"
PASSWORD = "haslo-poczty-1"


@dataclass
class Mailbox:
    """What the server received: (envelope sender, recipients, message) per e-mail; logins it saw."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        password = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
        self.logins.append(login)
        ok = (login, password) == (USER, PASSWORD)
        return AuthResult(success=ok, handled=ok)  # handled=False on failure: aiosmtpd answers 535


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServerCertificate:
    """A throwaway test CA and the mail server's certificate it issued (for 127.0.0.1 and localhost)."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_server_certificate(folder: Path) -> ServerCertificate:
    """Write a self-made CA and a server certificate it signed into ``folder`` (PEM files)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Klucznik test mail CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    found = ServerCertificate(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    found.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    found.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return found


@contextlib.contextmanager
def smtp_server(*, auth: bool = False, tls: str = "none",
                certificate: ServerCertificate | None = None) -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 (plain; with ``auth`` it requires a login, allowed without TLS here).

    ``tls="starttls"`` requires STARTTLS before anything else, ``tls="tls"`` speaks TLS from the first byte; both
    with ``certificate``'s server certificate."""
    box = Mailbox(port=_free_port())
    # with implicit TLS every byte is encrypted, but aiosmtpd only counts STARTTLS as TLS for its AUTH rule
    options: dict = {"authenticator": box.authenticate, "auth_required": True,
                     "auth_require_tls": tls == "starttls", "auth_exclude_mechanism": ["LOGIN"]} if auth else {}
    if tls == "starttls":
        options.update(tls_context=certificate.server_context(), require_starttls=True)
    elif tls == "tls":
        options.update(ssl_context=certificate.server_context())
    controller = Controller(box, hostname="127.0.0.1", port=box.port, **options)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
