"""Benchmark of the certificate checks : prints figures, asserts nothing.

1. Validating a full set (two pairs, EC P-256 keys encrypted like the KSeF taxpayer application's:
   PKCS#8 PBES2, PBKDF2-HMAC-SHA256 100,000 iterations, AES-256-CBC) against the floor: the two key
   decryptions alone, measured in the same run, interleaved. Goal: ratio ≤ 1.3.
2. One inline field check through the Flask test client (the whole form is posted, as htmx does, so
   both keys are decrypted): p50/p95. Goal: p95 ≤ 150 ms.

Run: ``.venv/bin/python bench/bench_certificates.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402

from klucznik import certs as certificates  # noqa: E402
from tests.support.certificates import AT  # noqa: E402
from tests.support.certificates import PASSWORD  # noqa: E402
from tests.support.certificates import cert_pem  # noqa: E402
from tests.support.certificates import certificate  # noqa: E402
from tests.support.certificates import ec_key  # noqa: E402
from tests.support.certificates import key_like_taxpayer_app  # noqa: E402

#: Benchmarks record at a fixed moment, like the tests.
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def make_set() -> dict[str, tuple[bytes, bytes]]:
    """Both pairs, keys encrypted like the taxpayer application's."""
    pairs = {}
    for slot, ksef_type in (("online", "Authentication"), ("offline", "Offline")):
        key = ec_key(f"bench-{slot}")
        pairs[slot] = (cert_pem(certificate(key=key, ksef_type=ksef_type)), key_like_taxpayer_app(key))
    return pairs


def floor_once(pairs: dict[str, tuple[bytes, bytes]]) -> float:
    """Seconds for the two key decryptions alone."""
    start = time.perf_counter()
    for _crt, key in pairs.values():
        serialization.load_pem_private_key(key, password=PASSWORD.encode())
    return time.perf_counter() - start


def full_once(pairs: dict[str, tuple[bytes, bytes]]) -> float:
    """Seconds for the full check of the set (both pairs, NIP, set rules)."""
    online = certificates.PairInput(*pairs["online"], password=PASSWORD)
    offline = certificates.PairInput(*pairs["offline"], password=PASSWORD)
    start = time.perf_counter()
    result = certificates.check_set(online=online, offline=offline, nip="5261040828", at=AT)
    elapsed = time.perf_counter() - start
    assert result.ok, result.all_problems  # a benchmark of a failing check would measure the wrong thing
    return elapsed


def bench_full_set(rounds: int) -> None:
    """Print the full-set check against the floor."""
    pairs = make_set()
    floor_once(pairs), full_once(pairs)  # warm-up
    floors, fulls = [], []
    for _ in range(rounds):
        floors.append(floor_once(pairs))
        fulls.append(full_once(pairs))
    floor, full = statistics.median(floors), statistics.median(fulls)
    print(f"full set (2 pairs, PBKDF2-SHA256 100k, EC P-256), {rounds} rounds, medians:")
    print(f"  floor (two key decryptions): {floor * 1000:8.2f} ms")
    print(f"  full check_set():            {full * 1000:8.2f} ms")
    print(f"  ratio full/floor:            {full / floor:8.3f}   (goal <= 1.3)")


def bench_inline(rounds: int) -> None:
    """Print p50/p95 of one inline field check through the Flask test client."""
    from app import create_app
    from klucznik.instance.keyring import TEST_KDF
    from klucznik.instance.store import Store
    from klucznik.records import clients
    from tests.support.defaults import ADMIN
    from tests.support.defaults import ADMIN_PASSWORD
    from tests.support.web import WebClient

    pairs = make_set()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "instance", kdf=TEST_KDF)
        store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
        with store.write() as db:
            client = clients.create_client(db, clients.validate(nip="5261040828", name="Bench"), actor=ADMIN, at=NOW)
        app = create_app(
            {"TESTING": True, "KLUCZNIK_STORE": store, "KLUCZNIK_KDF": TEST_KDF, "KLUCZNIK_CLOCK": lambda: AT}
        )
        web = WebClient(app.test_client())
        web.login()
        web.get(f"/clients/{client.id}/certificates/upload")
        url = f"/clients/{client.id}/certificates/check/offline-password"
        data = {"online_password": PASSWORD, "offline_password": PASSWORD, "nip": "5261040828"}
        headers = {"X-CSRFToken": web.token(), "HX-Request": "true"}
        times = []
        for i in range(rounds + 3):
            payload = dict(data)
            for slot, (crt, key) in pairs.items():
                payload[f"{slot}_crt"] = (BytesIO(crt), f"{slot}.crt")
                payload[f"{slot}_key"] = (BytesIO(key), f"{slot}.key")
            start = time.perf_counter()
            response = web.client.post(url, data=payload, headers=headers, content_type="multipart/form-data")
            elapsed = time.perf_counter() - start
            assert response.status_code == 200, response.status_code
            if i >= 3:  # warm-up
                times.append(elapsed)
    times.sort()
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"inline field check (whole form posted, both keys decrypted), {rounds} requests:")
    print(
        f"  p50: {p50 * 1000:8.2f} ms   p95: {p95 * 1000:8.2f} ms   max: {times[-1] * 1000:8.2f} ms   (goal p95 <= 150 ms)"
    )


def main() -> None:
    """Run both benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    bench_full_set(args.rounds)
    bench_inline(args.rounds)


if __name__ == "__main__":
    main()
