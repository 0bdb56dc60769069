"""Benchmark of the signed-file check : prints figures, asserts nothing.

Checks typical signed AuthTokenRequest files — what a qualified-seal tool (enveloped, EC P-256), a
personal RSA-2048 signature and Profil Zaufany (XPath transform, RSA-2048, claimed role) produce — with
:func:`klucznik.xades.check_signed_request`, the full check the wizard runs on an upload (hardened parse,
structure, libxmlsec1 verification, schema, comparison). Goal: p95 ≤ 50 ms per file.

Run: ``.venv/bin/python bench/bench_xades.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from klucznik import xades  # noqa: E402
from sandbox import signer  # noqa: E402
from tests.fixtures.signing import AT  # noqa: E402
from tests.fixtures.signing import CHALLENGE  # noqa: E402
from tests.fixtures.signing import EXPIRES_AT  # noqa: E402
from tests.fixtures.signing import NIP  # noqa: E402
from tests.fixtures.signing import PESEL  # noqa: E402
from tests.support.certificates import ministry_seal  # noqa: E402
from tests.support.certificates import rsa_key  # noqa: E402
from tests.support.certificates import seal as make_seal  # noqa: E402

GOAL_MS = 50.0


def files() -> dict[str, bytes]:
    """One signed file per typical shape."""
    seal = make_seal(nip=NIP)
    seal_rsa = make_seal(nip=NIP, key=rsa_key(label="seal"))
    ministry = ministry_seal()
    xml = xades.build_auth_token_request(challenge=CHALLENGE, nip=NIP)
    person = signer.Person(given_name="Zenon", surname="Żółkiewski", pesel=PESEL)
    return {
        "seal EC P-256, enveloped": signer.sign(
            xml,
            certificate=seal.certificate,
            private_key=seal.private_key,
            style="enveloped",
            signing_time=AT,
        ),
        "RSA-2048, enveloping": signer.sign(
            xml,
            certificate=seal_rsa.certificate,
            private_key=seal_rsa.private_key,
            style="enveloping",
            signing_time=AT,
        ),
        "Profil Zaufany (XPath, RSA-2048)": signer.sign(
            xml,
            certificate=ministry.certificate,
            private_key=ministry.private_key,
            style="profil-zaufany",
            signing_time=AT,
            person=person,
        ),
    }


def measure(data: bytes, rounds: int) -> list[float]:
    """Milliseconds per check, ``rounds`` times (after a warm-up)."""
    for _ in range(5):
        xades.check_signed_request(data, challenge=CHALLENGE, nip=NIP, at=AT, challenge_expires_at=EXPIRES_AT)
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = xades.check_signed_request(
            data, challenge=CHALLENGE, nip=NIP, at=AT, challenge_expires_at=EXPIRES_AT
        )
        timings.append((time.perf_counter() - start) * 1000)
        if not result.ok:
            raise SystemExit(f"the benchmark file did not pass: {result.problems}")
    return timings


def p95(values: list[float]) -> float:
    """The 95th percentile."""
    return statistics.quantiles(values, n=100)[94]


def main() -> None:
    """Print p50/p95/max per file shape and the verdict against the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    print(f"check_signed_request, {args.rounds} rounds per file (goal p95 ≤ {GOAL_MS:.0f} ms)")
    worst = 0.0
    for name, data in files().items():
        timings = measure(data, args.rounds)
        worst = max(worst, p95(timings))
        print(
            f"  {name:36s} {len(data):6d} B  p50 {statistics.median(timings):6.2f} ms  "
            f"p95 {p95(timings):6.2f} ms  max {max(timings):6.2f} ms"
        )
    print(
        f"worst p95 {worst:.2f} ms: {'within' if worst <= GOAL_MS else 'ABOVE'} the goal of {GOAL_MS:.0f} ms"
    )


if __name__ == "__main__":
    main()
