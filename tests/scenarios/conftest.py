"""Scenario fixtures: one ExperimentSession per running `cluster` (the plugin's fixture: simulators by
default, any cluster file with --cluster), so every experiment's expectation knows what ran before it."""

from __future__ import annotations

from typing import Any

import pytest

from kvtest.experiments.cli import session_for
from kvtest.experiments.session import ExperimentSession


@pytest.fixture(scope="session")
def experiments(cluster: Any, cluster_spec: Any) -> ExperimentSession:
    """Exact on simulators, the file's tolerance on real or attached nodes; an attached deployment's
    prompts are salted so no cache holds them yet."""
    return session_for(cluster, cluster_spec)
