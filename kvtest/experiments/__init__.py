"""The seed's experiments as commands with verdicts (issue 5): `kvtest demo`, `kvtest experiment NAME`.

1 designate, 2 rr, 3 random, 4 same_prefix (kvtest/experiments/prefix.py) and 5 putget
(kvtest/experiments/putget.py) run on any cluster through an ExperimentSession (session.py: metric deltas,
the expectation model fed every request, the verdicts), and runner.py prints the tables and writes the run
directory kvtest/report renders. tests/scenarios runs the same experiments through the `cluster` fixture.
"""
