"""Run a rendered process on another machine through the `ssh` binary (kvtest.cluster.launchers.remote_shell
does the rest: pid file, process group, stop, logs streamed back)."""

from __future__ import annotations

from typing import ClassVar

from kvtest.cluster.launchers.remote_shell import RemoteShellLauncher
from kvtest.cluster.schema import Host


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


class SSHLauncher(RemoteShellLauncher):
    same_paths: ClassVar[bool] = False

    def shell(self, host: Host) -> list[str]:
        return ssh_base(host)
