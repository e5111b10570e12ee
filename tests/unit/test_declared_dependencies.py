"""Every third-party module kvtest/ and simulators/ import comes from a distribution pyproject.toml
declares (a dependency or an extra), so `pip install kvtest[...]` gives a working package."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# optional modules that may be absent here, whose distribution is not named like the module
NOT_INSTALLED = {"mooncake": ["mooncake-transfer-engine-non-cuda"]}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in reqs}


def _imports() -> dict[str, str]:
    found: dict[str, str] = {}
    for top in ("kvtest", "simulators"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    root = name.split(".")[0]
                    if root not in sys.stdlib_module_names and root not in ("kvtest", "simulators"):
                        found.setdefault(root, str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared() -> None:
    declared = _declared()
    owners = packages_distributions()
    undeclared = []
    for module, where in sorted(_imports().items()):
        # not installed here (an optional extra such as ray or uvloop): its distribution by its name
        dists = owners.get(module) or NOT_INSTALLED.get(module) or [module]
        if not any(_norm(d) in declared for d in dists):
            undeclared.append(f"{module} ({where}; distribution {', '.join(dists)})")
    assert not undeclared, "imported but not in pyproject.toml: " + "; ".join(undeclared)
