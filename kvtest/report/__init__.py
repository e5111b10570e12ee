"""Run reports: `kvtest report RUN_DIR` turns a run directory into what a person reads instead of /metrics.

Run directory layout (written by the experiments, read here)::

    RUN_DIR/
      run.json                    optional: {"title", "cluster", "started_at", "seed", ...}, the header
      experiments/<name>.json     one file per experiment, `ExperimentResult.to_dict()`:
          {"name", "title", "description", "metric": "v1"|"v0", "notes": [str, ...],
           "nodes": [{"node", "machine", "role", "requests", "queries", "hits", "hit_rate",
                      "expected", "tolerance", "verdict": "PASS"|"FAIL", "note", "detail": {...}}, ...],
           "checks": [{"name", "verdict", "detail"}, ...],
           "latencies": [{"index", "ok", "ttft_s", "e2e_s", "run", ...}, ...]}
          latencies are kvtest.workload.send results; "run" (1 = cold cache, 2 = the repeat) is optional

`kvtest report RUN_DIR` writes beside them:

    report.md       summary table, per-experiment node tables, the charts, notes
    hit_rate.png    per experiment, measured vs expected hit rate per node, 50% / 90% reference lines
    latency.png     TTFT and end-to-end latency distributions per experiment
    junit.xml       one testcase per (experiment, node) for CI
    summary.json    every experiment's rows and verdicts in one file

An experiment passes when every node row and every check is PASS and no request failed; the report's
exit status is 1 otherwise, so CI can gate on it.
"""
