"""The cluster files and the tiny model directory shipped with kvtest (package data), and how a
`--cluster` value finds its file.

    resolve_cluster_file("sim")            # ./fixtures/clusters/sim.yaml in a checkout, else the shipped one
    resolve_cluster_file("my/cluster.yaml")  # a path is a path

In a checkout, kvtest/fixtures links to the repository's fixtures/; an installed wheel carries the
files themselves, so `--cluster sim` works from any repository.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLUSTERS = FIXTURES / "clusters"


def shipped_names() -> list[str]:
    return sorted(p.stem for p in CLUSTERS.glob("*.yaml"))


def resolve_cluster_file(value: str | None, rootdir: Path | None = None) -> Path:
    """A `--cluster` value -> a file: the path as given (or under `rootdir`), else
    `rootdir`/fixtures/clusters/NAME.yaml, else the shipped NAME.yaml. Default: "sim".
    A value that matches nothing comes back as given, for the caller's "does not exist" message."""
    value = value or "sim"
    roots = [Path.cwd()] if rootdir is None else [rootdir]
    candidates = [Path(value)]
    for root in roots:
        candidates += [root / value, root / "fixtures" / "clusters" / f"{value}.yaml"]
    candidates.append(CLUSTERS / f"{value}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return Path(value)
