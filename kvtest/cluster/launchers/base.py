"""What a launcher and the handle of a process it started provide (kvtest.cluster.launchers)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from kvtest.cluster.render import Launch
    from kvtest.cluster.schema import Host


class Handle(Protocol):
    """One started process. poll() is None while it runs (the waiter's exit check)."""

    launch: Launch
    log_path: Path | None

    @property
    def name(self) -> str: ...
    def poll(self) -> int | None: ...
    def signal(self, sig: int) -> None: ...
    def stop(self, grace: float = 8.0) -> None: ...
    def record(self) -> dict[str, Any]:
        """What the state file keeps so that `kvtest cluster down` can stop it from another shell;
        includes "reach", so down() finds the launcher class again."""
        ...


class Launcher(Protocol):
    # the host sees this machine's files at the same paths (run dir, checkout, interpreter), so
    # render gives it local paths and this interpreter
    same_paths: ClassVar[bool]

    def __init__(self, run_dir: Path) -> None: ...
    def provision(self, hosts: list[Host]) -> list[Host]:
        """Make the machines these hosts name, if the launcher makes them; return the hosts with
        the addresses they got (unchanged for hosts that already exist)."""
        ...

    def spawn(self, launch: Launch, log_path: Path) -> Handle: ...
    def close(self) -> None:
        """Undo provision (after every handle was stopped); safe after a partial start."""
        ...

    @staticmethod
    def stop_recorded(record: dict[str, Any], grace: float) -> None:
        """Stop a process from its state-file record (another shell's `kvtest cluster down`)."""
        ...

    @staticmethod
    def clean_run(run_dir: Path) -> None:
        """After every recorded process of a run is stopped: remove what provision made for it."""
        ...
