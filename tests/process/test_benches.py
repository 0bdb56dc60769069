"""Every benchmark runs to the end at a tiny size (issue 9, item 25), so none can rot unnoticed between two
``make bench`` runs. Figures printed here mean nothing; only that each script finishes and prints them.

A new ``bench/bench_*.py`` needs a line in :data:`SMOKE` (its arguments for a run of a few seconds).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: bench script → arguments for a run of a few seconds.
SMOKE = {
    "bench_certificates.py": ["--rounds", "2"],
    "bench_check_all.py": ["5", "2"],
    "bench_clients_page.py": ["2"],
    "bench_ksef_client.py": ["2"],
    "bench_load.py": ["2", "2", "20"],
    "bench_login.py": ["2"],
    "bench_rotation.py": ["20", "1"],
    "bench_sandbox_limits.py": ["0.3", "2", "11"],  # 11 calls: more than one second's allowance
    "bench_status_page.py": ["2", "30"],
    "bench_storage.py": ["20", "1"],
    "bench_write_scale.py": ["1", "--writes", "5", "--burst", "10"],
    "bench_xades.py": ["--rounds", "3"],
}


def test_every_bench_has_a_smoke_size() -> None:
    assert sorted(p.name for p in (ROOT / "bench").glob("bench_*.py")) == sorted(SMOKE)


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_the_bench_runs_to_the_end(name: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / name), *SMOKE[name]], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stdout.strip(), "a bench prints its figures"
