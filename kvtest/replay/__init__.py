"""Trace replay at scale: Mooncake's public traces (or kvtest datasets) through many fake vLLM engines in
one process, on a virtual clock, with the proxy's routing strategies and an optional shared Mooncake store.

| module | concept |
| --- | --- |
| `trace.py` | reading a trace (Mooncake's format, kvtest's JSONL datasets) |
| `tokens.py` | hash_ids -> prompt token ids (sharing preserved at every vLLM block size dividing 512) |
| `block_hashes.py` | the fake's chained block hashes of those prompts, memoised per 512-token block |
| `routing.py` | the proxy's Router picking a node for each replayed request |
| `shared_store.py` | a shared Mooncake store of a given capacity, as the store connector sees it |
| `simulation.py` | the event loop: N fake engines, arrivals, prefill, aggregate decode, finishes |
| `summary.py` | per-node and total results, JSON and a printed table |
| `chart.py` | the PNG (hit rate against cache size, per strategy, local vs shared store) |
| `paper.py` | the paper's question: one cache of C tokens seeing the whole trace |
| `cli.py` | `kvtest replay` |
"""
