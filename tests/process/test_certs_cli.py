"""``klucznik certs check``: every problem code through the command, the JSON contract, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from klucznik import certs as c
from tests.support.certificates import AT
from tests.support.certificates import COMPANY_NIP
from tests.support.certificates import OTHER_NIP
from tests.support.certificates import PASSWORD
from tests.support.certificates import PESEL
from tests.support.certificates import cert_pem
from tests.support.certificates import certificate
from tests.support.certificates import ec_key
from tests.support.certificates import good_pair
from tests.support.certificates import key_pem
from tests.support.certificates import pkcs12_file
from tests.support.certificates import rsa_key
from tests.support.certificates import sample

CONSOLE_SCRIPT = Path(sys.executable).parent / "klucznik"
AT_ISO = "2026-06-01T00:00:00Z"
TOP_KEYS = {"ok", "slot", "certificate", "problems", "notes"}
CERTIFICATE_KEYS = {
    "subject",
    "identity",
    "ksef_type",
    "serial",
    "issuer",
    "not_before",
    "not_after",
    "key_algorithm",
}
PROBLEM_KEYS = {"code", "field", "severity", "message_pl", "message_en"}


def _rsa_1024():
    key = rsa_key(1024)
    return cert_pem(certificate(key=key)), key_pem(key)


def _p12():
    crt, _ = good_pair()
    return crt, pkcs12_file(c.load_certificate(crt).certificate, ec_key("online"))


# code -> (slot, crt+key factory, password, nip, expected exit status)
CASES = {
    "not_a_certificate": ("online", lambda: (os.urandom(200), good_pair()[1]), PASSWORD, None, 1),
    "not_a_private_key": ("online", lambda: (good_pair()[0], b"to nie jest klucz"), PASSWORD, None, 1),
    "files_swapped": ("online", lambda: good_pair()[::-1], PASSWORD, None, 1),
    "unsupported_key": ("online", _rsa_1024, PASSWORD, None, 1),
    "password_required": ("online", good_pair, None, None, 1),
    "wrong_password": ("online", good_pair, "zle-haslo", None, 1),
    "key_mismatch": ("online", lambda: (good_pair()[0], key_pem(ec_key("other"))), PASSWORD, None, 1),
    "wrong_slot": ("online", lambda: good_pair(slot="offline"), PASSWORD, None, 1),
    "not_ksef_type": ("online", lambda: good_pair(ksef_type=None), PASSWORD, None, 1),
    "not_ksef_issuer": ("offline", lambda: good_pair(slot="offline", issuer="Obcy CA"), PASSWORD, None, 1),
    "expired": ("online", lambda: good_pair(not_after=AT - timedelta(days=1)), PASSWORD, None, 1),
    "not_yet_valid": ("online", lambda: good_pair(not_before=AT + timedelta(days=2)), PASSWORD, None, 0),
    "expires_soon": ("online", lambda: good_pair(not_after=AT + timedelta(days=5)), PASSWORD, None, 0),
    "nip_invalid": ("online", good_pair, PASSWORD, "526-104-08-29", 1),
    "nip_mismatch": ("online", good_pair, PASSWORD, OTHER_NIP, 1),
    "identity_person": ("online", lambda: good_pair(pesel=PESEL), PASSWORD, COMPANY_NIP, 0),
    "file_too_large": (
        "online",
        lambda: (good_pair()[0] + b" " * c.MAX_FILE_SIZE, good_pair()[1]),
        PASSWORD,
        None,
        1,
    ),
    "empty_file": ("online", lambda: (good_pair()[0], b""), PASSWORD, None, 1),
    "pkcs12_file": ("online", _p12, PASSWORD, None, 1),
}


def write_pair(folder: Path, crt: bytes, key: bytes) -> tuple[Path, Path]:
    """Write the two files into ``folder``."""
    crt_path, key_path = folder / "cert.crt", folder / "cert.key"
    crt_path.write_bytes(crt)
    key_path.write_bytes(key)
    return crt_path, key_path


def run_cli(args: list[str], password: str | None):
    """Invoke the console script's click group in-process; returns (exit status, parsed JSON or None)."""
    env = {"KLUCZNIK_KEY_PASSWORD": password} if password is not None else {}
    result = CliRunner().invoke(main, args, env=env)
    try:
        data = json.loads(result.stdout)
    except ValueError:
        data = None
    return result.exit_code, data, result


def check_args(slot: str, crt: Path, key: Path, nip: str | None = None) -> list[str]:
    """The ``certs check`` arguments."""
    args = ["certs", "check", "--slot", slot, "--crt", str(crt), "--key", str(key), "--at", AT_ISO]
    return args + (["--nip", nip] if nip else [])


def assert_contract(data: dict) -> None:
    """The JSON object has exactly the documented shape."""
    assert set(data) == TOP_KEYS
    if data["certificate"] is not None:
        assert set(data["certificate"]) == CERTIFICATE_KEYS
    for problem in data["problems"]:
        assert set(problem) == PROBLEM_KEYS
        assert problem["code"] in c.CODES and problem["severity"] in {"error", "warning"}


def test_cases_cover_every_code():
    assert set(CASES) == set(c.CODES)


@pytest.mark.parametrize("code", sorted(CASES))
def test_every_code_through_the_cli(code, tmp_path, monkeypatch):
    monkeypatch.delenv("KLUCZNIK_KEY_PASSWORD", raising=False)
    slot, files, password, nip, status = CASES[code]
    crt, key = write_pair(tmp_path, *files())
    exit_code, data, result = run_cli(check_args(slot, crt, key, nip), password)
    assert exit_code == status, result.output
    assert_contract(data)
    assert code in [p["code"] for p in data["problems"]]
    assert data["ok"] is (status == 0)
    assert data["slot"] == slot


def test_warning_in_the_online_slot_for_a_foreign_issuer_exits_zero(tmp_path):
    crt, key = write_pair(tmp_path, *good_pair(issuer="Obcy CA"))
    exit_code, data, _ = run_cli(check_args("online", crt, key), PASSWORD)
    assert exit_code == 0 and data["ok"] is True
    assert [(p["code"], p["severity"]) for p in data["problems"]] == [("not_ksef_issuer", "warning")]


def test_pesel_is_masked_in_the_json(tmp_path):
    crt, key = write_pair(tmp_path, *good_pair(pesel=PESEL))
    _, data, result = run_cli(check_args("online", crt, key), PASSWORD)
    assert data["certificate"]["identity"] == {"type": "PESEL", "value": "*******2345"}
    assert PESEL not in result.output


def test_oversize_file_is_not_read_whole(tmp_path):
    crt, key = write_pair(tmp_path, b"-" * (5 * 1024 * 1024), good_pair()[1])
    exit_code, data, _ = run_cli(check_args("online", crt, key), PASSWORD)
    assert exit_code == 1 and data["problems"][0]["code"] == "file_too_large"


@pytest.mark.parametrize(
    "args",
    [
        ["certs", "check", "--slot", "online"],
        ["certs", "check", "--slot", "both", "--crt", "{crt}", "--key", "{key}"],
        ["certs", "check", "--slot", "online", "--crt", "{crt}", "--key", "{key}", "--at", "jutro"],
        ["certs", "check", "--slot", "online", "--crt", "{crt}", "--key", "{key}", "--password", "x"],
        ["certs", "check", "--slot", "online", "--crt", "/nonexistent.crt", "--key", "{key}"],
    ],
)
def test_wrong_usage_exits_2(args, tmp_path):
    crt, key = write_pair(tmp_path, *good_pair())
    args = [a.format(crt=crt, key=key) for a in args]
    exit_code, data, _ = run_cli(args, PASSWORD)
    assert exit_code == 2 and data is None


def test_help_offers_no_password_option():
    result = CliRunner().invoke(main, ["certs", "check", "--help"])
    assert result.exit_code == 0
    assert "--password" not in result.output and "KLUCZNIK_KEY_PASSWORD" in result.output


# --- the real console script (subprocess) -------------------------------------------------------------


def run_console(args: list[str], password: str | None, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``.venv/bin/klucznik`` with stdin closed (no prompt) and the password in the environment."""
    env = {k: v for k, v in os.environ.items() if k != "KLUCZNIK_KEY_PASSWORD"}
    if password is not None:
        env["KLUCZNIK_KEY_PASSWORD"] = password
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
        timeout=60,
    )


@pytest.mark.parametrize("name", ["person", "seal"])
def test_console_script_accepts_the_real_samples(name, tmp_path):
    s = sample(name)
    crt, key = write_pair(tmp_path, s.crt, s.key)
    done = run_console(check_args("online", crt, key, s.nip), s.password, tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert_contract(data)
    assert data["ok"] is True and data["problems"] == []
    assert data["certificate"]["serial"] == s.serial
    assert data["certificate"]["identity"] == {"type": "NIP", "value": s.nip}
    assert data["certificate"]["ksef_type"] == "Authentication"
    assert data["certificate"]["key_algorithm"] == "EC P-256"
    assert data["certificate"]["issuer"].startswith("CN=TEST CCK KSeF")


@pytest.mark.parametrize(("password", "code"), [("zle", "wrong_password"), (None, "password_required")])
def test_console_script_reports_password_problems_with_exit_1(password, code, tmp_path):
    s = sample("seal")
    crt, key = write_pair(tmp_path, s.crt, s.key)
    done = run_console(check_args("offline", crt, key, s.nip), password, tmp_path)
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert_contract(data)
    assert [p["code"] for p in data["problems"]] == ["wrong_slot", code]


def test_console_script_usage_error_exits_2(tmp_path):
    done = run_console(["certs", "check", "--slot", "online"], None, tmp_path)
    assert done.returncode == 2 and done.stdout == ""


def test_console_script_prompts_for_the_password_on_a_terminal(tmp_path):
    import pty

    s = sample("person")
    crt, key = write_pair(tmp_path, s.crt, s.key)
    env = {k: v for k, v in os.environ.items() if k != "KLUCZNIK_KEY_PASSWORD"}
    pid, fd = pty.fork()
    if pid == 0:  # the child runs the console script on the pseudo-terminal
        os.chdir(tmp_path)
        os.execve(str(CONSOLE_SCRIPT), [str(CONSOLE_SCRIPT), *check_args("online", crt, key, s.nip)], env)
    output = b""
    while b"Key password" not in output:
        output += os.read(fd, 1024)
    os.write(fd, s.password.encode() + b"\n")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert s.password not in text  # the prompt does not echo
    data = json.loads(text[text.index("{") :])
    assert data["ok"] is True and data["certificate"]["serial"] == s.serial
