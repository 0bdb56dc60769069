"""The status domain without KSeF: expiry bands at a pinned moment, only active items, the table's filters,
batched storage of check outcomes, the timeline and the KSeF errors list."""

from __future__ import annotations

from datetime import timedelta

import pytest

from klucznik.status import expiry
from klucznik.status import overview
from klucznik.status.results import CheckOutcome
from klucznik.status.results import history
from klucznik.status.results import latest_checks
from klucznik.status.results import record_outcomes
from klucznik.text import Text
from tests.support.defaults import NOW
from tests.support.status import add_client
from tests.support.status import add_credential

D = timedelta(days=1)


@pytest.mark.parametrize(
    ("valid_to", "days", "colour"),
    [
        (NOW + 400 * D, 400, "ok"),
        (NOW + 31 * D, 31, "ok"),
        (NOW + 30 * D, 30, "soon"),
        (NOW + 8 * D, 8, "soon"),
        (NOW + 7 * D, 7, "urgent"),
        (NOW + timedelta(hours=3), 0, "urgent"),
        (NOW, 0, "expired"),
        (NOW - timedelta(hours=1), -1, "expired"),
    ],
)
def test_days_left_and_band_at_a_pinned_moment(valid_to, days, colour) -> None:
    assert expiry.days_left(valid_to, at=NOW) == days
    assert expiry.band(valid_to, at=NOW) == colour


def test_certificate_status_prefers_ksef_then_the_date() -> None:
    assert expiry.certificate_status(NOW + D, None, at=NOW) == "Unchecked"
    assert expiry.certificate_status(NOW + D, "Revoked", at=NOW) == "Revoked"
    assert expiry.certificate_status(NOW - D, "Active", at=NOW) == "Expired"
    assert expiry.certificate_status(NOW - D, "Blocked", at=NOW) == "Blocked"


@pytest.fixture
def office(store):
    """Four clients: one expiring in 10 days (with a superseded pair that expired), one fine, one expired and
    archived, one without any method."""
    with store.write() as db:
        soon = add_client(db, "5261040828", "Alfa sp. z o.o.", method="portal_certs", at=NOW)
        add_credential(db, soon, slot="online", serial="A1", not_before=NOW - 700 * D, not_after=NOW + 10 * D)
        add_credential(db, soon, slot="offline", serial="A2", not_before=NOW - 700 * D, not_after=NOW + 40 * D)
        add_credential(db, soon, slot="online", serial="A0", not_before=NOW - 900 * D, not_after=NOW - 100 * D,
                       status="superseded")
        fine = add_client(db, "7740001454", "Beta S.A.", method="user_certs", at=NOW)
        add_credential(db, fine, slot="online", serial="B1", not_before=NOW - 10 * D, not_after=NOW + 700 * D)
        gone = add_client(db, "5213017228", "Gamma", method="user_certs", at=NOW)
        add_credential(db, gone, slot="online", serial="G1", not_before=NOW - 800 * D, not_after=NOW - D)
        from klucznik.records import clients

        clients.set_archived(db, gone, True, actor="admin", at=NOW)
        none = add_client(db, "1132853869", "Delta", at=NOW)
    return {"soon": soon, "fine": fine, "gone": gone, "none": none}


def test_expiring_lists_only_active_items_of_current_clients(store, office) -> None:
    with store.connect() as db:
        items = expiry.expiring(db, at=NOW, days=30)
        assert [(i.serial, i.days_left, i.status) for i in items] == [("A1", 10, "Unchecked")]
        assert items[0].as_dict() == {
            "nip": "5261040828", "name": "Alfa sp. z o.o.", "method": "portal_certs", "kind": "certificate",
            "ksef_type": "Authentication", "serial": "A1", "valid_to": "2026-12-11T09:00:00Z", "days_left": 10,
            "status": "Unchecked",
        }
        assert [i.serial for i in expiry.expiring(db, at=NOW, days=45)] == ["A1", "A2"]
        assert expiry.expiring(db, at=NOW, days=5) == []
        # 11 days later the Authentication certificate has expired and still counts
        later = expiry.expiring(db, at=NOW + 11 * D, days=30)
        assert [(i.serial, i.days_left, i.status) for i in later] == [("A1", -1, "Expired"), ("A2", 29, "Unchecked")]


def test_outcomes_are_stored_in_one_batch_and_the_latest_wins(store, office) -> None:
    first = CheckOutcome(client_id=office["soon"], at=NOW, ok=True, method="portal_certs",
                         certificates={"A1": {"type": "Authentication", "status": "Active"}})
    failed = CheckOutcome(client_id=office["fine"], at=NOW, ok=False, method="user_certs", http_status=403,
                          ksef_code=None, ksef_text="Brak uprawnień", error_code="ksef_http_403",
                          message=Text("Brak uprawnień.", "No permission."))
    with store.write() as db:
        generation = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
        assert record_outcomes(db, [first, failed]) == 2
    revoked = CheckOutcome(client_id=office["soon"], at=NOW + D, ok=True, method="portal_certs",
                           certificates={"A1": {"type": "Authentication", "status": "Revoked"}})
    with store.write() as db:
        record_outcomes(db, [revoked])
    with store.connect() as db:
        assert int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]) == int(generation) + 2
        latest = latest_checks(db, [office["soon"], office["fine"], office["none"]])
        assert set(latest) == {office["soon"], office["fine"]}
        assert latest[office["soon"]].certificates["A1"]["status"] == "Revoked"
        assert latest[office["fine"]].message == Text("Brak uprawnień.", "No permission.")
        assert [c.ok for c in history(db, office["soon"])] == [True, True]
        assert [i.status for i in expiry.expiring(db, at=NOW, days=30)] == ["Revoked"]
        banner = overview.banner(db, at=NOW)
        assert (banner.expiring, banner.failed, banner.shown) == (1, 1, True)
        errors = overview.ksef_errors_of(db, office["fine"])
        assert [(e.http_status, e.ksef_text) for e in errors] == [(403, "Brak uprawnień")]
        assert "uprawnień" in errors[0].advice.pl


def test_table_filters_search_sort_and_pages(store, office) -> None:
    with store.write() as db:
        record_outcomes(db, [CheckOutcome(client_id=office["fine"], at=NOW, ok=False, error_code="x")])
    with store.connect() as db:
        def names(**kw):
            return [r.name for r in overview.status_page(db, at=NOW, **kw).rows]

        assert names() == ["Alfa sp. z o.o.", "Beta S.A.", "Delta"]
        assert names(show="expiring") == ["Alfa sp. z o.o."]
        assert names(show="errors") == ["Beta S.A."]
        assert names(show="unauthorized") == ["Delta"]
        assert names(method="user_certs") == ["Beta S.A."]
        assert names(method="none") == ["Delta"]
        assert names(query="774-000") == ["Beta S.A."]
        assert names(sort="expiry") == ["Alfa sp. z o.o.", "Beta S.A.", "Delta"]
        assert names(sort="checked") == ["Beta S.A.", "Alfa sp. z o.o.", "Delta"]
        assert names(show="nonsense", sort="nonsense") == names()
        second = overview.status_page(db, at=NOW, per_page=2, page=2)
        assert (second.total, second.pages, [r.name for r in second.rows]) == (3, 2, ["Delta"])
        alfa = overview.status_page(db, at=NOW, show="expiring").rows[0]
        assert [(c.serial, c.band, c.days_left) for c in alfa.certificates] == [("A1", "soon", 10),
                                                                             ("A2", "ok", 40)]
        assert alfa.worst_band == "soon" and alfa.method_number == 2
        assert alfa.identifies.startswith("CN=Firma")


def test_timeline_shows_current_and_superseded_with_today_and_the_renewal_window(store, office) -> None:
    with store.connect() as db:
        line = overview.timeline(db, office["soon"], at=NOW)
        assert overview.timeline(db, office["none"], at=NOW) is None
    assert [(b.serial, b.state) for b in line.bars] == [("A2", "active"), ("A1", "active"), ("A0", "superseded")]
    a1 = line.bars[1]
    assert a1.x < line.today_x < a1.x + a1.width
    assert a1.window_x is not None and a1.window_x < line.today_x  # today is inside A1's renewal window
    assert line.bars[2].window_x is None and line.bars[2].x + line.bars[2].width < line.today_x
    assert [label for _, label in line.ticks] == ["2025", "2026", "2027"]


def test_a_check_of_unreadable_stored_certificates_is_an_outcome_without_calling_ksef(store, office) -> None:
    from klucznik.ksef.client import KsefClient
    from klucznik.status import checks

    ksef = KsefClient("http://127.0.0.1:9/v2")  # never called: the check stops before KSeF
    outcome = checks.check_client(store.connect, office["soon"], ksef=ksef, at=NOW)
    assert (outcome.ok, outcome.error_code) == (False, "stored_certificate_unreadable")
    none = checks.check_client(store.connect, office["none"], ksef=ksef, at=NOW)
    assert (none.ok, none.error_code) == (False, "not_connected")


@pytest.mark.parametrize(("days", "threshold"), [(45, None), (31, None), (30, 30), (15, 30), (14, 14), (8, 14),
                                                 (7, 7), (2, 7), (1, 1), (0, 1), (-3, 1)])
def test_reminder_threshold_is_the_tightest_one_reached(days, threshold) -> None:
    from klucznik.status.reminders import threshold_for

    assert threshold_for(days) == threshold


def test_ksef_ending_a_certificate_early_counts_over_the_certificates_own_date(store, office) -> None:
    """KSeF's validTo from the last live check wins when it is earlier (a TEST certificate shortened in KSeF)."""
    with store.write() as db:
        record_outcomes(db, [CheckOutcome(client_id=office["fine"], at=NOW, ok=True, method="user_certs",
                                          certificates={"B1": {"type": "Authentication", "status": "Active",
                                                               "valid_to": "2026-12-04T09:00:00Z"}})])
    with store.connect() as db:
        items = expiry.expiring(db, at=NOW, days=30)
        assert [(i.serial, i.days_left) for i in items] == [("B1", 3), ("A1", 10)]
        assert overview.banner(db, at=NOW).expiring == 2
        rows = overview.status_page(db, at=NOW, show="expiring").rows
        assert [r.name for r in rows] == ["Alfa sp. z o.o.", "Beta S.A."]
        beta = rows[1].certificates[0]
        assert (beta.days_left, beta.band) == (3, "urgent")
        line = overview.timeline(db, office["fine"], at=NOW)
        assert line.bars[0].not_after == NOW + 3 * D
        assert expiry.expiring(db, at=NOW + 4 * D, days=0)[0].status == "Expired"


def test_only_errors_ksef_answered_go_to_the_ksef_errors_list(store, office) -> None:
    finding = CheckOutcome(client_id=office["soon"], at=NOW, ok=False, error_code="certificate_not_active",
                           message=Text("Certyfikat unieważniony.", "Certificate revoked."))
    unreachable = CheckOutcome(client_id=office["fine"], at=NOW, ok=False, error_code="ksef_unreachable",
                               message=Text("Brak połączenia.", "No connection."))
    with store.write() as db:
        record_outcomes(db, [finding, unreachable])
    with store.connect() as db:
        assert overview.ksef_errors_of(db, office["soon"]) == []
        (error,) = overview.ksef_errors_of(db, office["fine"])
        assert "nie dostał odpowiedzi z KSeF" in error.advice.pl
        assert latest_checks(db, [office["soon"]])[office["soon"]].message.pl == "Certyfikat unieważniony."
