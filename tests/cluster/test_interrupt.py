"""Ctrl-C or SIGTERM at any moment of a start leaves nothing behind.

Hypothesis draws the moment and the signal. A moment is a point in the start's own progress (the
k-th line `kvtest cluster up` prints, or the k-th process the pytest fixture has recorded) plus a
small delay, not a wall-clock offset: a loaded machine stretches the start, and a fixed offset would
then only ever hit its first second. k = 0 is "at once", before the program has installed any
handler.

The cluster: real etcd + real mooncake_master + a slow stub node (its /health answers 503 for a
while) and a normal one. Every example checks what a user would: the command ended within 10 s of
the signal, with the status a shell reports for that signal (130 SIGINT, 143 SIGTERM; pytest's own
2 for an interrupted session), no process of the run is alive (by process group, and by the pid
file every stub node writes), its ports are free, and `kvtest cluster down` accepts what it left.
A process the signal ended before its handlers existed (status -N) must not have started anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvtest.ports import port_is_open

from .conftest import ROOT, cluster_dict, pid_alive

# generous bounds that only catch a hang; the promise is "exits within 10 s"
EXIT_WITHIN_S = 10.0
REACH_MOMENT_CAP_S = 120.0
SIGNALS = st.sampled_from([signal.SIGINT, signal.SIGTERM])
EXAMPLES = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _interrupt_cluster(tmp: Path) -> Path:
    data = cluster_dict(["--stub-delay", "1.0"], [], name=f"intr-{os.getpid()}-{tmp.name[-6:]}")
    for node in data["nodes"]:
        node["ready_timeout_s"] = 120
    path = tmp / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _group_alive(pgid: int) -> bool:
    """Any live process (not a zombie) whose process group is pgid."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _records(runs: Path) -> list[dict]:
    """Every process any state file of this run recorded (running or stopped)."""
    recs: list[dict] = []
    for state in runs.glob("*/state*.json"):
        recs += json.loads(state.read_text())["processes"]
    return recs


def _assert_nothing_left(runs: Path, pids: Path) -> None:
    for rec in _records(runs):
        assert not _group_alive(rec["pgid"]), f"{rec['name']} (group {rec['pgid']}) still alive"
        open_ports = [p for p in rec["ports"] if port_is_open("127.0.0.1", p)]
        assert not open_ports, f"{rec['name']} still holds {open_ports}"
    for pidfile in pids.glob("*.pid"):
        assert not pid_alive(int(pidfile.read_text())), f"stub {pidfile.name} still alive"


class _Lines:
    """Collects a child's stderr lines on a thread; wait(k) returns once k lines (or EOF) arrived."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait(self, k: int, stop_at: str) -> None:
        with self._changed:
            self._changed.wait_for(
                lambda: self._eof or len(self.lines) >= k or any(stop_at in line for line in self.lines),
                timeout=REACH_MOMENT_CAP_S,
            )

    def text(self) -> str:
        self._thread.join(5)
        return "\n".join(self.lines)


def _as_in_a_terminal() -> None:
    """The child gets Ctrl-C as a foreground program in a terminal does: a shell that ran this suite
    as a background job left SIGINT ignored, which the child would inherit (and rightly keep)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill_leftovers(runs: Path, pids: Path) -> None:
    """After a failed example: what the run left is killed here, so one failure does not leave
    processes behind for the rest of the suite."""
    for rec in _records(runs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec["pgid"], signal.SIGKILL)
    for pidfile in pids.glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def _signal_and_wait(proc: subprocess.Popen[str], sig: int) -> float:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(REACH_MOMENT_CAP_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return time.monotonic() - t0


@pytest.mark.usefixtures("real_store_tools")
@EXAMPLES
@given(k=st.integers(0, 10), extra=st.floats(0.0, 0.4), sig=SIGNALS)
def test_cluster_up_interrupted_at_any_moment_leaves_nothing(k: int, extra: float, sig: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kvtest-intr-") as d:
        tmp = Path(d)
        pids, runs = tmp / "pids", tmp / "runs"
        pids.mkdir()
        path = _interrupt_cluster(tmp)
        up = ["cluster", "up", "--cluster", str(path), "--runs", str(runs), "--foreground"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "kvtest", *up],
            cwd=ROOT,
            env=os.environ | {"STUB_PID_DIR": str(pids)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_as_in_a_terminal,
        )
        lines = _Lines(proc)
        lines.wait(k, stop_at="running until")
        time.sleep(extra)  # the drawn offset past that point, not a readiness wait
        try:
            took = _signal_and_wait(proc, sig)
            err = lines.text()
            assert took < EXIT_WITHIN_S, f"exited {took:.1f}s after {signal.Signals(sig).name}:\n{err}"
            if _records(runs) or proc.returncode == 128 + sig:
                assert proc.returncode == 128 + sig, err
                assert "interrupted, everything stopped" in err, err
            # else the signal ended the interpreter before kvtest had its handlers (killed by it, -N, or
            # a KeyboardInterrupt while site-packages were imported, 1): nothing was started
            _assert_nothing_left(runs, pids)
            if runs.exists() and any(runs.glob("*.current")):
                down_argv = ["cluster", "down", "--cluster", str(path), "--runs", str(runs)]
                down = subprocess.run(
                    [sys.executable, "-m", "kvtest", *down_argv],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=REACH_MOMENT_CAP_S,
                    check=False,
                )
                assert down.returncode == 0, down.stderr
        except BaseException:
            _kill_leftovers(runs, pids)  # a failed example must not leave them for the rest
            raise


INNER_TEST = """
import pathlib, time

def test_holds_the_cluster(cluster):
    pathlib.Path({marker!r}).write_text("running")
    while True:  # until the signal: the run is interrupted while the cluster is up
        time.sleep(0.05)
"""


def _recorded(runs: Path) -> int:
    try:
        return len(_records(runs))
    except (OSError, ValueError, KeyError):  # a state file being replaced
        return 0


@pytest.mark.usefixtures("real_store_tools")
@EXAMPLES
@given(k=st.integers(0, 5), extra=st.floats(0.0, 0.4), sig=SIGNALS)
def test_pytest_run_interrupted_while_its_cluster_starts_leaves_nothing(
    k: int, extra: float, sig: int
) -> None:
    """The `cluster` fixture: k processes recorded (k = 5: the test holding the cluster runs)."""
    with tempfile.TemporaryDirectory(prefix="kvtest-intr-") as d:
        tmp = Path(d)
        pids, runs, marker = tmp / "pids", tmp / "runs", tmp / "running"
        pids.mkdir()
        path = _interrupt_cluster(tmp)
        (tmp / "test_inner.py").write_text(INNER_TEST.format(marker=str(marker)))
        # no hypothesis plugin: its terminal summary imports hypothesis after the teardown (10-20 s on
        # a loaded host), which is pytest's exit time, not the fixture's teardown under test
        options = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:hypothesispytest"]
        options += ["--rootdir", str(tmp)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", *options, "--cluster", str(path), str(tmp / "test_inner.py")],
            cwd=tmp,
            env=os.environ | {"STUB_PID_DIR": str(pids)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_as_in_a_terminal,
        )
        lines = _Lines(proc)
        deadline = time.monotonic() + REACH_MOMENT_CAP_S
        while (
            proc.poll() is None
            and time.monotonic() < deadline
            and not marker.exists()
            and _recorded(runs) < k
        ):
            time.sleep(0.02)  # polling the child's progress; the moment, not readiness
        time.sleep(extra)
        try:
            took = _signal_and_wait(proc, sig)
            err = lines.text()
            assert took < EXIT_WITHIN_S, f"pytest exited {took:.1f}s after {signal.Signals(sig).name}:\n{err}"
            if _records(runs):  # the fixture had started something: pytest's own "interrupted" status
                assert proc.returncode == pytest.ExitCode.INTERRUPTED, err
            _assert_nothing_left(runs, pids)
        except BaseException:
            _kill_leftovers(runs, pids)
            raise
