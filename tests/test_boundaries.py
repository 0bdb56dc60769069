"""Architectural boundaries: the domain never imports Flask, the portal never imports the sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOMAIN_MODULES = sorted(f"klucznik.{p.stem}" for p in (ROOT / "klucznik").glob("*.py") if p.stem != "__init__")


def _loaded_after(imports: str) -> set[str]:
    code = f"import sys\n{imports}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_importing_the_whole_domain_loads_no_flask() -> None:
    assert DOMAIN_MODULES, "no domain modules found"
    loaded = _loaded_after("\n".join(f"import {m}" for m in DOMAIN_MODULES))
    assert not {m for m in loaded if m == "flask" or m.startswith(("flask.", "flask_"))}


def test_the_portal_never_imports_the_sandbox() -> None:
    loaded = _loaded_after("import app\napp.create_app({'TESTING': True})\nimport cli\nimport blueprints")
    assert not {m for m in loaded if m == "sandbox" or m.startswith("sandbox.")}


def test_domain_commands_load_no_flask() -> None:
    loaded = _loaded_after("import cli")
    assert "flask" not in loaded


def test_ruff_bans_flask_in_the_domain(tmp_path: Path) -> None:
    probe = ROOT / "klucznik" / "_probe_boundary.py"
    probe.write_text("from __future__ import annotations\n\nimport flask\n\nflask.Flask\n", "utf-8")
    try:
        result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(probe)], cwd=ROOT,
                                capture_output=True, text=True)
    finally:
        probe.unlink()
    assert result.returncode == 1
    assert "TID251" in result.stdout
