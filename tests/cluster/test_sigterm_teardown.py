"""A CI runner cancels a job with SIGTERM; the plugin turns it into an interrupt so fixture
finalizers (the ones that stop clusters) still run. Without it pytest dies with no teardown and the
vLLM nodes it started keep running."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

INNER = """
import time
import pytest

@pytest.fixture
def cluster_like():
    yield
    open({done!r}, "w").write("stopped")

def test_waits(cluster_like):
    open({started!r}, "w").write("up")
    time.sleep(60)
"""


def test_sigterm_still_runs_fixture_teardown(tmp_path: Path) -> None:
    started, done = tmp_path / "started", tmp_path / "done"
    (tmp_path / "test_inner.py").write_text(INNER.format(started=str(started), done=str(done)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "inner test never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert done.read_text() == "stopped"
