"""One size parser for mooncake.json and mooncake_master sizes, reading them as Mooncake does:
mooncake-store/include/utils.h, string_to_byte_size (kvcache-ai/Mooncake): a decimal number, optional
blanks, a unit among B, K/KB, M/MB, G/GB, T/TB in any case (powers of 1024), bytes without one,
"infinite" = the largest uint64. Mooncake turns anything else ("512MiB") into 0, an empty segment;
kvtest refuses it with a message instead."""

from __future__ import annotations

import pytest

from kvtest.store import parse_size as kvtest_parse_size
from simulators.mooncake.config import INFINITE, MooncakeConfig, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MB", 512 << 20),
        ("512 mb", 512 << 20),
        ("512M", 512 << 20),
        ("1GB", 1 << 30),
        (" 1.5 GB ", int(1.5 * (1 << 30))),
        ("64K", 64 << 10),
        ("2TB", 2 << 40),
        ("100B", 100),
        ("3355443200", 3355443200),
        (3355443200, 3355443200),
        ("infinite", INFINITE),
    ],
)
def test_accepts_what_mooncake_accepts(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["512MiB", "1GiB", "12 parsecs", "", "MB", "-1MB", "1.2.3GB"])
def test_refuses_what_mooncake_reads_as_zero_with_a_message(text: str) -> None:
    with pytest.raises(ValueError, match="not a size") as exc:
        parse_size(text)
    assert "KB" in str(exc.value) and repr(text) in str(exc.value)


def test_kvtest_and_the_simulators_share_the_parser_and_mooncake_json_uses_it() -> None:
    assert kvtest_parse_size is parse_size
    cfg = MooncakeConfig.from_dict({"global_segment_size": "256MB", "local_buffer_size": "64 mb"})
    assert (cfg.global_segment_size, cfg.local_buffer_size) == (256 << 20, 64 << 20)
    with pytest.raises(ValueError, match="512MiB"):
        MooncakeConfig.from_dict({"global_segment_size": "512MiB"})


def test_a_cluster_file_with_a_size_mooncake_cannot_read_is_refused_at_load() -> None:
    from kvtest.cluster.schema import ClusterFileError, parse_cluster

    data = {
        "name": "t",
        "hosts": [{"name": "h"}],
        "mooncake": {"global_segment_size": "512MiB"},
        "nodes": [{"name": "p0", "host": "h", "role": "prefill", "model": "m"}],
    }
    with pytest.raises(ClusterFileError, match=r"c.yaml: mooncake.global_segment_size: not a size: '512MiB'"):
        parse_cluster(data, "c.yaml")
