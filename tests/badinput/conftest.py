"""The bad-input suite: hostile or mistaken input against the running portal (Flask test client, a real
encrypted instance; the signed-XML cases also start the sandbox in a thread).

Every case asserts four things (issue 9): no 500, no traceback in the answer, a clear message (or, for a
redirect, a target on this site), and nothing stored changed (every table and keyring.json compared before
and after). At the end the suite prints how many cases ran and passed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
COUNTS = {"ran": 0, "passed": 0, "failed": 0}


def _ours(report: pytest.TestReport) -> bool:
    return Path(str(report.fspath)).resolve().parent == _HERE


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _ours(report):
        return
    if report.when == "call":
        COUNTS["ran"] += 1
        COUNTS["passed" if report.passed else "failed"] += 1
    elif report.when == "setup" and report.failed:
        COUNTS["ran"] += 1
        COUNTS["failed"] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    """Print the suite's figures (SECURITY.md §3.5: cases run, rejected as expected, 500s)."""
    if not COUNTS["ran"]:
        return
    terminalreporter.section("bad-input suite")
    terminalreporter.write_line(
        f"{COUNTS['ran']} bad-input cases ran, {COUNTS['passed']} passed, {COUNTS['failed']} failed "
        "(each: no 500, no traceback, a clear message or a same-site redirect, nothing stored changed)"
    )
