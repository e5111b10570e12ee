"""Skips that say why, and that CI can turn into failures.

A test that cannot run here calls `skip_unless(feature, ok, reason)`. Locally that is a skip with
the reason; where `KVTEST_REQUIRE` names the feature (CI sets `KVTEST_REQUIRE=real,netns`), the
same call fails the test, so a tier that must run can never pass by skipping.
"""

from __future__ import annotations

import os

import pytest


def required_features() -> set[str]:
    raw = os.environ.get("KVTEST_REQUIRE", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def skip_unless(feature: str, ok: bool, reason: str) -> None:
    if ok:
        return
    if feature in required_features():
        pytest.fail(f"[{feature} required by KVTEST_REQUIRE] {reason}", pytrace=False)
    pytest.skip(f"[{feature}] {reason}")
