"""The netns tier beside a running Docker engine (issue: dockerd's FORWARD policy DROP + br_netfilter
dropped every packet between namespace hosts, and the real tier failed with "p0 was not ready").

Real etcd and a real mooncake_master on one namespace host, a real store client on each of two
others, the transfer engine moving 1 MiB from one client's segment to the other: all of it crosses
kvtest's bridge through iptables' FORWARD chain. The test first checks the hostile condition is really
there (an engine answers, FORWARD policy DROP, bridged frames pass through iptables), shows that
without the network's rules a host cannot reach another, and after teardown that the rules are gone
and the policy untouched. Where no engine runs it skips with the reason; KVTEST_REQUIRE=docker (CI,
after ci/install-docker.sh) makes that a failure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kvtest.bridge_firewall import bridge_netfilter_on, forward_policy, rules_for
from kvtest.gating import skip_unless
from kvtest.netns import NetnsNetwork, require_netns
from kvtest.services import MooncakeMaster
from kvtest.services.etcd import EtcdConfig, EtcdServer, docker_available

from .harness import BUF, SEG, ClientProcess, real_available

pytestmark = [pytest.mark.netns, pytest.mark.real]


def _require_docker_beside() -> None:
    if not docker_available():
        skip_unless("docker", False, "no Docker engine answers (bash ci/install-docker.sh starts one)")
    policy, nf = forward_policy(), bridge_netfilter_on()
    skip_unless(
        "docker",
        policy == "DROP" and nf,
        f"an engine answers but the condition under test is absent: FORWARD policy {policy}, "
        f"net.bridge.bridge-nf-call-iptables {'1' if nf else '0 or br_netfilter not loaded'}",
    )


def test_real_store_across_namespace_hosts_with_dockerd_running(tmp_path: Path) -> None:
    require_netns()
    ok, reason = real_available()
    skip_unless("real", ok, reason)
    skip_unless("real", shutil.which("etcd") is not None, "etcd not installed (apt-get install etcd-server)")
    _require_docker_beside()

    net = NetnsNetwork(3)
    with net:
        mh, ha, hb = net.hosts
        assert len(rules_for(net.bridge)) == 3  # FORWARD host to host, INPUT/OUTPUT for this driver
        with (
            EtcdServer(EtcdConfig(host=mh.addr), log_dir=tmp_path, wrap=mh.exec_prefix) as etcd,
            MooncakeMaster("real", {}, host=mh.addr, wrap=mh.exec_prefix, probe=mh.http_ok,
                           log_dir=tmp_path) as master,
        ):  # fmt: skip
            health = etcd.url_for("health")
            # the hostile condition bites: without the rules, host A cannot reach the master's host
            net.firewall.revoke()
            assert ha.http_get(health, timeout=3)[0] == 0, "reachable without the rules: nothing was proven"
            net.firewall.allow()
            assert ha.http_get(health, timeout=30)[0] == 200

            clients = []
            try:
                for h in (ha, hb):
                    c = ClientProcess("real", tmp_path / f"client-{h.addr}.log",
                                      env={"MC_TCP_BIND_ADDRESS": h.addr}, wrap=h.exec_prefix)  # fmt: skip
                    clients.append(c)
                    assert c.setup(h.addr, etcd.endpoint, SEG, BUF, "tcp", "", master.rpc_addr) == 0
                a, b = clients
                value = bytes(range(256)) * 4096  # 1 MiB: host B's client reads host A's segment
                assert a.put("beside-docker", value) == 0
                assert b.get("beside-docker") == value
                segments = mh.http_get(master.url_for("get_all_segments"))[1].split()
                assert sorted(s.rsplit(":", 1)[0] for s in segments) == [ha.addr, hb.addr]
            finally:
                for c in clients:
                    c.kill()
    assert rules_for(net.bridge) == []
    assert forward_policy() == "DROP"  # the host's own protection is as dockerd left it
