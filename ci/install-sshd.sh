#!/usr/bin/env bash
# Debian's openssh-server, for the ssh launcher's tests (they start their own sshd on a free port,
# with a throwaway host key and authorized key; the system sshd service is never started).
# Idempotent; without root the ssh tests skip with that reason.
set -euo pipefail
if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-sshd: not root; openssh-server missing (ssh launcher tests will skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
