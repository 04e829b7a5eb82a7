#!/usr/bin/env bash
# Heartbeat benchmark (not a test), on loopback only:
#  1. detection delay: CHECKS heartbeats (period 2s, grace 1s) are pinged once;
#     each missed deadline is logged as an alert (no bridge configured), and
#     the delay is the log line's time minus the check's due + grace from the
#     API. Prints p50 and max.
#  2. ping throughput: wrk (CONNECTIONS connections, DURATION) on one check's
#     /ping/<uuid>, each answered after its SQLite commit. Prints pings/s.
#
#   benches/heartbeat.sh                 # CHECKS=200 CONNECTIONS=16 DURATION=10s PROFILE=release (or debug)
#
# Needs: wrk, curl, jq, python3 (tests/install-peers.sh installs wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKS=${CHECKS:-200}
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-10s}
PROFILE=${PROFILE:-release}

for bin in wrk curl jq python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin: run tests/install-peers.sh" >&2; exit 1; }
done
if [ "$PROFILE" = release ]; then cargo build --release --locked --quiet; else cargo build --locked --quiet; fi
checkit=${CARGO_TARGET_DIR:-target}/$PROFILE/checkit

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

uuid_of() { printf '00000000-0000-4000-8000-%012d' "$1"; }
{
  echo "heartbeats:"
  echo "  store: {sqlite: {path: $work/heartbeats.db}}"
  echo "  max_pings_per_minute: 100000000"
  echo "  checks:"
  for i in $(seq 1 "$CHECKS"); do
    echo "  - {name: job-$i, uuid: $(uuid_of "$i"), period: 2s, grace: 1s}"
  done
} >"$work/checkit.yml"
"$checkit" --config.file="$work/checkit.yml" --web.listen-address="127.0.0.1:$port" --log.level=warn \
  >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/-/healthy" >/dev/null && break; sleep 0.1; done

# 1. Detection delay.
for i in $(seq 1 "$CHECKS"); do printf 'url = "http://127.0.0.1:%s/ping/%s"\noutput = "/dev/null"\n' "$port" "$(uuid_of "$i")"; done >"$work/urls"
curl -fsS --no-progress-meter --parallel --parallel-max 16 -K "$work/urls"
sleep 5
curl -fsS "http://127.0.0.1:$port/api/v1/heartbeats" >"$work/checks.json"
python3 - "$work/log" "$work/checks.json" <<'EOF'
import json, re, sys
from datetime import datetime
def parse(text): return datetime.fromisoformat(text.replace("Z", "+00:00"))
down_at = {c["name"]: parse(c["down_at"]) for c in json.load(open(sys.argv[2]))["checks"] if c["down_at"]}
delays = []
for line in open(sys.argv[1]):
    if "Heartbeat alert" not in line or not re.search(r'alertname="?HeartbeatMissing', line):
        continue
    ts = parse(re.search(r"ts=(\S+)", line).group(1))
    check = re.search(r"check=(\S+)", line).group(1).strip('"')
    if check in down_at:
        delays.append((ts - down_at[check]).total_seconds())
delays.sort()
if len(delays) != len(down_at):
    sys.exit(f"only {len(delays)} of {len(down_at)} missed deadlines were alerted")
print(f"detection delay after due+grace over {len(delays)} checks: p50 {delays[len(delays)//2]*1000:.1f} ms, "
      f"max {delays[-1]*1000:.1f} ms")
EOF

# 2. Ping throughput on one check.
echo "ping throughput (${CONNECTIONS} connections, ${DURATION}):"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$port/ping/$(uuid_of 1)" |
  grep -E "Requests/sec|99%|Non-2xx"
