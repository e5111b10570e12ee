"""Scrape vLLM /metrics, snapshot the prefix-cache counters, and take per-node deltas (`kvtest metrics`)."""
