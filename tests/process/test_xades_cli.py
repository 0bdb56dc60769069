"""``klucznik xml check`` through the real console script: the JSON contract and the exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.signing import AT
from tests.fixtures.signing import CHALLENGE
from tests.fixtures.signing import EXPIRES_AT
from tests.fixtures.signing import NIP
from tests.fixtures.signing import OTHER_NIP

SCRIPT = Path(sys.prefix) / "bin" / "klucznik"


def run(*args: str | Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUCZNIK_")}
    return subprocess.run(
        [str(SCRIPT), "xml", "check", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def at_args() -> list[str]:
    return ["--at", AT.isoformat()]


@pytest.mark.parametrize("style", ["enveloped", "enveloping", "profil-zaufany"])
def test_valid_file_exit_0(xades_kit, tmp_path, style):
    path = tmp_path / "AuthTokenRequest (1).xml"
    path.write_bytes(xades_kit.sign(style, identity=xades_kit.person if style != "profil-zaufany" else None))
    proc = run(path, "--challenge", CHALLENGE, "--nip", NIP, *at_args())
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert list(data) == ["ok", "signer", "problems"]
    assert data["ok"] is True and data["problems"] == []
    assert data["signer"]["kind"] == ("trusted_profile" if style == "profil-zaufany" else "person")
    assert data["signer"]["pesel_masked"] == "*******1294"
    assert data["signer"]["name"] == "Zenon Żółkiewski"
    assert "88102341294" not in proc.stdout  # the full PESEL never leaves the check


def test_seal_signer_json(xades_kit, tmp_path):
    path = tmp_path / "signed.xml.xades"
    path.write_bytes(xades_kit.sign("enveloped"))
    data = json.loads(run(path, "--challenge", CHALLENGE, "--nip", "526-104-08-28", *at_args()).stdout)
    assert data["signer"] == {"kind": "seal", "nip": NIP, "name": "Przykładowa Spółka z o.o."}


def test_problem_exit_1(xades_kit, tmp_path):
    path = tmp_path / "other.xml"
    path.write_bytes(xades_kit.sign("enveloped", xml=xades_kit.request(nip=OTHER_NIP)))
    proc = run(
        path, "--challenge", CHALLENGE, "--nip", NIP, *at_args(), "--expires-at", EXPIRES_AT.isoformat()
    )
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    assert [p["code"] for p in data["problems"]] == ["nip_mismatch"]
    assert set(data["problems"][0]) == {"code", "message_pl", "message_en"}
    assert data["signer"]["kind"] == "seal"


def test_expired_with_expires_at(xades_kit, tmp_path):
    path = tmp_path / "a.xml"
    path.write_bytes(xades_kit.sign("enveloped"))
    proc = run(
        path,
        "--challenge",
        CHALLENGE,
        "--nip",
        NIP,
        "--at",
        "2026-11-24T10:10:00Z",
        "--expires-at",
        EXPIRES_AT.isoformat(),
    )
    assert proc.returncode == 1
    assert [p["code"] for p in json.loads(proc.stdout)["problems"]] == ["challenge_expired"]


def test_unparseable_file_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.7 ...")
    proc = run(path, "--challenge", CHALLENGE, "--nip", NIP)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data == {"ok": False, "signer": None, "problems": [data["problems"][0]]}
    assert data["problems"][0]["code"] == "not_xml"


@pytest.mark.parametrize(
    "args",
    [
        ["--challenge", CHALLENGE],  # --nip missing
        ["--challenge", CHALLENGE, "--nip", "5261040829"],  # bad checksum
        ["--challenge", "not-a-challenge", "--nip", NIP],
        ["--challenge", CHALLENGE, "--nip", NIP, "--at", "yesterday"],
    ],
)
def test_wrong_usage_exit_2(xades_kit, tmp_path, args):
    path = tmp_path / "a.xml"
    path.write_bytes(xades_kit.sign("enveloped"))
    proc = run(path, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""


def test_missing_file_exit_2(tmp_path):
    proc = run(tmp_path / "nope.xml", "--challenge", CHALLENGE, "--nip", NIP)
    assert proc.returncode == 2
