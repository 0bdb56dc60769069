"""Round-trip figures of a full KSeF authentication against the local sandbox (loopback, Werkzeug threaded).

Run: ``.venv/bin/python bench/bench_ksef_client.py [ROUNDS]``. Prints the median and 95th percentile of each
step (challenge, signing, submit with XAdES verification, status polls, redeem, one authenticated call) and
of the whole flow. Figures only; nothing here asserts a speed.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.serving import make_server  # noqa: E402

import sandbox  # noqa: E402
from klucznik import xades  # noqa: E402
from klucznik.ksef.client import KsefClient  # noqa: E402
from sandbox import ca  # noqa: E402
from sandbox import signer  # noqa: E402

NIP = "5261040828"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main(rounds: int = 30) -> None:
    """Run ``rounds`` full authentications and print per-step figures in milliseconds."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = sandbox.create_app({"SANDBOX_CONFIG": {"auth_delay": 0.0, "auth_pending_polls": 1}})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/v2"
    certificate, key = ca.qualified_identity(nip=NIP)
    steps: dict[str, list[float]] = {
        k: [] for k in ("challenge", "sign", "submit", "poll", "redeem", "call", "total")
    }
    try:
        with KsefClient(url) as client:
            client.challenge()  # warm-up: connection pool, OpenAPI document
            for _ in range(rounds):
                start = time.perf_counter()
                mark = start

                def lap(name: str) -> None:
                    nonlocal mark
                    now = time.perf_counter()
                    steps[name].append((now - mark) * 1000)
                    mark = now

                challenge = client.challenge()
                lap("challenge")
                xml = xades.build_auth_token_request(challenge=challenge.challenge, nip=NIP)
                signed = signer.sign(xml, certificate=certificate, private_key=key, style="enveloped")
                lap("sign")
                init = client.submit_xades(signed)
                lap("submit")
                client.wait_for_auth(init, interval=0)
                lap("poll")
                client.redeem(init.authentication_token.token)
                lap("redeem")
                client.sessions()
                lap("call")
                steps["total"].append((time.perf_counter() - start) * 1000)
    finally:
        server.shutdown()
        server.server_close()
    print(f"KSeF client ⇄ sandbox, {rounds} full XAdES authentications (loopback), milliseconds:")
    for name, values in steps.items():
        print(f"  {name:10} median {statistics.median(values):8.2f}   p95 {_percentile(values, 0.95):8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
