#!/bin/bash
# Prepare a Debian machine for stackyard: Docker engine (Debian's docker.io,
# started with --bridge=none --iptables=false), debootstrap, and a virtualenv
# with stackyard installed. Idempotent; sourced by up.sh and test.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STACKYARD_VENV:-$REPO/.venv}"
export DEBIAN_FRONTEND=noninteractive

need_pkgs=()
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
# stackyard verify: Tempest pings servers' floating IPs from this host
command -v ping >/dev/null || need_pkgs+=(iputils-ping)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "setup: installing ${need_pkgs[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "setup: starting dockerd (--bridge=none --iptables=false)"
    mkdir -p /var/log
    setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false </dev/null >/var/log/stackyard-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start, see /var/log/stackyard-dockerd.log" >&2; exit 1; }
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtualenv $VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip >/dev/null
"$VENV/bin/pip" install -q -e "$REPO[test]"
export PATH="$VENV/bin:$PATH"
