"""'Sprawdź wszystkich' against the sandbox with KSeF's official rate limits: wall time ÷ the floor the limits set.

Run: ``.venv/bin/python bench/bench_check_all.py [CLIENTS] [CONCURRENCY]`` (default 1000 clients, 8 at once).

The sandbox runs in its own process (waitress, 8 threads: the portal and KSeF are separate machines, so they
do not share one interpreter lock) with the official limits on. Each client gets a KSeF Authentication
certificate issued by the sandbox's KSeF CA (written into the sandbox's records before it starts, as an
enrollment would leave them) and stored in a real encrypted instance (method 3). The portal's
:class:`~klucznik.status.jobs.CheckRunner` then checks every client as "Sprawdź wszystkich" does: a real XAdES
login with the stored certificate, the certificate limits, ``/certificates/query``, ending the session; outcomes
stored in batches. Every answered request (not 429) is counted, on the client side, per rate-limit counter (the public ``/auth`` operations per IP
address, the others per context); the floor is the slowest counter's earliest schedule under its limit
(:func:`sandbox.ratelimits.floor_seconds`). Prints wall time, floor, their ratio (goal ≤ 1.2), 429s, writes
and peak RSS. Figures only; nothing asserts a speed.
"""

from __future__ import annotations

import logging
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_sandbox_limits import _nips  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

import sandbox  # noqa: E402
from klucznik import certs  # noqa: E402
from klucznik.instance.keyring import TEST_KDF  # noqa: E402
from klucznik.instance.store import Store  # noqa: E402
from klucznik.ksef.client import KsefClient  # noqa: E402
from klucznik.ksef.transport import RetryPolicy  # noqa: E402
from klucznik.records import clients  # noqa: E402
from klucznik.records import credentials  # noqa: E402
from klucznik.records import office  # noqa: E402
from klucznik.status.jobs import CheckRunner  # noqa: E402
from sandbox import ca  # noqa: E402
from sandbox.ratelimits import floor_seconds  # noqa: E402
from sandbox.state import Identity  # noqa: E402
from sandbox.state import IssuedCertificate  # noqa: E402

_TEMPLATES = [
    (re.compile(r"^/v2/auth/challenge$"), "POST /auth/challenge"),
    (re.compile(r"^/v2/auth/xades-signature$"), "POST /auth/xades-signature"),
    (re.compile(r"^/v2/auth/token/redeem$"), "POST /auth/token/redeem"),
    (re.compile(r"^/v2/auth/sessions/current$"), "DELETE /auth/sessions/current"),
    (re.compile(r"^/v2/auth/[^/]+$"), "GET /auth/{referenceNumber}"),
    (re.compile(r"^/v2/certificates/limits$"), "GET /certificates/limits"),
    (re.compile(r"^/v2/certificates/query$"), "POST /certificates/query"),
]


class Counting:
    """A ``requests`` response hook: answered requests per (endpoint, bearer token); the token stands for the
    context, since the limits of the non-public operations count per context."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.refused = 0
        self.lock = threading.Lock()

    def __call__(self, response, *args, **kwargs):
        path = urlsplit(response.request.url).path
        endpoint = next((name for pattern, name in _TEMPLATES if pattern.match(path)), path)
        with self.lock:
            if response.status_code == 429:
                self.refused += 1
            else:
                self.counts[(endpoint, response.request.headers.get("Authorization", ""))] += 1
        return response


_SERVE = """
import json, sys, logging
import waitress
import sandbox
app = sandbox.create_app({"SANDBOX_CONFIG": {"rate_limits": True}})
with open(sys.argv[1], encoding="utf-8") as fh:
    sandbox.state_of(app).load_json(json.load(fh))
server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
print(server.effective_port, flush=True)
server.run()
"""


def seed(state, store: Store, nips: list[str]) -> None:
    """Each client: a sandbox-issued Authentication certificate, stored as the client's (method 3)."""
    now = state.now()
    with store.write() as db:
        for nip in nips:
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Firma {nip}"),
                                 x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
                                 x509.NameAttribute(NameOID.COUNTRY_NAME, "PL")])
            csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
            cert = ca.issue_ksef_certificate(csr, certificate_type="Authentication", valid_from=now)
            serial = ca.serial_hex(cert.serial_number)
            state.certificates[serial] = IssuedCertificate(serial=serial, certificate=cert, name=f"Bench {nip}",
                                                           certificate_type="Authentication",
                                                           subject=Identity("Nip", nip), requested=now)
            client = clients.create_client(db, clients.validate(nip=nip, name=f"Firma {nip}"), actor="admin", at=now)
            clients.set_auth_method(db, client.id, "user_certs", at=now)
            credentials.add_credential(
                db, client_id=client.id, slot="online", origin="uploaded", info=certs.summarise(cert),
                ksef_type="Authentication", actor="admin", at=now, key_password=None, ksef_environment="sandbox",
                private_key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))


def main(count: int = 1000, concurrency: int = 8) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    state = sandbox.state_of(sandbox.create_app({"SANDBOX_CONFIG": {"rate_limits": True}}))
    limiter = state.rate_limits
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "instance", kdf=TEST_KDF)
        store.setup("admin", "bench-password-1", at=state.now())
        nips = _nips(count)
        started = time.perf_counter()
        seed(state, store, nips)
        state.save(Path(tmp) / "sandbox.json")
        server = subprocess.Popen([sys.executable, "-c", _SERVE, str(Path(tmp) / "sandbox.json")],
                                  cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{int(server.stdout.readline())}/v2"
            with store.write() as db:
                office.save_office(db, office.OfficeProfile(name="Biuro", nip="5260250274",
                                                            ksef_environment="sandbox", sandbox_url=url),
                                   actor="admin", at=state.now())
            print(f"{count} clients seeded in {time.perf_counter() - started:.1f} s; checking {concurrency} at once, "
                  "official rate limits on")
            policy = RetryPolicy(attempts=3, rate_limit_attempts=10, max_retry_after=120)
            counting = Counting()

            def ksef() -> KsefClient:
                client = KsefClient(url, retries=policy)
                client.session.hooks["response"].append(counting)
                return client

            runner = CheckRunner(store, ksef_factory=ksef, concurrency=concurrency, batch_size=100,
                                 poll_interval=0.05)
            with store.connect() as db:
                ids = [r[0] for r in db.execute("SELECT id FROM clients ORDER BY id")]
            start = time.perf_counter()
            outcomes = runner.run(ids)
            wall = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait(10)
    per_counter: dict[str, int] = {}
    for (endpoint, token), calls in counting.counts.items():
        found = limiter.limit_for(endpoint)
        if found is None:
            continue
        key = endpoint if found[0] == "-" else f"{endpoint} @ {token[-12:]}"
        per_counter[key] = per_counter.get(key, 0) + calls
    floor, slowest, calls = max(
        (floor_seconds(n, limiter.limit_for(key.split(" @ ")[0])[1]), key, n) for key, n in per_counter.items()
    )
    ok = sum(1 for o in outcomes if o.ok)
    print(f"checked {len(outcomes)} ({ok} ok) in {wall:.1f} s wall, {len(outcomes) / wall:.1f} clients/s; "
          f"{runner.writes} writes; 429 answers {counting.refused}")
    ratio = f"ratio wall/floor {wall / floor:.2f} (goal ≤ 1.2)" if floor else "the limits do not bind at this size"
    print(f"floor set by the limits: {floor:.1f} s ({slowest}: {calls} calls under "
          f"{limiter.limit_for(slowest.split(' @ ')[0])[1].to_json()}); {ratio}")
    print(f"peak RSS of the portal side: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
