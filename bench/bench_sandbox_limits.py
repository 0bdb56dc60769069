"""Figures of the sandbox's KSeF rate limits (official values, per group, per context and IP address).

Run: ``.venv/bin/python bench/bench_sandbox_limits.py [SECONDS] [CONTEXTS] [CALLS]``. The sandbox runs in a
thread (Werkzeug, threaded) with the official limits on; the script prints:

1. one context hammering ``GET /certificates/limits`` (group ``other``: 10/s, 30/min, 120/h) without
   waiting, for SECONDS: requests answered per second (200 and 429) and the accepted rate;
2. CONTEXTS contexts hammering in parallel (one thread each): the accepted rate of all of them together;
3. the portal's KSeF client honouring ``Retry-After`` with real sleeps, CALLS calls in one context, then in
   CONTEXTS contexts in parallel: wall time against the floor the limits set (the earliest schedule
   allowed by the sliding windows, :func:`sandbox.ratelimits.floor_seconds`);
4. peak RSS of the process (sandbox and clients together).

Figures only; nothing here asserts a speed.
"""

from __future__ import annotations

import logging
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

import sandbox  # noqa: E402
from klucznik import xades  # noqa: E402
from klucznik.ksef.client import KsefClient  # noqa: E402
from klucznik.ksef.transport import RetryPolicy  # noqa: E402
from sandbox import ca  # noqa: E402
from sandbox import signer  # noqa: E402
from sandbox.ratelimits import floor_seconds  # noqa: E402

FIRST_NIP = 5260000000


def _nips(count: int) -> list[str]:
    """``count`` distinct valid NIPs (checksum), one per context."""
    weights = (6, 5, 7, 2, 3, 4, 5, 6, 7)
    out = []
    base = FIRST_NIP // 10
    while len(out) < count:
        digits = [int(d) for d in f"{base:09d}"]
        check = sum(w * d for w, d in zip(weights, digits, strict=True)) % 11
        if check != 10:
            out.append(f"{base:09d}{check}")
        base += 1
    return out


def _login(url: str, nip: str, **kwargs) -> KsefClient:
    client = KsefClient(url, **kwargs)
    challenge = client.challenge()
    xml = xades.build_auth_token_request(challenge=challenge.challenge, nip=nip)
    certificate, key = ca.qualified_identity(nip=nip)
    client.authenticate(
        signer.sign(xml, certificate=certificate, private_key=key, style="enveloped"), interval=0
    )
    return client


def _hammer(url: str, token: str, seconds: float, counts: dict[int, int], lock: threading.Lock) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "X-Error-Format": "problem-details"}
    end = time.perf_counter() + seconds
    local: dict[int, int] = {}
    while time.perf_counter() < end:
        status = session.get(f"{url}/certificates/limits", headers=headers, timeout=10).status_code
        local[status] = local.get(status, 0) + 1
    with lock:
        for status, n in local.items():
            counts[status] = counts.get(status, 0) + n


def _paced(client: KsefClient, calls: int) -> None:
    for _ in range(calls):
        client.limits()


def main(seconds: float = 3.0, contexts: int = 10, calls: int = 25) -> None:
    """Print the figures described in the module docstring."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = sandbox.create_app({"SANDBOX_CONFIG": {"rate_limits": True}})
    limiter = sandbox.state_of(app).rate_limits
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v2"
    _, limit = limiter.limit_for("GET /certificates/limits")
    print(f"Sandbox rate limits (official document), group other: {limit.to_json()}")
    nips = iter(_nips(2 + 2 * contexts))
    try:
        # 1. one context, no waiting
        client = _login(url, next(nips))
        counts: dict[int, int] = {}
        start = time.perf_counter()
        _hammer(url, client.tokens.access_token(), seconds, counts, threading.Lock())
        took = time.perf_counter() - start
        answered = sum(counts.values())
        print(
            f"1 context, {seconds:.0f} s without waiting: {answered} answers ({answered / took:.0f}/s), "
            f"accepted {counts.get(200, 0)} ({counts.get(200, 0) / took:.1f}/s), refused {counts.get(429, 0)}"
        )

        # 2. several contexts in parallel
        tokens = [_login(url, next(nips)).tokens.access_token() for _ in range(contexts)]
        counts = {}
        lock = threading.Lock()
        threads = [threading.Thread(target=_hammer, args=(url, t, seconds, counts, lock)) for t in tokens]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.perf_counter() - start
        answered = sum(counts.values())
        print(
            f"{contexts} contexts in parallel, {seconds:.0f} s: {answered} answers ({answered / took:.0f}/s), "
            f"accepted {counts.get(200, 0)} ({counts.get(200, 0) / took:.1f}/s, "
            f"{counts.get(200, 0) / took / contexts:.1f}/s per context), refused {counts.get(429, 0)}"
        )

        # 3. the client pacing itself by Retry-After (real sleeps)
        policy = RetryPolicy(rate_limit_attempts=10, max_retry_after=120)
        floor = floor_seconds(calls, limit)
        paced = _login(url, next(nips), retries=policy)
        refused_before = limiter.refused
        start = time.perf_counter()
        _paced(paced, calls)
        wall = time.perf_counter() - start
        print(
            f"client paced by Retry-After, {calls} calls in 1 context: wall {wall:.2f} s, floor {floor:.2f} s, "
            f"ratio {wall / floor:.2f}, 429s {limiter.refused - refused_before}"
        )
        clients = [_login(url, next(nips), retries=policy) for _ in range(contexts)]
        refused_before = limiter.refused
        threads = [threading.Thread(target=_paced, args=(c, calls)) for c in clients]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        print(
            f"clients paced by Retry-After, {calls} calls in each of {contexts} contexts in parallel: "
            f"wall {wall:.2f} s, floor {floor:.2f} s, ratio {wall / floor:.2f}, "
            f"429s {limiter.refused - refused_before}"
        )
    finally:
        server.shutdown()
        server.server_close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.1f} MiB")


if __name__ == "__main__":
    arguments = [float(a) for a in sys.argv[1:]]
    main(
        arguments[0] if arguments else 3.0,
        int(arguments[1]) if len(arguments) > 1 else 10,
        int(arguments[2]) if len(arguments) > 2 else 25,
    )
