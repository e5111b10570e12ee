"""Latency model (llm-d-inference-sim's LatencyCalculator, reduced): only uncached tokens cost prefill."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatencyModel:
    prefill_base_ms: float = 0.0
    ttft_ms_per_token: float = 0.0
    itl_ms: float = 0.0
    external_ms_per_token: float = 0.0

    @property
    def is_zero(self) -> bool:
        return not (
            self.prefill_base_ms or self.ttft_ms_per_token or self.itl_ms or self.external_ms_per_token
        )

    def ttft(self, num_prompt_tokens: int, num_cached_tokens: int, num_external_tokens: int = 0) -> float:
        """Seconds from scheduling to the first token."""
        uncached = max(num_prompt_tokens - num_cached_tokens - num_external_tokens, 0)
        ms = self.prefill_base_ms + self.ttft_ms_per_token * uncached
        ms += self.external_ms_per_token * num_external_tokens
        return ms / 1000.0

    def itl(self) -> float:
        return self.itl_ms / 1000.0
