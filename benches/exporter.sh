#!/usr/bin/env bash
# Exporter benchmark (not a test): drives /probe with wrk (32 connections) for
# http_2xx and tcp_connect against a local nginx, for checkit and for Debian's
# blackbox_exporter in the same run, and prints probes/s, p99 latency and peak
# RSS for both, with checkit/blackbox ratios.
#
#   sudo benches/exporter.sh            # DURATION=10s CONNECTIONS=32 by default
#
# Only loopback is used. Needs: wrk, nginx, prometheus-blackbox-exporter
# (tests/install-peers.sh installs them) and root for the sysctls below.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}

for bin in wrk nginx prometheus-blackbox-exporter; do
  command -v "$bin" >/dev/null || { echo "missing $bin: run tests/install-peers.sh" >&2; exit 1; }
done
cargo build --release --locked --quiet
checkit=${CARGO_TARGET_DIR:-target}/release/checkit

# Every probe opens a new connection, as blackbox does; let TIME_WAIT ports be
# reused so neither exporter runs out of ephemeral ports during the run.
sysctl -qw net.ipv4.tcp_tw_reuse=1 2>/dev/null || true
sysctl -qw net.ipv4.ip_local_port_range="1024 65000" 2>/dev/null || true
# A target that cannot accept fast enough drops SYNs, which shows up as 1 s
# retransmits in the p99 of whichever exporter probes fastest.
sysctl -qw net.core.somaxconn=4096 2>/dev/null || true

work=$(mktemp -d)
chmod 0755 "$work"  # nginx workers run unprivileged and must read the document root
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

nginx_port=$(free_port); checkit_port=$(free_port); blackbox_port=$(free_port)

nginx_pid=$(start_nginx "$work" "$nginx_port"); pids+=("$nginx_pid")

cat > "$work/blackbox.yml" <<YAML
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
YAML

"$checkit" --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$checkit_port" --log.level=error & checkit_pid=$!; pids+=($checkit_pid)
prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$blackbox_port" --log.level=error 2>/dev/null & blackbox_pid=$!; pids+=($blackbox_pid)

wait_port "$nginx_port"; wait_port "$checkit_port"; wait_port "$blackbox_port"

# Sanity: both exporters must succeed on both modules before being timed.
for port in "$checkit_port" "$blackbox_port"; do
  for module in http_2xx tcp_connect; do
    target=127.0.0.1:$nginx_port
    body=$(curl -fsS "http://127.0.0.1:$port/probe?module=$module&target=$target")
    grep -q '^probe_success 1' <<<"$body" || { echo "probe $module failed on port $port:" >&2; echo "$body" >&2; exit 1; }
  done
done

rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
run_wrk() { # port module → "probes_per_s p99_ms"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    "http://127.0.0.1:$1/probe?module=$2&target=127.0.0.1:$nginx_port")
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  # wrk prints latencies with a unit (us, ms, s); normalise to ms.
  p99=$(python3 -c "v='$p99'; import re; n,u=re.match(r'([0-9.]+)([a-z]+)',v).groups(); print(round(float(n)*{'us':0.001,'ms':1,'s':1000}[u],2))")
  local errors
  errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "$rps $p99 ${errors:-0}"
}

printf '%-12s %-10s %12s %10s %8s\n' module exporter probes/s p99_ms non2xx
declare -A result
for module in http_2xx tcp_connect; do
  for name in checkit blackbox; do
    port=$checkit_port; [[ $name == blackbox ]] && port=$blackbox_port
    read -r rps p99 errors < <(run_wrk "$port" "$module")
    result[$module.$name.rps]=$rps; result[$module.$name.p99]=$p99
    printf '%-12s %-10s %12s %10s %8s\n' "$module" "$name" "$rps" "$p99" "$errors"
  done
done
checkit_rss=$(rss_kib "$checkit_pid"); blackbox_rss=$(rss_kib "$blackbox_pid")
echo
printf 'peak RSS (VmHWM): checkit %s KiB, blackbox_exporter %s KiB, ratio %.2f\n' \
  "$checkit_rss" "$blackbox_rss" "$(python3 -c "print($checkit_rss/$blackbox_rss)")"
for module in http_2xx tcp_connect; do
  python3 - "$module" "${result[$module.checkit.rps]}" "${result[$module.blackbox.rps]}" \
    "${result[$module.checkit.p99]}" "${result[$module.blackbox.p99]}" <<'PY'
import sys
module, c_rps, b_rps, c_p99, b_p99 = sys.argv[1], *map(float, sys.argv[2:])
print(f"{module}: probes/s ratio checkit/blackbox {c_rps / b_rps:.2f}x, p99 ratio {c_p99 / b_p99:.2f}")
PY
done
