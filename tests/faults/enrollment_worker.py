"""A portal process for the kill tests: follows one method-2 attempt and dies (SIGKILL) at a chosen KSeF call.

Usage: python -m tests.faults.enrollment_worker INSTANCE SANDBOX_URL REQUEST_ID METHOD WHEN AT
``METHOD`` is a :class:`KsefClient` method (``enroll``, ``enrollment_status``, ``retrieve``, ...); ``WHEN`` is
``before`` (the call never leaves) or ``after`` (KSeF processed it, the answer is lost with the process).
Nothing else in the process is changed: the portal's own code runs as it would.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

from klucznik import clock
from klucznik.authorize.flow import advance
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD


def main() -> None:
    instance, url, request_id, method, when, at = sys.argv[1:7]
    real = getattr(KsefClient, method)

    def dying(self, *args, **kwargs):
        if when == "after":
            real(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(KsefClient, method, dying)
    store = Store(Path(instance), kdf=TEST_KDF)
    store.login(ADMIN, ADMIN_PASSWORD)
    ksef = KsefClient(url, sleep=lambda seconds: None, timeout=(2.0, 5.0))
    moment = clock.parse(at)
    for i in range(40):
        progress = advance(store, request_id=int(request_id), ksef=ksef, actor="admin", at=moment + timedelta(seconds=i))
        if progress.done:
            break
    sys.exit(3)  # the chosen call never came: the test fails on this status


if __name__ == "__main__":
    main()
