#!/usr/bin/env bash
# Installs the system packages ryze-events needs to build, run and test, if any is missing.
# Debian/Ubuntu, as root (or through sudo). Safe to run again: it installs only what is missing.
set -euo pipefail

# libhiredis-dev: the multi-host rate limiter (RyzeRedis); redis-server: its tests start a throwaway one.
# libpq-dev: the PostgreSQL client of --store; postgresql: the throwaway server the tests start.
# iproute2: `ip netns` and veth links, for the test whose hosts are network peers (test_netns_hosts.py).
packages=(libfcgi-dev libcurl4-openssl-dev pkg-config nginx libnginx-mod-nchan spawn-fcgi multiwatch curl wrk valgrind libhiredis-dev redis-server libpq-dev postgresql iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The e2e tests verify every webhook delivery's signature with the Standard Webhooks library.
if ! python3 -c 'import standardwebhooks' 2>/dev/null; then
    echo "installing standardwebhooks"
    # A Debian system Python refuses pip installs outside a venv (PEP 668) unless told.
    python3 -m pip install -q standardwebhooks || python3 -m pip install -q --break-system-packages standardwebhooks
fi

if ! python3 -c 'import pytest' 2>/dev/null; then
    echo "installing pytest"
    python3 -m pip install -q pytest || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pytest >/dev/null; }
fi

# The end-to-end tests' WebSocket client (Tests/e2e/test_stream.py).
if ! python3 -c 'import websocket' 2>/dev/null; then
    echo "installing websocket-client"
    python3 -m pip install -q websocket-client || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-websocket >/dev/null; }
fi

# Tests/e2e/test_openapi.py: openapi.yaml is validated with openapi-spec-validator and the stack
# fuzzed against it with schemathesis (its `st` command). Pinned: schemathesis' checks and
# command line change between releases, and CI must run what was tried.
pip_pinned() {   # DIST==VERSION: installs it unless exactly that version is there
    python3 - "$1" <<'PY' 2>/dev/null && return 0
import sys
from importlib.metadata import version
name, wanted = sys.argv[1].split("==")
sys.exit(0 if version(name) == wanted else 1)
PY
    echo "installing $1"
    python3 -m pip install -q "$1" || python3 -m pip install -q --break-system-packages "$1"
}
pip_pinned openapi-spec-validator==0.9.0
pip_pinned schemathesis==4.32.5

command -v swift >/dev/null 2>&1 || { echo "swift is not on PATH: install the Swift 6 toolchain first" >&2; exit 1; }
