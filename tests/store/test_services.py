"""kvtest.services: the master (real or mock) and etcd start on free ports, report a bad start with the
log tail, and stop; the mock master runs as a process with the real one's flags."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from kvtest.gating import skip_unless
from kvtest.process import ProcessExitedError
from kvtest.service import READY_CAP_S
from kvtest.services import EtcdConfig, EtcdServer, MooncakeMaster


def test_master_process_serves_health_and_logs(impl: str, tmp_path: Path) -> None:
    with MooncakeMaster(impl, {"client_ttl": 3}, log_dir=tmp_path) as m:  # type: ignore[arg-type]
        assert m.alive()
        assert httpx.get(m.url_for("health")).json()["status"] == "ok"
        assert m.rss_bytes() > 0
    assert not m.alive()
    assert m.log_path.exists() and "client_ttl=3" in m.log_text()


def test_bad_flag_value_is_reported_with_the_log(impl: str, tmp_path: Path) -> None:
    m = MooncakeMaster(impl, {"eviction_ratio": "lots"}, log_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ProcessExitedError) as e:
        m.start(timeout=READY_CAP_S)
    m.stop()
    assert "eviction_ratio" in str(e.value)


def test_etcd_binary(tmp_path: Path) -> None:
    skip_unless("real", shutil.which("etcd") is not None, "etcd not installed (apt-get install etcd-server)")
    with EtcdServer(EtcdConfig(use_docker=False), log_dir=tmp_path) as etcd:
        r = httpx.post(etcd.url_for("v3/kv/put"), json={"key": "YQ==", "value": "Yg=="})
        assert r.status_code == 200
        assert etcd.endpoint.startswith("etcd://127.0.0.1:")
