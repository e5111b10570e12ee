"""kvtest: a test suite for vLLM + Mooncake disaggregated serving.

The library the suite drives: the P/D proxy, workloads, metrics and expectations, the cluster
file and its launchers, the store facade, the pytest plugin and the report.
"""

__version__ = "0.1.0"
