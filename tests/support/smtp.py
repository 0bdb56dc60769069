"""A real local SMTP server (aiosmtpd) in a thread: what the reminder tests send e-mail to."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from email import message_from_bytes
from email import policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

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


@contextlib.contextmanager
def smtp_server(*, auth: bool = False) -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 (plain; with ``auth`` it requires a login, allowed without TLS here)."""
    box = Mailbox(port=_free_port())
    options = {"authenticator": box.authenticate, "auth_required": True, "auth_require_tls": False,
               "auth_exclude_mechanism": ["LOGIN"]} if auth else {}
    controller = Controller(box, hostname="127.0.0.1", port=box.port, **options)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
