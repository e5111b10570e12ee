"""Run a rendered process on another machine through the `ssh` binary.

    handle = SSHLauncher().spawn(launch, log_path=run_dir / "p0.log")

The remote command records its shell's pid and then execs the program, so the program is the
leader of the process group sshd made for the session (sshd calls setsid() for a session without
a tty). stop() signals that whole group over a second ssh connection (TERM, then KILL after the
grace period): closing the connection alone would leave the remote process running, because a
session without a tty gets no SIGHUP. Output streams back through the connection into the local
log file, so logs of all hosts land in one run directory.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

from kvtest.cluster.render import Launch, remote_run_dir
from kvtest.cluster.schema import Host
from kvtest.process import ManagedProcess


def ssh_base(host: Host) -> list[str]:
    opts = host.ssh
    assert opts is not None
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", str(opts.port)]
    if opts.identity_file:
        argv += ["-i", opts.identity_file]
    for option in opts.options:
        argv += ["-o", option]
    target = f"{opts.user}@{host.address}" if opts.user else host.address
    return [*argv, target]


def run_remote(host: Host, command: str, *, stdin: bytes | None = None, timeout: float = 30.0) -> str:
    done = subprocess.run(
        [*ssh_base(host), command], input=stdin, capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"ssh {host.name} ({host.address}): {command!r} failed with {done.returncode}: "
            f"{done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout.decode(errors="replace")


def _stop_command(pidfile: str, grace: float) -> str:
    steps = max(1, int(grace * 10))
    return (
        # a stop right after the start may come before the remote shell wrote its pid
        f"for i in $(seq 50); do [ -s {shlex.quote(pidfile)} ] && break; sleep 0.1; done; "
        f"P=$(cat {shlex.quote(pidfile)} 2>/dev/null) || exit 0; "
        'kill -CONT -- "-$P" 2>/dev/null; kill -TERM -- "-$P" 2>/dev/null || exit 0; '
        f'for i in $(seq {steps}); do kill -0 -- "-$P" 2>/dev/null || exit 0; sleep 0.1; done; '
        'kill -KILL -- "-$P" 2>/dev/null; exit 0'
    )


def stop_remote_group(host: Host, pidfile: str, grace: float = 8.0) -> None:
    run_remote(host, _stop_command(pidfile, grace), timeout=grace + 20)


class SSHProcess:
    def __init__(self, launch: Launch, client: ManagedProcess, pidfile: str) -> None:
        self.launch = launch
        self.client = client
        self.pidfile = pidfile
        self.log_path = client.log_path

    @property
    def name(self) -> str:
        return self.launch.name

    def poll(self) -> int | None:
        # the ssh client exits with the remote command's status when the remote program ends
        return self.client.poll()

    def stop(self, grace: float = 8.0) -> None:
        try:
            stop_remote_group(self.launch.host, self.pidfile, grace)
        finally:
            self.client.stop(grace=2.0)

    def kill(self) -> None:
        self.stop(grace=0.1)

    def record(self) -> dict[str, Any]:
        return {
            "reach": "ssh",
            "pidfile": self.pidfile,
            "client_pgid": self.client.pid,
            "host": self.launch.host.model_dump(),
        }


class SSHLauncher:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def spawn(self, launch: Launch, log_path: Path) -> SSHProcess:
        host = launch.host
        rdir = remote_run_dir(host, self.run_dir)
        for path, content in launch.files.items():
            run_remote(
                host,
                f"mkdir -p {shlex.quote(str(Path(path).parent))} && cat > {shlex.quote(path)}",
                stdin=content.encode(),
            )
        pidfile = f"{rdir}/{launch.name}.pid"
        env = host.env | launch.env
        program = list(launch.argv)
        if host.netns:
            program = ["ip", "netns", "exec", host.netns, *program]
        cd = f"cd {shlex.quote(host.workdir)} && " if host.workdir else ""
        env_words = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))
        remote = (
            f"mkdir -p {shlex.quote(rdir)} && echo $$ > {shlex.quote(pidfile)} && {cd}"
            f"exec env {env_words} {shlex.join(program)}"
        )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as fh:
            fh.write(f"$ ssh {host.address} {remote}\n")
        client = ManagedProcess(launch.name, [*ssh_base(host), remote], log_path=log_path)
        client.start()
        return SSHProcess(launch, client, pidfile)
