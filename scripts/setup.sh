#!/usr/bin/env bash
# Prepare a fresh Debian machine (as root) for the demo and the tests: system tools, .venv, package.
# Idempotent: it installs only what is missing, so a second run costs a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ip >/dev/null || need_apt+=(iproute2)
command -v ping >/dev/null || need_apt+=(iputils-ping)
command -v tshark >/dev/null || need_apt+=(tshark)
command -v curl >/dev/null || need_apt+=(curl)
command -v nc >/dev/null || need_apt+=(netcat-openbsd)
command -v dnsmasq >/dev/null || need_apt+=(dnsmasq-base)
command -v arping >/dev/null || need_apt+=(iputils-arping)
command -v radvd >/dev/null || need_apt+=(radvd)
command -v microsocks >/dev/null || need_apt+=(microsocks)  # the SOCKS5 proxy of the PySocks tests
command -v chromium-headless-shell >/dev/null || need_apt+=(chromium-headless-shell)  # renders compare's report
command -v hping3 >/dev/null || need_apt+=(hping3)  # the spoofed SYN flood of the SYN-cookie lab test and bench
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need_apt[*]} and not root: lab tests will skip" >&2
  else
    echo "setup: apt-get install ${need_apt[*]}"
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf .venv
    "$PY" -m venv .venv
  fi
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
