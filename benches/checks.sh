#!/usr/bin/env bash
# Scheduled-checks benchmark (not a test): 10,000 checks (half http_2xx, half
# tcp_connect) against a local nginx every 15 s, for DURATION seconds after a
# one-interval warm-up. Reports checkit's CPU (cores), peak RSS, scheduling
# lateness p50/p99 (from checkit_checks_lateness_seconds), results stored per
# second (and whether writes kept up: store errors, runs vs. expected), the
# store size and its growth per check per day; then drives the same probes at
# the same rate through blackbox_exporter's /probe and prints CPU per probe of
# both, as a ratio.
#
#   benches/checks.sh                  # CHECKS=10000 INTERVAL=15 DURATION=120
#
# Only loopback is used. Needs nginx, prometheus-blackbox-exporter, python3
# (tests/install-peers.sh installs them); root only for the sysctls.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
CHECKS=${CHECKS:-10000}
INTERVAL=${INTERVAL:-15}
DURATION=${DURATION:-120}

for bin in nginx prometheus-blackbox-exporter python3 curl; do
  command -v "$bin" >/dev/null || { echo "missing $bin: run tests/install-peers.sh" >&2; exit 1; }
done
if [[ -z ${CHECKIT_BIN:-} ]]; then
  cargo build --release --locked --quiet
  CHECKIT_BIN=${CARGO_TARGET_DIR:-target}/release/checkit
fi
tune_for_probing
ulimit -n 65536 2>/dev/null || true

bench_workdir
nginx_port=$(free_port); checkit_port=$(free_port); blackbox_port=$(free_port)

nginx_pid=$(start_nginx "$work" "$nginx_port"); pids+=("$nginx_pid")
wait_port "$nginx_port"

MODULES="modules:
  http_2xx: {prober: http, timeout: 5s, http: {preferred_ip_protocol: ip4}}
  tcp_connect: {prober: tcp, timeout: 5s, tcp: {preferred_ip_protocol: ip4}}"
echo "$MODULES" > "$work/blackbox.yml"
python3 - "$work/checkit.yml" "$CHECKS" "$INTERVAL" "$nginx_port" "$MODULES" <<'PY'
import sys
path, checks, interval, port, modules = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
with open(path, "w") as out:
    out.write(modules + "\n")
    out.write(f"check_options:\n  max_concurrent: 256\n  store: {{sqlite: {{path: checks.db}}}}\n"
              f"  defaults: {{interval: {interval}s, notify: false}}\nchecks:\n")
    for i in range(checks):
        if i % 2 == 0:
            out.write(f"- {{name: http-{i}, module: http_2xx, target: 'http://127.0.0.1:{port}/?c={i}'}}\n")
        else:
            out.write(f"- {{name: tcp-{i}, module: tcp_connect, target: '127.0.0.1:{port}'}}\n")
PY

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
metric() { curl -fsS "http://127.0.0.1:$checkit_port/metrics" | awk -v name="$1" '$1 == name {print $2}'; }

"$CHECKIT_BIN" --config.file="$work/checkit.yml" --web.listen-address="127.0.0.1:$checkit_port" --log.level=error & checkit_pid=$!; pids+=($checkit_pid)
wait_port "$checkit_port"
echo "checkit: $CHECKS checks every ${INTERVAL}s; warming up for ${INTERVAL}s, measuring for ${DURATION}s"
sleep "$INTERVAL"
runs() { curl -fsS "http://127.0.0.1:$checkit_port/metrics" | awk '/^checkit_checks_runs_total/ {s += $2} END {print s}'; }
# Bytes in use (pages minus free pages, WAL content included): the file itself
# only grows in steps and the WAL is recycled, so file sizes would be noise.
size() { python3 -c "import sqlite3,sys; c=sqlite3.connect('file:$work/checks.db?mode=ro', uri=True); q=lambda p: c.execute('PRAGMA '+p).fetchone()[0]; print((q('page_count')-q('freelist_count'))*q('page_size'))"; }
c0=$(cpu_seconds "$checkit_pid"); r0=$(runs); s0=$(size); t0=$(date +%s.%N)
curl -fsS "http://127.0.0.1:$checkit_port/metrics" | grep '^checkit_checks_lateness_seconds_bucket' > "$work/lateness0"
sleep "$DURATION"
c1=$(cpu_seconds "$checkit_pid"); r1=$(runs); s1=$(size); t1=$(date +%s.%N)
curl -fsS "http://127.0.0.1:$checkit_port/metrics" | grep '^checkit_checks_lateness_seconds_bucket' > "$work/lateness1"
errors=$(metric checkit_checks_store_errors_total)
rss=$(rss_kib "$checkit_pid")
kill "$checkit_pid"

python3 - "$work" "$c0" "$c1" "$r0" "$r1" "$s0" "$s1" "$t0" "$t1" "$rss" "$CHECKS" "$INTERVAL" "${errors:-0}" > "$work/checkit.txt" <<'PY'
import re, sys
work, c0, c1, r0, r1, s0, s1, t0, t1, rss, checks, interval, errors = sys.argv[1:]
c0, c1, r0, r1, s0, s1, t0, t1, rss = map(float, (c0, c1, r0, r1, s0, s1, t0, t1, rss))
checks, interval = int(checks), float(interval)
elapsed = t1 - t0
def buckets(path):
    out = {}
    for line in open(path):
        le = re.search(r'le="([^"]+)"', line).group(1)
        out[float("inf") if le == "+Inf" else float(le)] = float(line.split()[-1])
    return out
b0, b1 = buckets(f"{work}/lateness0"), buckets(f"{work}/lateness1")
delta = sorted((le, b1[le] - b0.get(le, 0)) for le in b1)
total = delta[-1][1]
def quantile(q):
    for le, count in delta:
        if count >= q * total:
            return le
runs = r1 - r0
print(f"cpu_cores {(c1 - c0) / elapsed:.3f}")
print(f"peak_rss_mib {rss / 1024:.1f}")
print(f"lateness_p50_le_s {quantile(0.5)}")
print(f"lateness_p99_le_s {quantile(0.99)}")
print(f"results_per_s {runs / elapsed:.1f} (expected {checks / interval:.1f}; store errors {errors})")
print(f"store_bytes {s1:.0f}")
print(f"growth_per_check_per_day_kib {(s1 - s0) / elapsed * 86400 / checks / 1024:.1f}")
print(f"cpu_per_probe_ms {(c1 - c0) / runs * 1000:.4f}")
PY
cat "$work/checkit.txt"

prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$blackbox_port" --log.level=error 2>/dev/null & blackbox_pid=$!; pids+=($blackbox_pid)
wait_port "$blackbox_port"
echo "blackbox_exporter: the same probes at the same rate through /probe for ${DURATION}s"
b0=$(cpu_seconds "$blackbox_pid")
probes=$(python3 - "$blackbox_port" "$nginx_port" "$CHECKS" "$INTERVAL" "$DURATION" <<'PY'
import asyncio, sys, time
port, nginx, checks, interval, duration = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rate = checks / interval
done = 0
async def worker(queue):
    global done
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        i = await queue.get()
        if i is None:
            return
        if i % 2 == 0:
            path = f"/probe?module=http_2xx&target=http://127.0.0.1:{nginx}/%3Fc%3D{i % checks}"
        else:
            path = f"/probe?module=tcp_connect&target=127.0.0.1:{nginx}"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        done += 1
async def main():
    queue = asyncio.Queue()
    workers = [asyncio.create_task(worker(queue)) for _ in range(128)]
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < duration:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            queue.put_nowait(sent)
            sent += 1
        await asyncio.sleep(0.005)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
asyncio.run(main())
print(done)
PY
)
b1=$(cpu_seconds "$blackbox_pid")
checkit_ms=$(awk '$1 == "cpu_per_probe_ms" {print $2}' "$work/checkit.txt")
python3 - "$b0" "$b1" "$probes" "$checkit_ms" "$DURATION" <<'PY'
import sys
b0, b1, probes, checkit_ms, duration = map(float, sys.argv[1:])
blackbox_ms = (b1 - b0) / probes * 1000
print(f"blackbox: {probes / duration:.1f} probes/s, cpu_cores {(b1 - b0) / duration:.3f}, cpu_per_probe_ms {blackbox_ms:.4f}")
print(f"cpu per probe checkit/blackbox: {checkit_ms / blackbox_ms:.2f}")
PY
