"""N logged-in sessions against the real portal under waitress: mixed reads and writes (issue 10).

Goal (8 sessions): write p95 ≤ 50 ms, reads p95 ≤ 20 ms, no error; instance/ stays within 2.5 times the data.

The bench sets up an instance with ``clients`` clients, starts ``klucznik serve`` (waitress, 8 threads) as a
child process over it, logs ``sessions`` users in (each with its own requests session and CSRF token) and
lets every session send requests for ``seconds``: about 70 % reads (the clients list with a live search, one
client's page) and 30 % writes (a new client through the form). Prints p50/p95 per kind, the number of
requests and errors, the CPU the portal and the load client used, and instance/ against the data at the end.

Two ways to load it:

- paced (the default, ``--rate 5``): every session sends R requests a second at random moments (a Poisson
  process, its own seed), whether or not the previous answer came; a request's time counts from the moment
  it was due, so an answer that comes late also delays the clock of the ones queued behind it (no
  "coordinated omission"). 8 sessions at R = 5 is 40 requests a second, many times what eight accountants
  click. This is the load the latency goals are about.
- ``--closed``: every session sends its next request as soon as the previous answer came, with no pause.
  That finds the portal's throughput; the latencies it prints are the queue that saturation makes (Little's
  law: requests in flight ÷ requests a second), whatever the code does.

Run: ``.venv/bin/python bench/bench_load.py [sessions] [seconds] [clients] [--rate R | --closed]`` (default
8 30 1000, ``--rate 5``).
"""

from __future__ import annotations

import os
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

import requests

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]
KLUCZNIK = Path(sys.executable).parent / "klucznik"
WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)
CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CLIENT_RE = re.compile(r"/clients/(\d+)$")
WORDS = ["Biuro", "Żółw", "Łódź", "Piekarnia", "Ślusarz", "Apteka", "Handel", "Usługi"]


def nip_series(start: int):  # noqa: ANN201 - a generator
    n = start
    while True:
        n += 1
        base = f"{(n * 7919 + 7654321) % 10**9:09d}"
        check = sum(int(d) * w for d, w in zip(base, WEIGHTS, strict=True)) % 11
        if base[:3] != "000" and check != 10:
            yield base + str(check)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def portal_cpu(pid: int) -> float:
    """CPU seconds (user + system) the portal's process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))] if ordered else float("nan")


class Session(threading.Thread):
    def __init__(  # noqa: PLR0913
        self, url: str, seconds: float, nips, lock: threading.Lock, seed: int, rate: float = 0.0  # noqa: ANN001
    ) -> None:
        super().__init__()
        self.url, self.seconds, self.nips, self.lock, self.rate = url, seconds, nips, lock, rate
        self.ready: threading.Barrier
        self.rng = random.Random(seed)
        self.times: dict[str, list[float]] = {
            "read: list + search": [],
            "read: client page": [],
            "write: new client": [],
        }
        self.errors: list[str] = []
        self.ids: list[int] = []

    def run(self) -> None:
        http = requests.Session()
        page = http.get(f"{self.url}/login", timeout=30)
        token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
        response = http.post(
            f"{self.url}/login",
            data={"csrf_token": token, "username": "admin", "password": "bench-password-1"},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 303:
            self.errors.append(f"login {response.status_code}")
            self.ready.abort()
            return
        token = CSRF_RE.search(http.get(f"{self.url}/clients", timeout=30).text).group(1)  # type: ignore[union-attr]
        self.ready.wait()  # every session logged in (Argon2id): the timed window starts for all at once
        deadline = time.perf_counter() + self.seconds
        due = time.perf_counter()
        while time.perf_counter() < deadline:
            roll = self.rng.random()
            if self.rate:
                due += self.rng.expovariate(self.rate)
                if due >= deadline:
                    break
                time.sleep(max(0.0, due - time.perf_counter()))
                start = due  # counted from when it was due, also when the previous answer came late
            else:
                start = time.perf_counter()
            if roll < 0.3:
                with self.lock:
                    nip = next(self.nips)
                response = http.post(
                    f"{self.url}/clients/new",
                    data={"csrf_token": token, "nip": nip, "name": f"{self.rng.choice(WORDS)} {nip}"},
                    allow_redirects=False,
                    timeout=60,
                )
                kind, ok = "write: new client", response.status_code == 303
                match = CLIENT_RE.search(response.headers.get("Location", ""))
                if match:
                    self.ids.append(int(match.group(1)))
            elif roll < 0.65 or not self.ids:
                query = self.rng.choice(WORDS).lower()[:3]
                response = http.get(f"{self.url}/clients", params={"q": query}, timeout=60)
                kind, ok = "read: list + search", response.status_code == 200
            else:
                response = http.get(f"{self.url}/clients/{self.rng.choice(self.ids)}", timeout=60)
                kind, ok = "read: client page", response.status_code == 200
            self.times[kind].append(time.perf_counter() - start)
            if not ok:
                self.errors.append(f"{kind}: {response.status_code}")
        http.close()


def main() -> None:
    args = sys.argv[1:]
    rate = 5.0
    if "--rate" in args:
        at = args.index("--rate")
        rate = float(args[at + 1])
        del args[at : at + 2]
        if rate <= 0:
            raise SystemExit("--rate takes a number of requests a second above 0 (or use --closed)")
    if "--closed" in args:
        args.remove("--closed")
        rate = 0.0
    sessions = int(args[0]) if len(args) > 0 else 8
    seconds = float(args[1]) if len(args) > 1 else 30.0
    count = int(args[2]) if len(args) > 2 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        store = Store(instance, kdf=TEST_KDF)
        store.setup("admin", "bench-password-1", at=NOW)
        nips = nip_series(1)
        with store.write() as db:  # the existing clients, in one transaction
            for i in range(count):
                clients.create_client(
                    db,
                    clients.validate(nip=next(nips), name=f"{WORDS[i % len(WORDS)]} {i}"),
                    actor="admin",
                    at=NOW,
                )
        store.seal()
        port = free_port()
        env = {
            **os.environ,
            "KLUCZNIK_INSTANCE": str(instance),
            "KLUCZNIK_PORT": str(port),
            "KLUCZNIK_HOST": "127.0.0.1",
        }
        for name in ("KLUCZNIK_UNSEAL_KEY_FILE", "KLUCZNIK_HTTPS"):
            env.pop(name, None)
        log = open(Path(tmp) / "portal.log", "wb")  # noqa: SIM115 - closed below
        portal = subprocess.Popen(
            [str(KLUCZNIK), "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"{url}/health", timeout=1).close()
                    break
                except requests.ConnectionError:
                    if portal.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the portal did not start") from None
                    time.sleep(0.05)
            lock = threading.Lock()
            threads = [Session(url, seconds, nips, lock, seed, rate) for seed in range(sessions)]
            ready = threading.Barrier(sessions + 1)
            for thread in threads:
                thread.ready = ready
                thread.start()
            ready.wait()
            start = time.perf_counter()
            cpu_portal, cpu_bench = portal_cpu(portal.pid), time.process_time()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
            cpu_portal, cpu_bench = portal_cpu(portal.pid) - cpu_portal, time.process_time() - cpu_bench
        finally:
            portal.terminate()
            portal.wait(timeout=30)
            log.close()
        data = sum(
            p.stat().st_size for p in (instance / "klucznik.db", instance / "klucznik.db-wal") if p.exists()
        )
        size = folder_size(instance)
        kinds: dict[str, list[float]] = {}
        errors: list[str] = []
        for thread in threads:
            errors += thread.errors
            for kind, values in thread.times.items():
                kinds.setdefault(kind, []).extend(values)
        total = sum(len(v) for v in kinds.values())
        mode = f"{rate:g} requests a second each (Poisson)" if rate else "closed loop (no pause)"
        print(
            f"{sessions} sessions, {mode}, for {elapsed:.0f} s against klucznik serve (waitress, 8 threads), "
            f"{count} clients at the start: {total} requests ({total / elapsed:.0f} a second), "
            f"{len(errors)} errors {errors[:3]}"
        )
        for kind, values in kinds.items():
            print(
                f"  {kind:24} n={len(values):5}  p50 {statistics.median(values) * 1000:6.1f} ms  "
                f"p95 {pct(values, 0.95) * 1000:6.1f} ms"
            )
        print(
            f"  CPU in the window: portal {cpu_portal:.1f} s ({cpu_portal / total * 1000:.2f} ms a request), "
            f"load client {cpu_bench:.1f} s ({cpu_bench / total * 1000:.2f} ms a request), "
            f"{os.cpu_count()} CPUs"
        )
        print(
            f"  data {data / 2**20:.1f} MiB, instance/ {size / 2**20:.1f} MiB ({size / data:.2f}x; goal ≤ 2.5)"
        )
    print(f"peak RSS (bench process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
