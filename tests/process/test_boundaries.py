"""The structure: import-linter's contracts (pyproject.toml, run by ``make test``) keep every arrow pointing down.

What a static check cannot see is tested here at run time: the top-level modules (``cli.py``, ``app.py``),
which import-linter cannot take as roots, and the lazy loading of ``serve`` and ``sandbox``. The two probes
prove that the static checks are not vacuous: an upward import and a Flask import in the domain are refused.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(imports: str) -> set[str]:
    code = f"import sys\n{imports}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_the_portal_never_imports_the_sandbox() -> None:
    loaded = _loaded_after("import app\napp.create_app({'TESTING': True})\nimport cli\nimport blueprints")
    assert not {m for m in loaded if m == "sandbox" or m.startswith("sandbox.")}


def test_domain_commands_load_no_flask() -> None:
    loaded = _loaded_after("import cli")
    assert not {m for m in loaded if m == "flask" or m.startswith(("flask.", "flask_"))}


def _probe(relative: str, source: str, command: list[str]) -> subprocess.CompletedProcess[str]:
    probe = ROOT / relative
    probe.write_text(source, "utf-8")
    try:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    finally:
        probe.unlink()


def test_import_linter_refuses_an_upward_arrow() -> None:
    result = _probe(
        "klucznik/instance/_probe_upward.py",
        "from __future__ import annotations\n\nfrom klucznik.authorize import requests\n\nrequests.get_request\n",
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
    )
    assert result.returncode == 1, result.stdout
    assert "klucznik.instance._probe_upward -> klucznik.authorize.requests" in result.stdout.replace("\n", " ")


def test_ruff_bans_flask_in_the_domain() -> None:
    result = _probe(
        "klucznik/_probe_boundary.py",
        "from __future__ import annotations\n\nimport flask\n\nflask.Flask\n",
        [sys.executable, "-m", "ruff", "check", "--no-cache", "klucznik/_probe_boundary.py"],
    )
    assert result.returncode == 1
    assert "TID251" in result.stdout
