"""Client companies in the domain: NIP rules, duplicates, search (Polish letters, NIP with dashes), pages."""

from __future__ import annotations

import json

import pytest
from stdnum.pl import nip as stdnum_nip

from klucznik import ids as nip_rules
from klucznik.errors import FieldErrors
from klucznik.errors import NotFound
from klucznik.errors import ValidationError
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import ADMIN
from tests.support.defaults import NOW
from tests.support.instances import add_clients
from tests.support.instances import nips

VALID = "5261040828"


@pytest.mark.parametrize(
    "written",
    ["5261040828", "526-104-08-28", "526 104 08 28", "PL5261040828", "pl 526-10-40-828", " 5261040828 "],
)
def test_nip_forms_normalise(written: str) -> None:
    assert nip_rules.normalize_nip(written) == VALID
    assert nip_rules.is_valid_nip(written)


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("", "Wpisz NIP"),
        ("526104082", "10 cyfr"),
        ("52610408281", "10 cyfr"),
        ("52610408A8", "10 cyfr"),
        ("5261040829", "cyfrą kontrolną"),  # wrong check digit
        ("0000000000", "cyfrą kontrolną"),  # passes the checksum, but nobody's NIP
        ("DE5261040828", "10 cyfr"),
    ],
)
def test_bad_nips_are_refused_with_a_plain_message(written: str, fragment: str) -> None:
    assert stdnum_nip.is_valid("0000000000")  # the library alone would accept it
    with pytest.raises(ValidationError) as info:
        nip_rules.normalize_nip(written)
    assert info.value.code == "nip_invalid"
    assert info.value.field == "nip"
    assert fragment in info.value.message_pl.replace("błędną cyfrę kontrolną", "cyfrą kontrolną")
    assert not nip_rules.is_valid_nip(written)


def test_every_check_digit_but_one_is_refused() -> None:
    valid = [d for d in "0123456789" if nip_rules.is_valid_nip("526104082" + d)]
    assert valid == ["8"]


def test_format_nip() -> None:
    assert nip_rules.format_nip(VALID) == "526-104-08-28"
    assert nip_rules.format_nip("123") == "123"


def test_validate_reports_every_field_at_once() -> None:
    with pytest.raises(FieldErrors) as info:
        clients.validate(nip="123", name="   ", email="not-an-email", notes="x" * 5001)
    assert sorted(info.value.errors) == ["email", "name", "nip", "notes"]
    assert all(err.message_pl and err.message_en for err in info.value.errors.values())


def test_validate_cleans_values() -> None:
    values = clients.validate(
        nip="PL 526-104-08-28", name="  Spółka   Żuraw  ", email=" biuro@zuraw.pl ", notes="  uwaga  "
    )
    assert values == clients.ClientInput(
        nip=VALID, name="Spółka Żuraw", email="biuro@zuraw.pl", notes="uwaga"
    )


def test_create_and_get(store: Store) -> None:
    with store.write() as db:
        client = clients.create_client(
            db, clients.validate(nip="526-104-08-28", name="Żabka Sp. z o.o."), actor=ADMIN, at=NOW
        )
    db = store.connect()
    try:
        again = clients.get_client(db, client.id)
        entry = db.execute(
            "SELECT actor, action, object_id, details FROM audit_log ORDER BY id DESC"
        ).fetchone()
    finally:
        db.close()
    assert again == client
    assert again.nip == VALID and again.nip_formatted == "526-104-08-28"
    assert again.archived_at is None and again.auth_method is None
    assert entry[:3] == (ADMIN, "clients.create", str(client.id))
    assert json.loads(entry[3]) == {"name": "Żabka Sp. z o.o.", "nip": VALID}


def test_duplicate_nip_is_refused_and_nothing_changes(store: Store) -> None:
    add_clients(store, [("Pierwsza", VALID)])
    with pytest.raises(FieldErrors) as info, store.write() as db:
        clients.create_client(db, clients.validate(nip="PL526-104-08-28", name="Druga"), actor=ADMIN, at=NOW)
    assert "526-104-08-28" in info.value.errors["nip"].message_pl
    assert "archiwum" in info.value.errors["nip"].message_pl
    db = store.connect()
    try:
        assert [r[0] for r in db.execute("SELECT name FROM clients")] == ["Pierwsza"]
        assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'clients.create'").fetchone()[0] == 1
    finally:
        db.close()


def test_update_to_another_clients_nip_is_refused(store: Store) -> None:
    first, second = nips(2)
    ids = add_clients(store, [("A", first), ("B", second)])
    with pytest.raises(FieldErrors), store.write() as db:
        clients.update_client(db, ids[1], clients.validate(nip=first, name="B"), actor=ADMIN, at=NOW)
    with store.write() as db:
        updated = clients.update_client(
            db, ids[1], clients.validate(nip=second, name="B nowa", email="b@b.pl"), actor=ADMIN, at=NOW
        )
        audit = db.execute("SELECT details FROM audit_log ORDER BY id DESC").fetchone()[0]
    assert updated.name == "B nowa" and updated.nip == second
    assert json.loads(audit) == {
        "changed": ["email", "name"],
        "changes": {"email": ["", "b@b.pl"], "name": ["B", "B nowa"]},
    }


def test_get_missing_client(db) -> None:  # noqa: ANN001
    with pytest.raises(NotFound):
        clients.get_client(db, 999)


@pytest.fixture
def many(store: Store) -> Store:
    values = nips(6)
    add_clients(
        store,
        [
            ("Łukasz Żółkiewski Usługi", values[0]),
            ("ŻABKA Polska", values[1]),
            ("Zakład Ślusarski Ćma", values[2]),
            ("Biuro Rachunkowe Ąę", values[3]),
            ("Apteka pod Orłem", values[4]),
            ("Żółw i Spółka", values[5]),
        ],
    )
    store.test_nips = values  # type: ignore[attr-defined]
    return store


def _names(store: Store, query: str, **kwargs) -> list[str]:  # noqa: ANN003
    db = store.connect()
    try:
        return [c.name for c in clients.search(db, query, **kwargs).clients]
    finally:
        db.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("żółkiewski", ["Łukasz Żółkiewski Usługi"]),
        ("ŻÓŁKIEWSKI", ["Łukasz Żółkiewski Usługi"]),
        ("łukasz", ["Łukasz Żółkiewski Usługi"]),
        ("żabka", ["ŻABKA Polska"]),
        ("ślusar", ["Zakład Ślusarski Ćma"]),
        ("ćma", ["Zakład Ślusarski Ćma"]),
        ("ąę", ["Biuro Rachunkowe Ąę"]),
        ("żół", ["Łukasz Żółkiewski Usługi", "Żółw i Spółka"]),
        ("spółka", ["Żółw i Spółka"]),
        ("pod orłem", ["Apteka pod Orłem"]),
        ("orłem apteka", ["Apteka pod Orłem"]),
        ("nic takiego", []),
        ("%", []),
        ("_", []),
    ],
)
def test_search_by_name_with_polish_letters(many: Store, query: str, expected: list[str]) -> None:
    assert _names(many, query) == expected


def test_search_by_nip_with_and_without_dashes(many: Store) -> None:
    target = many.test_nips[3]  # type: ignore[attr-defined]
    for query in (target, nip_rules.format_nip(target), nip_rules.format_nip(target)[:7], target[-5:]):
        assert "Biuro Rachunkowe Ąę" in _names(many, query), query
    assert _names(many, target) == ["Biuro Rachunkowe Ąę"]


def test_search_order_is_by_name(many: Store) -> None:
    names = _names(many, "")
    assert names[0] == "Apteka pod Orłem" and names[1] == "Biuro Rachunkowe Ąę"
    assert len(names) == 6


def test_pagination(store: Store) -> None:
    add_clients(store, [(f"Firma x{i:03d}", nip) for i, nip in enumerate(nips(53))])
    db = store.connect()
    try:
        first = clients.search(db, "", page=1, per_page=25)
        third = clients.search(db, "", page=3, per_page=25)
        beyond = clients.search(db, "", page=99, per_page=25)
        filtered = clients.search(db, "firma X01", page=1, per_page=5)
    finally:
        db.close()
    assert first.total == 53 and first.pages == 3
    assert [c.name for c in first.clients] == [f"Firma x{i:03d}" for i in range(25)]
    assert [c.name for c in third.clients] == ["Firma x050", "Firma x051", "Firma x052"]
    assert beyond.page == 3 and beyond.clients == third.clients  # clamped to the last page
    assert filtered.total == 10 and filtered.pages == 2
    assert [c.name for c in filtered.clients] == [f"Firma x{i:03d}" for i in range(10, 15)]


def test_archive_and_restore(many: Store) -> None:
    db = many.connect()
    try:
        target = clients.search(db, "żabka").clients[0]
    finally:
        db.close()
    with many.write() as db:
        archived = clients.set_archived(db, target.id, True, actor=ADMIN, at=NOW)
    assert archived.archived_at is not None
    assert _names(many, "żabka") == []
    assert _names(many, "żabka", archived=True) == ["ŻABKA Polska"]
    assert len(_names(many, "")) == 5
    with many.write() as db:
        restored = clients.set_archived(db, target.id, False, actor=ADMIN, at=NOW)
        actions = [
            r[0]
            for r in db.execute(
                "SELECT action FROM audit_log WHERE object_id = ? ORDER BY id", [str(target.id)]
            )
        ]
    assert restored.archived_at is None
    assert _names(many, "żabka") == ["ŻABKA Polska"]
    assert actions == ["clients.create", "clients.archive", "clients.restore"]


def test_archived_nip_still_blocks_a_duplicate(many: Store) -> None:
    target_nip = many.test_nips[1]  # type: ignore[attr-defined]
    db = many.connect()
    try:
        target = clients.search(db, target_nip).clients[0]
    finally:
        db.close()
    with many.write() as db:
        clients.set_archived(db, target.id, True, actor=ADMIN, at=NOW)
    with pytest.raises(FieldErrors), many.write() as db:
        clients.create_client(db, clients.validate(nip=target_nip, name="Nowa"), actor=ADMIN, at=NOW)


def test_set_auth_method(store: Store) -> None:
    (client_id,) = add_clients(store, [("Firma", VALID)])
    with store.write() as db:
        clients.set_auth_method(db, client_id, "user_certs", at=NOW)
        assert clients.get_client(db, client_id).auth_method == "user_certs"
        with pytest.raises(ValueError):
            clients.set_auth_method(db, client_id, "magic", at=NOW)


def test_archive_missing_client(store: Store) -> None:
    with pytest.raises(NotFound), store.write() as db:
        clients.set_archived(db, 12345, True, actor=ADMIN, at=NOW)


def test_clients_are_listed_in_polish_alphabetical_order(store) -> None:
    from klucznik.records import clients as domain

    names = ["Zakład Stolarski", "Łukasz Nowak", "Ćma Sp. z o.o.", "Lubuska Spółka", "cegielnia", "Ąkro", "Źródło"]
    nips = ["5261040828", "1000000006", "1132191233", "5213017228", "9542583988", "6462933516", "1000000012"]
    with store.write() as db:
        for name, number in zip(names, nips, strict=True):
            domain.create_client(db, domain.validate(nip=number, name=name), actor="admin", at=NOW)
    database = store.connect()
    try:
        listed = [c.name for c in domain.search(database).clients]
    finally:
        database.close()
    assert listed == ["Ąkro", "cegielnia", "Ćma Sp. z o.o.", "Lubuska Spółka", "Łukasz Nowak", "Zakład Stolarski",
                      "Źródło"]
