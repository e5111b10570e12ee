"""A child process a test or launcher owns: started with its log in a file, polled for readiness
with a deadline, and always stopped (terminate, wait 8 s, kill), children included.

    proc = ManagedProcess("master", ["mooncake_master", "--rpc_port=50051"], log_path=run_dir / "master.log")
    proc.start()
    proc.wait_ready(lambda: port_is_open("127.0.0.1", 50051), timeout=10)
    ...
    proc.stop()

Readiness goes through kvtest.readiness (one waiter for every launcher and service).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kvtest.readiness import CallProbe, ProcessExitedError, ReadyTimeoutError, http_ok, tail, wait_ready

__all__ = ["ManagedProcess", "ProcessExitedError", "ReadyTimeoutError", "http_ok", "tail"]

STOP_GRACE_S = 8.0


class ManagedProcess:
    """One child process in its own session (so stop() reaches its children too)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log_path: Path | None = None,
        inherit_env: bool = True,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = dict(os.environ if inherit_env else {}) | dict(env or {})
        self.cwd = str(cwd) if cwd else None
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self._log_fh: object | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> ManagedProcess:
        if self.popen is not None:
            raise RuntimeError(f"{self.name} already started")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = self.log_path.open("ab")
            self._log_fh = log
            stdout: int | object = log
        else:
            stdout = subprocess.DEVNULL
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def poll(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Send sig to the whole process group (SIGSTOP/SIGCONT for a nemesis, SIGKILL for a crash)."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """terminate, wait `grace` seconds, then kill; the whole process group either way."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal(signal.SIGCONT)  # a SIGSTOPped process cannot handle SIGTERM
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        # children that outlived the leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self._log_fh is not None:
            self._log_fh.close()  # type: ignore[attr-defined]
            self._log_fh = None
        return self.popen.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)

    # --- readiness ---------------------------------------------------------------------------
    def wait_ready(self, probe: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
        """Poll `probe` until it is true (kvtest.readiness's waiter); raise if the process exits or the
        deadline passes. Returns the seconds it took."""
        return wait_ready(self, [CallProbe(" ".join(self.argv), probe)], timeout, interval)

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
