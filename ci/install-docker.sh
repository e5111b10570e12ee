#!/usr/bin/env bash
# A Docker engine for the tiers that need one (containers as hosts, etcd by testcontainers, and the
# proof that the netns tier works beside Docker), installed and started once, idempotently:
#  - an engine that already answers `docker info` is left exactly as it is (config, bridge, rules);
#  - else Debian's docker.io is installed when dockerd is missing, /etc/docker/daemon.json is written
#    when absent, and dockerd is started in its own session (no systemd needed), then awaited.
# Addresses: dockerd's bridge gets 198.19.0.1/24 and its address pools 198.19.0.0/16, never the
# 172.17/16 default (which can be a real network where CI runs) and never kvtest's namespace hosts'
# 198.18.0.0/16 (kvtest/netns.py documents the split).
# Env: DOCKER_WAIT_S bounds the wait for a started engine (default 120 s; it answers in ~2 s idle).
set -euo pipefail
WAIT_S=${DOCKER_WAIT_S:-120}
LOG=/var/log/kvtest-dockerd.log

answers() { command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; }
# a dockerd already starting (a systemd unit, another CI step): wait for it instead of starting a second
# one; read from /proc, as minimal images have neither pgrep nor pidof
dockerd_running() {
  local comm
  for comm in /proc/[0-9]*/comm; do
    [ "$(cat "$comm" 2>/dev/null)" = dockerd ] && return 0
  done
  return 1
}

if answers; then
  echo "install-docker: an engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null)); left alone"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-docker: no engine answers and not root: cannot install or start one" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  echo "install-docker: apt-get install docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  # a host with systemd starts the packaged service itself; give it the same deadline below
fi
if [ ! -e /etc/docker/daemon.json ]; then
  mkdir -p /etc/docker
  cat >/etc/docker/daemon.json <<'EOF'
{"bip": "198.19.0.1/24", "default-address-pools": [{"base": "198.19.0.0/16", "size": 24}]}
EOF
  echo "install-docker: wrote /etc/docker/daemon.json (bridge 198.19.0.1/24, pools 198.19.0.0/16)"
elif ! grep -q '"bip"' /etc/docker/daemon.json; then
  echo "install-docker: /etc/docker/daemon.json exists without a bip; left alone (Docker's 172.17/16 default applies)" >&2
fi
pid=
if ! answers && ! dockerd_running; then
  echo "install-docker: starting dockerd (log: $LOG)"
  # its own session: a CI step or a Ctrl-C in this shell must not take the engine down with it
  setsid dockerd >>"$LOG" 2>&1 </dev/null &
  pid=$!
fi
t0=$SECONDS
until answers; do
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    echo "install-docker: dockerd exited; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
  if (( SECONDS - t0 > WAIT_S )); then
    echo "install-docker: no engine answered within ${WAIT_S}s; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
  fi
  sleep 0.5
done
echo "install-docker: engine $(docker version -f '{{.Server.Version}}') answers after $((SECONDS - t0))s"
