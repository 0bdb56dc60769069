"""E-mail over STARTTLS and implicit TLS against a real aiosmtpd server with a throwaway certificate: the portal
verifies the server's certificate by default, so it sends once the office's CA is trusted (the way an office
configures it: ``SSL_CERT_FILE``) and refuses, in plain Polish, a server whose certificate it cannot trust."""

from __future__ import annotations

import pytest

from klucznik.records import smtp
from klucznik.status import reminders
from tests.support.defaults import NOW
from tests.support.smtp import PASSWORD
from tests.support.smtp import USER
from tests.support.smtp import make_server_certificate
from tests.support.smtp import smtp_server

# implicit TLS: aiosmtpd warns about AUTH without *its* STARTTLS, though the whole connection is encrypted
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_server_certificate(tmp_path_factory.mktemp("mail-ca"))


def _settings(port: int, security: str) -> smtp.SmtpSettings:
    return smtp.SmtpSettings(host="127.0.0.1", port=port, security=security, username=USER, password=PASSWORD,
                             sender="portal@biuro.test", recipients=("ksiegowa@biuro.test",))


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_goes_over_tls_to_a_server_the_office_trusts(certificate, monkeypatch, security) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.ca_file))  # the office's own CA, as configured for real
    with smtp_server(auth=True, tls=security, certificate=certificate) as box:
        reminders.send_test(_settings(box.port, security), at=NOW)
    assert box.logins == [USER]  # over STARTTLS the server refuses AUTH before the TLS handshake
    [(sender, recipients, message)] = box.messages
    assert (sender, recipients) == ("portal@biuro.test", ["ksiegowa@biuro.test"])
    assert "Poczta z portalu Klucznik działa" in message.get_content()


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_server_certificate_nobody_trusts_is_refused_in_plain_polish(certificate, monkeypatch, security) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with smtp_server(auth=True, tls=security, certificate=certificate) as box, \
            pytest.raises(reminders.MailError) as caught:
        reminders.send_test(_settings(box.port, security), at=NOW)
    assert caught.value.code == "mail_untrusted"
    assert "certyfikat, któremu portal nie ufa" in caught.value.message_pl
    assert box.logins == [] and box.messages == []  # neither the password nor the e-mail left the portal


def test_starttls_set_but_the_server_speaks_plain_only_fails_plainly(certificate) -> None:
    with smtp_server(auth=False) as box, pytest.raises(reminders.MailError) as caught:
        reminders.send_test(_settings(box.port, "starttls"), at=NOW)
    assert caught.value.code == "mail_send" and "szyfrowanie" in caught.value.message_pl
    assert box.messages == []
