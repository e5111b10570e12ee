"""Run a rendered process on this machine (optionally inside a network namespace).

    handle = LocalLauncher().spawn(launch, log_path=run_dir / "p0.log")
    handle.poll(); handle.stop()

Each process leads its own process group (kvtest.process.ManagedProcess), so stop() and a later
`kvtest cluster down` from another shell reach its children too (vLLM's engine-core process).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from kvtest.cluster.render import Launch
from kvtest.process import ManagedProcess


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

    def stop(self, grace: float = 8.0) -> None:
        self.proc.stop(grace)

    def kill(self) -> None:
        self.proc.kill()

    def record(self) -> dict[str, Any]:
        """What the state file keeps to stop this process from another shell."""
        import psutil

        pid = self.proc.pid
        created = psutil.Process(pid).create_time() if pid and self.poll() is None else None
        return {"reach": "local", "pgid": pid, "create_time": created}


class LocalLauncher:
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
