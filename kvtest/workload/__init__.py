"""Workloads: the seed's prefix-caching datasets, a driver that posts them, and a serving benchmark.

- `dataset`: the seed's JSONL ({"model","max_tokens","prompt","user"}) and its Random/Designate/RR strategies.
- `send`: posts a dataset through a proxy (httpx, streaming) and records per-request timing.
- `bench_serve`: `kvtest bench serve`, the role `vllm bench serve` played in the seed.
- `sharegpt`, `synthetic`: benchmark prompt sources (ShareGPT JSON parsed as vLLM does; generated prompts).
"""
