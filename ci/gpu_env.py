"""What kvtest's GPU suite needs from a GPU host's Python beyond what its vLLM install brings.

    python3 ci/gpu_env.py missing            # requirement lines not satisfied in this interpreter
    python3 ci/gpu_env.py constraints FILE   # name==version of every distribution installed here

ci/install-gpu.sh installs only the missing ones, with pip held to the constraints, so vLLM, torch,
Mooncake and their pins (also those on PYTHONPATH, a pip --target site tree) are never replaced.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The test dependencies tests/gpu, tests/scenarios and tests/rdma import (pyproject's `test` extra
# also has docker, testcontainers and actionlint for the CPU tiers; a GPU runner needs none of them).
GPU_TEST = ["pytest>=8.0", "pytest-asyncio>=0.23", "pytest-timeout>=2.3", "hypothesis>=6.100",
            "respx>=0.21", "aioresponses>=0.7.6"]  # fmt: skip


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *GPU_TEST]


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v.split("+")[0])[:3])


def satisfied(requirement: str) -> bool:
    """Installed at a version >= the requirement's lower bound (the only kind pyproject uses)."""
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:>=\s*([\w.]+))?", requirement.strip())
    if not m:
        raise SystemExit(f"gpu_env.py: cannot read requirement {requirement!r}")
    name, low = m.groups()
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return low is None or _version_tuple(have) >= _version_tuple(low)


def main(argv: list[str]) -> int:
    if argv[:1] == ["missing"]:
        for req in requirements():
            if not satisfied(req):
                print(req)
        return 0
    if len(argv) == 2 and argv[0] == "constraints":
        seen: dict[str, str] = {}
        for dist in metadata.distributions():  # sys.path order: PYTHONPATH first, as imports see it
            name = dist.metadata["Name"]
            if name and name.lower() not in seen and name.lower() != "kvtest":
                seen[name.lower()] = f"{name}=={dist.version}"
        Path(argv[1]).write_text("".join(line + "\n" for line in sorted(seen.values())))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
