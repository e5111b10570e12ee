"""The plugin from another repository: kvtest installed from a wheel, a test using the `cluster`
fixture, no --cluster. The default cluster file (sim) and the tiny model dir must come with the
package, so the test starts a cluster and passes instead of skipping "no cluster file"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

USER_TEST = """
import httpx
import kvtest


def test_the_default_cluster_answers(cluster):
    assert kvtest.__file__.startswith({site!r}), kvtest.__file__  # the wheel's copy, not the checkout
    node = cluster.nodes[0]
    body = {{"model": node.model, "prompt": "a user's prompt " * 8, "max_tokens": 4}}
    resp = httpx.post(cluster.proxy_url + "/v1/completions", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["completion_tokens"] == 4
"""


def test_a_user_repository_gets_the_shipped_sim_cluster(tmp_path: Path) -> None:
    # built from a copy of what a wheel is made of, so no build/ is left in (or reused from) the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("kvtest", "simulators", "fixtures"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=skip)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("kvtest-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    assert (site / "kvtest" / "fixtures" / "clusters" / "sim.yaml").is_file()
    assert (site / "kvtest" / "fixtures" / "models" / "tiny-llama" / "tokenizer.json").is_file()

    user_repo = tmp_path / "user-repo"  # outside the checkout: no fixtures/, no pyproject of ours
    user_repo.mkdir()
    (user_repo / "test_user.py").write_text(USER_TEST.format(site=str(site)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVTEST_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the checkout
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "test_user.py"],
        cwd=user_repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "1 passed" in out and "skipped" not in out, out[-4000:]
