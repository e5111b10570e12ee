"""The part the ssh and docker launchers share: a host reached through a command that runs a shell
line there (`ssh HOST LINE`, `docker exec -i CONTAINER sh -c LINE`).

The line records its shell's pid and then execs the program, so the program leads a process group
of its own (sshd calls setsid() for a session without a tty; the docker launcher runs the line under
`setsid -w`). stop() signals that whole group through a second command (TERM, then KILL after the
grace period): closing the first one alone would leave the program running, since a session without
a tty gets no SIGHUP. Output streams back through the first command into the local log file, so the
logs of all hosts land in one run directory.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

from kvtest.cluster.render import Launch, remote_run_dir
from kvtest.cluster.schema import Host
from kvtest.process import ManagedProcess


def run_shell(prefix: list[str], line: str, *, stdin: bytes | None = None, timeout: float = 30.0) -> str:
    done = subprocess.run([*prefix, line], input=stdin, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(prefix[:4])} ...: {line!r} failed with {done.returncode}: "
            f"{done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout.decode(errors="replace")


def signal_line(pidfile: str, sig: str) -> str:
    return f'P=$(cat {shlex.quote(pidfile)} 2>/dev/null) && kill -{sig} -- "-$P" 2>/dev/null; exit 0'


def stop_line(pidfile: str, grace: float) -> str:
    steps = max(1, int(grace * 10))
    return (
        # a stop right after the start may come before the remote shell wrote its pid
        f"for i in $(seq 50); do [ -s {shlex.quote(pidfile)} ] && break; sleep 0.1; done; "
        f"P=$(cat {shlex.quote(pidfile)} 2>/dev/null) || exit 0; "
        'kill -CONT -- "-$P" 2>/dev/null; kill -TERM -- "-$P" 2>/dev/null || exit 0; '
        f'for i in $(seq {steps}); do kill -0 -- "-$P" 2>/dev/null || exit 0; sleep 0.1; done; '
        'kill -KILL -- "-$P" 2>/dev/null; exit 0'
    )


class RemoteProcess:
    def __init__(self, launch: Launch, client: ManagedProcess, pidfile: str, shell: list[str]) -> None:
        self.launch = launch
        self.client = client
        self.pidfile = pidfile
        self.shell = shell  # runs one shell line on the host
        self.log_path = client.log_path

    @property
    def name(self) -> str:
        return self.launch.name

    def poll(self) -> int | None:
        # the client exits with the remote command's status when the remote program ends
        return self.client.poll()

    def signal(self, sig: int) -> None:
        import signal as signals

        run_shell(self.shell, signal_line(self.pidfile, signals.Signals(sig).name.removeprefix("SIG")))

    def stop(self, grace: float = 8.0) -> None:
        try:
            run_shell(self.shell, stop_line(self.pidfile, grace), timeout=grace + 20)
        finally:
            self.client.stop(grace=2.0)

    def record(self) -> dict[str, Any]:
        return {
            "reach": self.launch.host.reach,
            "pidfile": self.pidfile,
            "shell": self.shell,
            "client_pgid": self.client.pid,
        }


class RemoteShellLauncher:
    """Subclasses say how to run a line on a host: shell(host) for short commands, and spawn_shell(host)
    for the long-lived one (it must make the line's shell a process group leader)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def shell(self, host: Host) -> list[str]:
        raise NotImplementedError

    def spawn_shell(self, host: Host) -> list[str]:
        return self.shell(host)

    def provision(self, hosts: list[Host]) -> list[Host]:
        return hosts

    def close(self) -> None:
        pass

    def spawn(self, launch: Launch, log_path: Path) -> RemoteProcess:
        host = launch.host
        rdir = remote_run_dir(host, self.run_dir)
        for path, content in launch.files.items():
            line = f"mkdir -p {shlex.quote(str(Path(path).parent))} && cat > {shlex.quote(path)}"
            run_shell(self.shell(host), line, stdin=content.encode())
        pidfile = f"{rdir}/{launch.name}.pid"
        env = host.env | launch.env
        program = list(launch.argv)
        if host.netns:
            program = ["ip", "netns", "exec", host.netns, *program]
        cd = f"cd {shlex.quote(host.workdir)} && " if host.workdir else ""
        env_words = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))
        line = (
            f"mkdir -p {shlex.quote(rdir)} && echo $$ > {shlex.quote(pidfile)} && {cd}"
            f"exec env {env_words} {shlex.join(program)}"
        )
        spawn = self.spawn_shell(host)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as fh:
            fh.write(f"$ {shlex.join(spawn[:1])} {host.address} {line}\n")
        client = ManagedProcess(launch.name, [*spawn, line], log_path=log_path)
        client.start()
        return RemoteProcess(launch, client, pidfile, self.shell(host))

    @staticmethod
    def stop_recorded(record: dict[str, Any], grace: float = 8.0) -> None:
        from kvtest.cluster.launchers.local import stop_group

        try:
            run_shell(record["shell"], stop_line(record["pidfile"], grace), timeout=grace + 20)
        finally:
            if record.get("client_pgid"):
                stop_group(record["client_pgid"], 2.0)

    @staticmethod
    def clean_run(run_dir: Path) -> None:
        pass
