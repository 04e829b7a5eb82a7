#!/usr/bin/env bash
# Remote agents benchmark (not a test), on loopback only: one central checkit and
# AGENTS `checkit agent` processes, each with CHECKS tcp_connect checks every
# INTERVAL against a local nginx.
#
#  1. steady state for WINDOW: the central instance's CPU (utime+stime from
#     /proc, in cores) and peak RSS (VmHWM), ingest batches/s and results/s,
#     and the end-to-end delay from a result's start to its commit at the
#     central store (received_at − at of every row stored in the window):
#     p50/p99;
#  2. outage: the central instance is stopped (SIGSTOP: connections hang, as
#     on a cut link) for OUTAGE, then continued; the drain time is how long
#     until every agent's queue is back to its steady size, and the ratio
#     OUTAGE / drain time is "times faster than real time".
#
#   benches/agents.sh     # AGENTS=3 CHECKS=1000 INTERVAL=30s WINDOW=120 OUTAGE=600 PROFILE=release
#
# Needs: nginx, curl, python3 (tests/install-peers.sh installs nginx).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
AGENTS=${AGENTS:-3}
CHECKS=${CHECKS:-1000}
INTERVAL=${INTERVAL:-30s}
WINDOW=${WINDOW:-120}
OUTAGE=${OUTAGE:-600}
PROFILE=${PROFILE:-release}

for bin in nginx curl python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin: run tests/install-peers.sh" >&2; exit 1; }
done
if [ "$PROFILE" = release ]; then cargo build --release --locked --quiet; else cargo build --locked --quiet; fi
checkit=${CARGO_TARGET_DIR:-target}/$PROFILE/checkit

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

nginx_port=$(free_port)
pids+=("$(start_nginx "$work" "$nginx_port")")
port=$(free_port)
{
  echo "modules:"
  echo "  tcp_connect: {prober: tcp, timeout: 2s}"
  echo "check_options: {store: {sqlite: {path: $work/checks.db}}, max_concurrent: 256}"
  echo "agents:"
  for a in $(seq 0 $((AGENTS - 1))); do
    head -c 24 /dev/urandom | base64 >"$work/token$a"
    echo "  - {name: agent$a, location: loc$a, token_file: $work/token$a, stale_after: 1h}"
  done
  echo "checks:"
  for a in $(seq 0 $((AGENTS - 1))); do
    for i in $(seq 1 "$CHECKS"); do
      echo "  - {name: a$a-c$i, module: tcp_connect, target: '127.0.0.1:$nginx_port', interval: $INTERVAL, locations: [loc$a]}"
    done
  done
} >"$work/central.yml"
"$checkit" --config.file="$work/central.yml" --web.listen-address="127.0.0.1:$port" --log.level=warn \
  >"$work/central.log" 2>&1 &
central=$!
pids+=("$central")
wait_port "$port"
for a in $(seq 0 $((AGENTS - 1))); do
  "$checkit" --log.level=warn agent --central.url="http://127.0.0.1:$port/" --token.file="$work/token$a" \
    --location="loc$a" --queue.path="$work/agent$a.db" >"$work/agent$a.log" 2>&1 &
  pids+=("$!")
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$central/stat"; }
total_batches() {
  curl -fs "http://127.0.0.1:$port/metrics" | awk '/^checkit_agent_batches_total/ {sum += $2} END {print sum + 0}'
}
queued() {
  python3 - "$work" "$AGENTS" <<'EOF'
import sqlite3, sys
total = 0
for a in range(int(sys.argv[2])):
    try:
        c = sqlite3.connect(f"file:{sys.argv[1]}/agent{a}.db?mode=ro", uri=True, timeout=5)
        total += c.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
    except sqlite3.Error:
        pass
print(total)
EOF
}

echo "warming up for one interval ($INTERVAL) ..."
sleep "$(python3 -c "import re; s='$INTERVAL'; print(int(re.match(r'(\d+)', s).group(1)) * (60 if s.endswith('m') else 1) + 5)")"
hz=$(getconf CLK_TCK)
start_ms=$(date +%s%3N)
ticks0=$(cpu_ticks)
batches0=$(total_batches)
sleep "$WINDOW"
ticks1=$(cpu_ticks)
batches1=$(total_batches)
end_ms=$(date +%s%3N)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$central/status")
python3 - "$work/checks.db" "$start_ms" "$end_ms" "$ticks0" "$ticks1" "$hz" "$batches0" "$batches1" "$rss" <<'EOF'
import sqlite3, sys
db, start, end, t0, t1, hz, b0, b1, rss = sys.argv[1:]
start, end = int(start), int(end)
seconds = (end - start) / 1000
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
delays = sorted(r[0] for r in c.execute(
    "SELECT received_at - at FROM location_results WHERE received_at >= ? AND received_at < ?", (start, end)))
if not delays:
    sys.exit("no results stored in the window")
p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]
print(f"steady state over {seconds:.0f} s: central CPU {(int(t1) - int(t0)) / int(hz) / seconds:.3f} cores, "
      f"peak RSS {int(rss) / 1024:.1f} MiB, {(float(b1) - float(b0)) / seconds:.2f} batches/s, "
      f"{len(delays) / seconds:.1f} results/s, end-to-end delay p50 {p(0.5)} ms, p99 {p(0.99)} ms")
EOF

steady=$(queued)
echo "outage: central stopped for ${OUTAGE}s (queued now: $steady) ..."
kill -STOP "$central"
sleep "$OUTAGE"
backlog=$(queued)
kill -CONT "$central"
t0=$(date +%s%3N)
limit=$((steady + AGENTS * 50))
for _ in $(seq 1 6000); do
  [ "$(queued)" -le "$limit" ] && break
  sleep 0.2
done
t1=$(date +%s%3N)
python3 -c "
drain = ($t1 - $t0) / 1000
print(f'drain: {$backlog} results queued by {$AGENTS} agents over a {$OUTAGE} s outage, drained in {drain:.1f} s: '
      f'{$OUTAGE / max(drain, 0.001):.0f}x real time')"
