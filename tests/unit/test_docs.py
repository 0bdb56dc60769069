"""The README documents every environment variable the code reads and every command (sqlite-utils style)."""

from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text("utf-8")
_READ_PATTERNS = [
    re.compile(r"""environ(?:\.get)?\(\s*["'](KLUCZNIK_[A-Z0-9_]+)"""),
    re.compile(r"""environ\[\s*["'](KLUCZNIK_[A-Z0-9_]+)"""),
    re.compile(r"""getenv\(\s*["'](KLUCZNIK_[A-Z0-9_]+)"""),
    re.compile(r"""envvar\s*=\s*["'](KLUCZNIK_[A-Z0-9_]+)"""),
    # a module constant naming a variable, e.g. PASSWORD_VARIABLE = "KLUCZNIK_KEY_PASSWORD"
    re.compile(r"""^[A-Z_]*VARIABLE[A-Z_]*\s*=\s*["'](KLUCZNIK_[A-Z0-9_]+)["']""", re.MULTILINE),
]


def _variables_read() -> set[str]:
    names: set[str] = set()
    sources = [ROOT / "app.py", ROOT / "cli.py", ROOT / "cli_web.py"]
    for folder in ("klucznik", "blueprints", "sandbox"):
        sources += sorted((ROOT / folder).rglob("*.py"))
    for path in sources:
        text = path.read_text("utf-8")
        for pattern in _READ_PATTERNS:
            names.update(pattern.findall(text))
    return names


def _documented() -> set[str]:
    return set(re.findall(r"^\| `(KLUCZNIK_[A-Z0-9_]+)` \|", README, flags=re.MULTILINE))


def test_every_environment_variable_is_in_the_readme_table() -> None:
    read = _variables_read()
    assert "KLUCZNIK_INSTANCE" in read  # the scan itself works
    assert read - _documented() == set()


def test_the_readme_lists_no_variable_the_code_does_not_read() -> None:
    assert _documented() - _variables_read() == set()


def test_every_command_is_documented_and_has_help() -> None:
    runner = CliRunner()
    ctx = click.Context(main, info_name="klucznik")
    for name in main.list_commands(ctx):
        assert f"`klucznik {name}" in README, f"README does not document `klucznik {name}`"
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert result.output.strip()


def test_readme_has_exactly_the_two_setup_commands() -> None:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make \w+", setup, flags=re.MULTILINE)
    assert commands == ["make run", "make test"]
