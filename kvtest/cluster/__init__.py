"""Cluster files (schema), what they render to (render), and launchers that run them (runner)."""

from kvtest.cluster.cluster import Cluster, MetricsScraper
from kvtest.cluster.runner import start, up
from kvtest.cluster.schema import ClusterFileError, ClusterSpec, load_cluster, parse_cluster

__all__ = [
    "Cluster",
    "ClusterFileError",
    "ClusterSpec",
    "MetricsScraper",
    "load_cluster",
    "parse_cluster",
    "start",
    "up",
]
