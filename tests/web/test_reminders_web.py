"""E-mail reminders against a real local SMTP server (aiosmtpd): the office's SMTP settings page and its test
button, and reminders sent at most once per item per threshold (30, 14, 7, 1 days)."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest

from klucznik.records import smtp
from klucznik.status import reminders
from tests.support.defaults import NOW
from tests.support.smtp import PASSWORD
from tests.support.smtp import USER
from tests.support.smtp import smtp_server
from tests.support.status import add_client
from tests.support.status import add_credential

D = timedelta(days=1)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def _settings(port: int, **overrides) -> smtp.SmtpSettings:
    values = {"host": "127.0.0.1", "port": port, "security": "none", "sender": "portal@biuro.test",
              "recipients": ("ksiegowa@biuro.test", "szef@biuro.test")}
    return smtp.SmtpSettings(**{**values, **overrides})


@pytest.fixture
def expiring(store):
    with store.write() as db:
        alfa = add_client(db, "5261040828", "Alfa sp. z o.o.", method="portal_certs", at=NOW)
        add_credential(db, alfa, slot="online", serial="00AA01", not_before=NOW - 700 * D, not_after=NOW + 20 * D)
        add_credential(db, alfa, slot="offline", serial="00AA02", not_before=NOW - 700 * D, not_after=NOW + 400 * D)
        add_credential(db, alfa, slot="online", serial="00AA00", not_before=NOW - 900 * D, not_after=NOW + D,
                       status="superseded")
    return alfa


def _save(store, settings) -> None:
    with store.write() as db:
        smtp.save_smtp(db, settings, actor="admin", at=NOW)


def test_reminders_are_sent_once_per_item_and_threshold(store, expiring) -> None:
    with smtp_server() as box:
        _save(store, _settings(box.port))
        first = reminders.remind(store, at=NOW)
        assert [(r.item.serial, r.threshold) for r in first.reminders] == [("00AA01", 30)]
        (sender, recipients, message), = box.messages
        assert (sender, recipients) == ("portal@biuro.test", ["ksiegowa@biuro.test", "szef@biuro.test"])
        body = message.get_content()
        assert "Alfa sp. z o.o." in body and "00AA01" in body and "zostało dni: 20" in body
        assert "00AA00" not in body and "00AA02" not in body  # superseded and far-off items are not reminded
        assert reminders.remind(store, at=NOW + D).reminders == []  # 19 days: still the 30-day threshold
        assert len(box.messages) == 1
        assert [r.threshold for r in reminders.remind(store, at=NOW + 7 * D).reminders] == [14]
        assert [r.threshold for r in reminders.remind(store, at=NOW + 13 * D).reminders] == [7]
        assert [r.threshold for r in reminders.remind(store, at=NOW + 19 * D).reminders] == [1]
        assert reminders.remind(store, at=NOW + 25 * D).reminders == []  # expired: the 1-day reminder was sent
        assert len(box.messages) == 4


def test_a_failed_send_records_nothing_and_the_next_run_sends(store, expiring) -> None:
    with smtp_server() as box:
        port = box.port
    _save(store, _settings(port))  # the server is gone
    with pytest.raises(reminders.MailError) as info:
        reminders.remind(store, at=NOW)
    assert "Nie udało się wysłać e-maila" in info.value.text.pl
    with store.connect() as db:
        assert db.execute("SELECT count(*) FROM status_reminders").fetchone()[0] == 0
    with smtp_server() as box:
        _save(store, _settings(box.port))
        assert len(reminders.remind(store, at=NOW).reminders) == 1 and len(box.messages) == 1


def test_login_to_the_smtp_server(store, expiring) -> None:
    with warnings.catch_warnings(), smtp_server(auth=True) as box:
        _save(store, _settings(box.port, username=USER, password="zle-haslo"))
        with pytest.raises(reminders.MailError) as info:
            reminders.remind(store, at=NOW)
        assert info.value.code == "mail_auth"
        _save(store, _settings(box.port, username=USER, password=PASSWORD))
        assert len(reminders.remind(store, at=NOW).reminders) == 1
        assert box.logins == [USER, USER] and len(box.messages) == 1


def test_not_configured_says_where_to_configure(store, expiring) -> None:
    with pytest.raises(reminders.MailError) as info:
        reminders.remind(store, at=NOW)
    assert "ustawieniach biura" in info.value.text.pl


# -- the settings page -----------------------------------------------------------------------------------------------


def test_settings_page_validates_keeps_the_password_and_sends_a_test(web, store) -> None:
    page = web.get("/office/email")
    assert page.status_code == 200 and "Przypomnienia e-mail" in page.get_data(as_text=True)
    bad = web.post("/office/email", {"host": "smtp biuro", "port": "99999", "security": "starttls",
                                     "sender": "nie-adres", "recipients": "a@b.pl, zly"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "Port to liczba od 1 do 65535" in html and "niepoprawny: zly" in html and "adres nadawcy" in html
    with smtp_server(auth=True) as box:
        form = {"host": "127.0.0.1", "port": str(box.port), "security": "none", "username": USER,
                "password": PASSWORD, "sender": "portal@biuro.test", "recipients": "ksiegowa@biuro.test"}
        assert web.post("/office/email", form).status_code == 200
        page = web.get("/office/email").get_data(as_text=True)
        assert PASSWORD not in page and "Zostaw puste, aby zachować zapisane hasło." in page
        assert web.post("/office/email", {**form, "password": ""}).status_code == 200  # keeps the password
        with store.connect() as db:
            assert smtp.get_smtp(db).password == PASSWORD
            assert PASSWORD not in str(db.execute("SELECT details FROM audit_log").fetchall())
        sent = web.post("/office/email/test")
        assert sent.status_code == 200 and "Wiadomość testowa wysłana" in sent.get_data(as_text=True)
        assert box.messages[-1][2]["Subject"] == "Klucznik: wiadomość testowa / test message"
    failed = web.post("/office/email/test")  # the server is gone now
    assert failed.status_code == 422 and "Nie udało się wysłać e-maila" in failed.get_data(as_text=True)


def test_staff_cannot_change_the_mail_settings(app, web, store) -> None:
    from tests.web.test_admin_web import staff_client

    staff = staff_client(app, store)
    assert staff.get("/office/email").status_code == 403
    assert staff.post("/office/email/test").status_code == 403
