"""Conformance kit: rate any P/D router on fake vLLM nodes (`kvtest conformance --proxy-cmd ...`).

The router under test is a command line with placeholders ({port}, {prefill}, {decode}, ...); the kit
starts fake prefill and decode nodes with the KV connector role the flow needs, starts the router,
runs checks in named groups (pd, errors, kvtest, designate) and reports a table, JUnit XML and JSON.
"""

from kvtest.conformance.check import GROUPS, Result
from kvtest.conformance.runner import ConformanceRun, run_conformance

__all__ = ["GROUPS", "ConformanceRun", "Result", "run_conformance"]
