"""Packaging (issue 9, item 22): a wheel of the project ships every file the portal and the sandbox read, builds
without a setuptools warning, and the installed copy serves its pages on its own.

The wheel is built the way ``make run`` installs the project (pip with build isolation, so setuptools comes
from the package index) from a copy of the tracked files (a fresh clone, plus the compiled catalog), so no
``build/`` folder left by an earlier build can hide a missing file; nothing in the source tree changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the installed project must contain: every tracked file of these folders (and the compiled catalog).
SHIPPED = ("klucznik", "blueprints", "sandbox", "templates", "static", "translations")


def _tracked(*paths: str) -> set[str]:
    out = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return {line for line in out.splitlines() if line}


def _fresh_clone(dest: Path) -> Path:
    """The tracked files (and the catalog ``make translations`` compiles) copied to ``dest``."""
    for name in sorted(_tracked() | {"translations/pl/LC_MESSAGES/messages.mo"}):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    source = _fresh_clone(tmp_path_factory.mktemp("clone"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(source)],
        capture_output=True, text=True, env={**os.environ, "TMPDIR": str(build)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = out.glob("klucznik-*.whl")
    return path, result.stdout + result.stderr


def test_the_wheel_builds_without_setuptools_warnings(wheel: tuple[Path, str]) -> None:
    _path, log = wheel
    noisy = [line for line in log.splitlines()
             if any(word in line for word in ("Warning", "warning: ", "deprecated", "absent from the `packages`"))
             and "byte-compiling is disabled" not in line]
    assert noisy == []


def test_the_wheel_ships_every_file(wheel: tuple[Path, str]) -> None:
    path, _log = wheel
    names = set(zipfile.ZipFile(path).namelist())
    missing = sorted(_tracked(*SHIPPED, "app.py", "cli.py", "cli_web.py") - names)
    assert missing == []
    assert "translations/pl/LC_MESSAGES/messages.mo" in names  # compiled by `make translations`
    assert not [n for n in names if n.startswith(("tests/", "bench/", "docs/", "instance/"))]


def test_the_installed_copy_serves_its_pages(wheel: tuple[Path, str], tmp_path: Path) -> None:
    path, _log = wheel
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(target), str(path)], check=True, capture_output=True, text=True)
    probe = (
        "import app, sandbox.web, klucznik.xades.parse as p\n"
        f"assert app.__file__.startswith({str(target)!r}), app.__file__\n"
        "web = app.create_app({'TESTING': True}).test_client()\n"
        "page = web.get('/setup')\n"
        "assert page.status_code == 200 and 'Witaj w Kluczniku' in page.get_data(as_text=True), page.status_code\n"
        "assert web.get('/static/htmx-2.0.11.min.js').status_code == 200\n"
        "from pathlib import Path\n"
        "assert (Path(sandbox.web.__file__).parent / 'templates' / 'sandbox' / 'index.html').is_file()\n"
        "assert Path(p.__file__).parent.joinpath('schemas').is_dir()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "KLUCZNIK_INSTANCE": str(tmp_path / "instance")}
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
