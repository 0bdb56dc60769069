"""The clients page with 1,000 clients: server time through the Flask test client (issue 2: p95 ≤ 50 ms).

A real encrypted instance with 1,000 client companies; the real app (gate, session, CSRF, templates,
SQLCipher connection per request); a logged-in test client. Timed requests: the full list page, the htmx
live-search partial (name with Polish letters, NIP with dashes), a page in the middle, the archive, one
client's page. The time is measured around ``client.get`` (the whole WSGI request in this process, no
network). Prints median and p95 per kind and overall, and peak RSS. No assertions on time.

Run: ``.venv/bin/python bench/bench_clients_page.py [requests per kind]`` (default 100).
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

from app import create_app
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients

#: Benchmarks record at a fixed moment, like the tests.
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)
WORDS = ["Biuro", "Żółw", "Łódź", "Piekarnia", "Ślusarz", "Apteka", "Handel", "Usługi", "Transport", "Ćma"]
CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def nips(count: int) -> list[str]:
    out: list[str] = []
    k = 0
    while len(out) < count:
        base = f"{(k * 7919 + 1234567) % 900_000_000 + 100_000_000:09d}"
        k += 1
        check = sum(int(d) * w for d, w in zip(base, WEIGHTS, strict=True)) % 11
        if check != 10 and base + str(check) not in out:
            out.append(base + str(check))
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(per_kind: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instance"
        os.environ["KLUCZNIK_INSTANCE"] = str(path)
        store = Store(path, kdf=TEST_KDF)  # cheap KDF: this bench is about the page, not the login
        store.setup("admin", "bench-password-1", at=NOW)
        values = nips(1000)
        with store.write() as db:
            for i, nip in enumerate(values):
                clients.create_client(
                    db,
                    clients.validate(
                        nip=nip,
                        name=f"{WORDS[i % 10]} {WORDS[(i // 10) % 10]} {i}",
                        email=f"biuro{i}@firma.pl",
                    ),
                    actor="admin", at=NOW
                )
            archived = clients.search(db, "", page=3).clients
            for client in archived:
                clients.set_archived(db, client.id, True, actor="admin", at=NOW)
        app = create_app({"KLUCZNIK_STORE": store, "KLUCZNIK_KDF": TEST_KDF})
        client = app.test_client()
        token = CSRF_RE.search(client.get("/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
        response = client.post(
            "/login", data={"csrf_token": token, "username": "admin", "password": "bench-password-1"}
        )
        assert response.status_code == 303, response.status_code
        one = clients.search(store.connect(), values[500]).clients[0].id
        nip = values[123]
        kinds = {
            "GET /clients (full page, 1,000 clients)": ("/clients", {}),
            "GET /clients?q=łódź (htmx live search)": (
                "/clients?q=%C5%82%C3%B3d%C5%BA",
                {"HX-Request": "true"},
            ),
            "GET /clients?q=NIP-with-dashes (htmx)": (
                f"/clients?q={nip[:3]}-{nip[3:6]}-{nip[6:8]}",
                {"HX-Request": "true"},
            ),
            "GET /clients?page=20 (htmx pager)": ("/clients?page=20", {"HX-Request": "true"}),
            "GET /clients?archived=1 (full page)": ("/clients?archived=1", {}),
            "GET /clients/<id> (client page)": (f"/clients/{one}", {}),
        }
        for url, headers in kinds.values():  # warm up templates and caches
            assert client.get(url, headers=headers).status_code == 200, url
        everything: list[float] = []
        print(
            f"clients page with 1,000 clients: server time through the Flask test client, {per_kind} requests each"
        )
        for label, (url, headers) in kinds.items():
            times = []
            for _ in range(per_kind):
                start = time.perf_counter()
                response = client.get(url, headers=headers)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200
            everything += times
            print(
                f"{label:44} median {statistics.median(times) * 1000:6.1f} ms   p95 {p95(times) * 1000:6.1f} ms"
            )
        print(
            f"{'ALL':44} median {statistics.median(everything) * 1000:6.1f} ms   p95 {p95(everything) * 1000:6.1f} ms"
            "   (goal p95 ≤ 50 ms)"
        )
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
        store.seal()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
