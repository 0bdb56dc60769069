"""The status page with 1,000 and 10,000 clients: server time through the Flask test client (issue 12:
p95 ≤ 50 ms at 1,000 clients, ≤ 150 ms at 10,000).

A real encrypted instance per size: every client has an active Authentication and Offline certificate (expiry
dates spread over two years, so about 4 % fall within the 30-day window and some have expired), every third a
superseded pair, every second a stored live check (one in seven failed, with a KSeF error). Timed requests: the
full status page, the htmx table with each filter, a search, sorting by expiry, a page in the middle, one
client's page (timeline and KSeF errors) and the clients page (its banner counts). Time is measured around
``client.get`` (the whole WSGI request, no network). Prints median and p95 per kind and overall, and peak RSS.

Run: ``.venv/bin/python bench/bench_status_page.py [requests per kind] [sizes ...]`` (default 50, 1000 10000).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench_clients_page import CSRF_RE
from bench_clients_page import NOW
from bench_clients_page import WORDS
from bench_clients_page import nips
from bench_clients_page import p95

from app import create_app
from klucznik import clock
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from klucznik.records import ksef_log
from klucznik.status.results import CheckOutcome
from klucznik.status.results import record_outcomes
from klucznik.text import Text

D = timedelta(days=1)


def fill(store: Store, count: int) -> list[int]:
    values = nips(count)
    ids = []
    with store.write() as db:
        for i, nip in enumerate(values):
            method = ("portal_certs", "user_certs", "grant", None)[i % 4]
            client = clients.create_client(
                db, clients.validate(nip=nip, name=f"{WORDS[i % 10]} {WORDS[(i // 10) % 10]} {i}"),
                actor="admin", at=NOW)
            ids.append(client.id)
            if method:
                clients.set_auth_method(db, client.id, method, at=NOW)
            if method in ("portal_certs", "user_certs"):
                end = NOW + ((i * 37) % 760 - 30) * D
                rows = [("online", "Authentication", f"{i:08X}A", end), ("offline", "Offline", f"{i:08X}B", end + 5 * D)]
                if i % 3 == 0:
                    rows += [("online", "Authentication", f"{i:08X}C", NOW - 300 * D),
                             ("offline", "Offline", f"{i:08X}D", NOW - 300 * D)]
                db["credentials"].insert_all([{
                    "client_id": client.id, "slot": slot, "origin": "generated", "certificate": b"DER",
                    "private_key": b"KEY", "ksef_type": kind, "serial": serial,
                    "subject": f"CN=Firma {i},2.5.4.97=VATPL-{nip}", "issuer": "CN=TEST CCK KSeF",
                    "fingerprint": serial, "not_before": clock.iso(valid_to - 730 * D),
                    "not_after": clock.iso(valid_to), "status": "active" if serial[-1] in "AB" else "superseded",
                    "created_at": clock.iso(NOW),
                } for slot, kind, serial, valid_to in rows])
        outcomes = []
        for i, client_id in enumerate(ids):
            if i % 2:
                continue
            failed = i % 7 == 0
            outcomes.append(CheckOutcome(
                client_id=client_id, at=NOW - D, ok=not failed, method="portal_certs",
                certificates={f"{i:08X}A": {"type": "Authentication", "status": "Active"}},
                http_status=400 if failed else None, ksef_code=25008 if failed else None,
                ksef_text="Certyfikat nie istnieje." if failed else "",
                message=Text("KSeF nie zna certyfikatu.", "Unknown certificate.") if failed else None))
            if failed:
                ksef_log.record_operation(db, client_id=client_id, at=NOW - 2 * D, operation="auth.status",
                                          ok=False, ksef_code=415, description="Brak uprawnień")
        record_outcomes(db, outcomes)
    return ids


def bench(count: int, per_kind: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instance"
        os.environ["KLUCZNIK_INSTANCE"] = str(path)
        store = Store(path, kdf=TEST_KDF)
        store.setup("admin", "bench-password-1", at=NOW)
        started = time.perf_counter()
        ids = fill(store, count)
        print(f"\n{count:,} clients (instance filled in {time.perf_counter() - started:.1f} s, "
              f"database {store.db_path.stat().st_size / 1024 / 1024:.1f} MiB)")
        app = create_app({"KLUCZNIK_STORE": store, "KLUCZNIK_KDF": TEST_KDF, "KLUCZNIK_CLOCK": lambda: NOW})
        client = app.test_client()
        token = CSRF_RE.search(client.get("/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
        response = client.post("/login", data={"csrf_token": token, "username": "admin",
                                               "password": "bench-password-1"})
        assert response.status_code == 303, response.status_code
        hx = {"HX-Request": "true"}
        kinds = {
            "GET /status (full page)": ("/status", {}),
            "GET /status?show=expiring (htmx)": ("/status?show=expiring", hx),
            "GET /status?show=errors (htmx)": ("/status?show=errors", hx),
            "GET /status?show=unauthorized (htmx)": ("/status?show=unauthorized", hx),
            "GET /status?method=grant (htmx)": ("/status?method=grant", hx),
            "GET /status?q=łódź (htmx search)": ("/status?q=%C5%82%C3%B3d%C5%BA", hx),
            "GET /status?sort=expiry (htmx)": ("/status?sort=expiry", hx),
            "GET /status?sort=checked&page=20 (htmx)": ("/status?sort=checked&page=20", hx),
            "GET /status/clients/<id> (timeline, errors)": (f"/status/clients/{ids[len(ids) // 2]}", {}),
            "GET /clients (banner counts)": ("/clients", {}),
        }
        for url, headers in kinds.values():
            assert client.get(url, headers=headers).status_code == 200, url
        everything: list[float] = []
        for label, (url, headers) in kinds.items():
            times = []
            for _ in range(per_kind):
                start = time.perf_counter()
                response = client.get(url, headers=headers)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200
            everything += times
            print(f"{label:46} median {statistics.median(times) * 1000:6.1f} ms   p95 {p95(times) * 1000:6.1f} ms")
        goal = 50 if count <= 1000 else 150
        print(f"{'ALL':46} median {statistics.median(everything) * 1000:6.1f} ms   "
              f"p95 {p95(everything) * 1000:6.1f} ms   (goal p95 ≤ {goal} ms)")
        store.seal()
        return everything


def main(per_kind: int, sizes: list[int]) -> None:
    print(f"status page: server time through the Flask test client, {per_kind} requests per kind")
    for size in sizes:
        bench(size, per_kind)
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(args[0] if args else 50, args[1:] or [1000, 10000])
