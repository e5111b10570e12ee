"""Scenario fixtures: one ExperimentSession per running `cluster` (the plugin's fixture: simulators by
default, any cluster file with --cluster), so every experiment's expectation knows what ran before it."""

from __future__ import annotations

from typing import Any

import pytest

from kvtest.experiments.session import ExperimentSession


@pytest.fixture(scope="session")
def experiments(cluster: Any, cluster_spec: Any) -> ExperimentSession:
    real = any(n.impl == "real" for n in cluster_spec.nodes)
    return ExperimentSession.for_cluster(
        cluster,
        tolerance=cluster_spec.tolerances.hit_rate_abs if real else 0.0,
        hash_seed=cluster_spec.hash_seed,
    )
