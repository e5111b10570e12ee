"""Run a rendered process on this machine (optionally inside a network namespace).

    launcher = LocalLauncher(run_dir)
    handle = launcher.spawn(launch, log_path=run_dir / "logs" / "p0.log")
    handle.poll(); handle.stop()

Each process leads its own process group (kvtest.process.ManagedProcess), so stop() and a later
`kvtest cluster down` from another shell reach its children too (vLLM's engine-core process).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

from kvtest.cluster.render import Launch
from kvtest.cluster.schema import Host
from kvtest.process import ManagedProcess

POLL_INTERVAL_S = 0.1


class LocalProcess:
    def __init__(self, launch: Launch, proc: ManagedProcess) -> None:
        self.launch = launch
        self.proc = proc
        self.log_path = proc.log_path

    @property
    def name(self) -> str:
        return self.launch.name

    def poll(self) -> int | None:
        return self.proc.poll()

    def signal(self, sig: int) -> None:
        self.proc.signal(sig)

    def stop(self, grace: float = 8.0) -> None:
        self.proc.stop(grace)

    def record(self) -> dict[str, Any]:
        import psutil

        pid = self.proc.pid
        created = psutil.Process(pid).create_time() if pid and self.poll() is None else None
        return {"reach": self.launch.host.reach, "pgid": pid, "create_time": created}


class LocalLauncher:
    same_paths: ClassVar[bool] = True

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def provision(self, hosts: list[Host]) -> list[Host]:
        return hosts

    def spawn(self, launch: Launch, log_path: Path) -> LocalProcess:
        for path, content in launch.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        argv = list(launch.argv)
        if launch.host.netns:
            # ip netns exec execs the command, so the process group stays the command's own
            argv = ["ip", "netns", "exec", launch.host.netns, *argv]
        env = launch.host.env | launch.env
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as fh:
            env_line = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
            fh.write(f"$ {env_line} {shlex.join(argv)}\n")
        proc = ManagedProcess(
            launch.name, argv, env=env, cwd=launch.host.workdir or os.getcwd(), log_path=log_path
        )
        proc.start()
        return LocalProcess(launch, proc)

    def close(self) -> None:
        pass

    @staticmethod
    def stop_recorded(record: dict[str, Any], grace: float = 8.0) -> None:
        pgid = record.get("pgid")
        if pgid and _same_process(pgid, record.get("create_time")):
            stop_group(pgid, grace)

    @staticmethod
    def clean_run(run_dir: Path) -> None:
        pass


def stop_group(pgid: int, grace: float) -> None:
    """TERM the group, wait up to grace for every live member to go, then KILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGCONT)
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process in the group? After `cluster up` exits, its children belong to
    pid 1, which in a container may never reap them: a zombie answers killpg(pgid, 0) forever."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _same_process(pid: int, create_time: float | None) -> bool:
    """Guard against pid reuse: the leader still running must be the one we started."""
    import psutil

    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return create_time is None  # the leader is gone; its group may still hold children
    return create_time is None or abs(proc.create_time() - create_time) < 1.0
