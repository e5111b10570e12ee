"""The check groups; importing this package registers every check (kvtest.conformance.check.CHECKS)."""

from kvtest.conformance.groups import designate, errors, kvtest_rules, pd

__all__ = ["designate", "errors", "kvtest_rules", "pd"]
