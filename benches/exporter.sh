#!/usr/bin/env bash
# Exporter benchmark (not a test): drives /probe with wrk for http_2xx and
# tcp_connect against a local nginx, for checkit and for Debian's
# blackbox_exporter on the same config in the same run, and prints side by
# side, with checkit/blackbox ratios:
#
#   1. unpinned, 32 connections: probes/s, p50/p99 latency, CPU time per probe;
#   2. pinned, 32 connections: wrk and nginx on CPU 0, the exporter under test
#      on CPU 1 (taskset), which keeps the load generator from competing with
#      the exporter and makes runs steadier;
#   3. pinned scale-out: 8, 32, 128 and 512 connections;
#   4. pinned mixed run: 90 connections probe the healthy target while 10 more
#      (10% of the targets) probe a blackholed port and hang until the module
#      timeout; the fast probes' figures are compared with a fast-only run;
#
# and peak RSS (VmHWM) of both exporters in each phase.
#
#   sudo benches/exporter.sh     # DURATION=10s SCALE_DURATION=5s THREADS=2 [CHECKIT=binary]
#
# Total runtime: about 4 min with the defaults (8×DURATION + 16×SCALE_DURATION
# + 4×DURATION for the mixed run + 3 restarts), plus the release build.
#
# CPU time per probe is (utime+stime) of the exporter process, read from
# /proc/<pid>/stat before and after a run, divided by the probes wrk
# completed. It holds up on a busy machine far better than probes/s or p99,
# which depend on what else runs. It includes the kernel's work for the
# exporter's sockets (on loopback, part of the target's side too), for both
# exporters alike. Every /probe answer is checked for `probe_success 1` by a
# wrk script: a failed probe is counted, never timed as a fast one.
#
# Only loopback is used. The blackholed target is a listening socket whose
# accept queue is full and never drained: the kernel drops further SYNs, so a
# connect hangs until the probe's deadline (no firewall rule needed).
# Needs: wrk, nginx, prometheus-blackbox-exporter, python3, taskset
# (tests/install-peers.sh installs them) and root for the sysctls below.
# For profiling (not used by this script): perf (`linux-perf`) and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
DURATION=${DURATION:-10s}
SCALE_DURATION=${SCALE_DURATION:-5s}
THREADS=${THREADS:-2}
SCALE=${SCALE:-8 32 128 512}
# CPUs for the pinned phases: the load (wrk, nginx) and the exporter under test.
LOAD_CPU=${LOAD_CPU:-0}
EXPORTER_CPU=${EXPORTER_CPU:-1}

for bin in wrk nginx prometheus-blackbox-exporter python3 taskset; do
  command -v "$bin" >/dev/null || { echo "missing $bin: run tests/install-peers.sh" >&2; exit 1; }
done
# CHECKIT=path/to/checkit benches a given binary instead of building one.
if [[ -z ${CHECKIT:-} ]]; then
  cargo build --release --locked --quiet
fi
checkit=${CHECKIT:-${CARGO_TARGET_DIR:-target}/release/checkit}

tune_for_probing
ulimit -n 65536 2>/dev/null || true

bench_workdir

nginx_port=$(free_port)
nginx_pid=$(start_nginx "$work" "$nginx_port"); pids+=("$nginx_pid")
wait_port "$nginx_port"

# The blackholed target: the accept queue (backlog 0 holds one connection) is
# filled by the holder itself and never accepted.
python3 - "$work/hole.port" <<'PY' & pids+=($!)
import socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(0)
port = listener.getsockname()[1]
held = []
for _ in range(4):
    client = socket.socket()
    client.setblocking(False)
    try:
        client.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    held.append(client)
# Keep the connections that filled the queue; close the ones still sending
# SYNs, whose retransmissions (for two minutes) would otherwise be counted as
# SYN drops in every phase, not only the mixed run's.
time.sleep(0.3)
def established(client):
    try:
        client.getpeername()
        return True
    except OSError:
        client.close()
        return False
held = [client for client in held if established(client)]
if not held:
    sys.exit("the blackhole's accept queue did not fill")
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(f"{port}\n")
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(3600)
PY
for _ in $(seq 50); do [[ -s $work/hole.port ]] && break; sleep 0.1; done
hole_port=$(cat "$work/hole.port")

bench_modules > "$work/blackbox.yml"

# Counts /probe answers without `probe_success 1` (each wrk thread has its own
# Lua state; done() sums them).
cat > "$work/check.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failed = 0 end
function response(status, headers, body)
  if not string.find(body, "\nprobe_success 1", 1, true) then failed = failed + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failed") end
  io.write(string.format("probe_failures %d\n", total))
end
LUA

# Starts both exporters (under `taskset -c CPU` when given one) and sets
# checkit_pid, blackbox_pid, checkit_port, blackbox_port.
start_exporters() {
  local pin=()
  [[ -n ${1:-} ]] && pin=(taskset -c "$1")
  checkit_port=$(free_port); blackbox_port=$(free_port)
  "${pin[@]}" "$checkit" --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$checkit_port" \
    --log.level=error & checkit_pid=$!; pids+=($checkit_pid)
  "${pin[@]}" prometheus-blackbox-exporter --config.file="$work/blackbox.yml" \
    --web.listen-address="127.0.0.1:$blackbox_port" --log.level=error 2>/dev/null & blackbox_pid=$!; pids+=($blackbox_pid)
  wait_port "$checkit_port"; wait_port "$blackbox_port"
  # Sanity: both exporters must succeed on both modules before being timed.
  local port module body
  for port in "$checkit_port" "$blackbox_port"; do
    for module in http_2xx tcp_connect; do
      body=$(curl -fsS "http://127.0.0.1:$port/probe?module=$module&target=127.0.0.1:$nginx_port")
      grep -q '^probe_success 1' <<<"$body" || { echo "probe $module failed on port $port:" >&2; echo "$body" >&2; exit 1; }
    done
  done
}
stop_exporters() {
  kill "$checkit_pid" "$blackbox_pid" 2>/dev/null || true
  wait "$checkit_pid" "$blackbox_pid" 2>/dev/null || true
}
# Moves nginx (master and worker) to the given CPUs.
pin_nginx() { for pid in $nginx_pid $(pgrep -P "$nginx_pid"); do taskset -a -cp "$1" "$pid" >/dev/null; done; }

rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
# SYNs the kernel dropped because a listener's accept queue was full (the
# target's, when a prober connects faster than it accepts): each costs the
# probe a 1 s SYN retransmit.
listen_overflows() {
  awk '/^TcpExt:/ { if (!seen) { for (i = 1; i <= NF; i++) col[$i] = i; seen = 1 } else print $col["ListenOverflows"] }' \
    /proc/net/netstat
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, in clock ticks
# The target's CPU (nginx's master and workers) and the machine's idle time,
# in clock ticks: what the rest of the box spent on the same probes.
nginx_ticks() {
  local sum=0 pid
  for pid in $nginx_pid $(pgrep -P "$nginx_pid"); do sum=$(( sum + $(cpu_ticks "$pid") )); done
  echo "$sum"
}
idle_ticks() { awk '/^cpu / {print $5 + $6}' /proc/stat; }  # idle + iowait, all CPUs
ticks_per_s=$(getconf CLK_TCK)
exporter_pid() { [[ $1 == checkit ]] && echo "$checkit_pid" || echo "$blackbox_pid"; }
exporter_port() { [[ $1 == checkit ]] && echo "$checkit_port" || echo "$blackbox_port"; }

to_ms() { # wrk's latency with its unit (us, ms, s, m) → ms
  awk -v text="$1" 'BEGIN { unit = text; sub(/^[0-9.]+/, "", unit)
    f = unit == "us" ? 0.001 : unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60000 : 0
    printf "%.2f\n", (text + 0) * f }'
}

# wrk_stats OUTPUT → "probes probes_per_s p50_ms p99_ms errors failures"
wrk_stats() {
  local out=$1 total rps p50 p99 non2xx sockerr failures
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' <<<"$out")
  failures=$(awk '/probe_failures/ {print $2}' <<<"$out")
  echo "$total $rps $p50 $p99 $(( ${non2xx:-0} + ${sockerr:-0} )) ${failures:-0}"
}

results=$work/results.tsv
# measure PHASE EXPORTER MODULE CONNECTIONS DURATION [PIN]: one wrk run, one results row.
measure() {
  local phase=$1 name=$2 module=$3 connections=$4 duration=$5 pin=${6:-}
  local pid port before after out
  pid=$(exporter_pid "$name"); port=$(exporter_port "$name")
  local runner=()
  [[ -n $pin ]] && runner=(taskset -c "$pin")
  before=$(cpu_ticks "$pid"); overflows_before=$(listen_overflows)
  local nginx_before idle_before started_ns
  nginx_before=$(nginx_ticks); idle_before=$(idle_ticks); started_ns=$(date +%s%N)
  out=$("${runner[@]}" wrk -t"$THREADS" -c"$connections" -d"$duration" --timeout 10s --latency -s "$work/check.lua" \
    "http://127.0.0.1:$port/probe?module=$module&target=127.0.0.1:$nginx_port")
  after=$(cpu_ticks "$pid"); overflows=$(( $(listen_overflows) - overflows_before ))
  local nginx_spent=$(( $(nginx_ticks) - nginx_before )) idle_spent=$(( $(idle_ticks) - idle_before ))
  local elapsed_ns=$(( $(date +%s%N) - started_ns ))
  read -r total rps p50 p99 errors failures < <(wrk_stats "$out")
  local cpu_us nginx_us idle_cores
  cpu_us=$(awk -v ticks=$((after - before)) -v hz="$ticks_per_s" -v n="$total" \
    'BEGIN { if (n > 0) printf "%.1f\n", ticks / hz * 1e6 / n; else print "-" }')
  nginx_us=$(awk -v ticks="$nginx_spent" -v hz="$ticks_per_s" -v n="$total" \
    'BEGIN { if (n > 0) printf "%.1f\n", ticks / hz * 1e6 / n; else print "-" }')
  idle_cores=$(awk -v ticks="$idle_spent" -v hz="$ticks_per_s" -v ns="$elapsed_ns" 'BEGIN { printf "%.2f\n", ticks / hz / (ns / 1e9) }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$phase" "$module" "$name" "$connections" "$rps" "$p50" "$p99" "$cpu_us" "$errors" "$failures" "$overflows" \
    "$nginx_us" "$idle_cores" >>"$results"
  printf '  %-9s %-12s %-9s c=%-4s %10s probes/s  p50 %7s ms  p99 %7s ms  CPU %6s us/probe  nginx %6s us/probe  idle %s cores  errors %s  failed %s  SYN drops %s\n' \
    "$phase" "$module" "$name" "$connections" "$rps" "$p50" "$p99" "$cpu_us" "$nginx_us" "$idle_cores" "$errors" "$failures" "$overflows" >&2
}

# Alternates which exporter goes first, so neither always runs on a machine
# warmed (or littered with TIME_WAIT sockets) by the other.
both() { # PHASE MODULE CONNECTIONS DURATION [PIN] ORDER
  local order=(checkit blackbox)
  (( $6 % 2 )) && order=(blackbox checkit)
  for name in "${order[@]}"; do measure "$1" "$name" "$2" "$3" "$4" "$5"; done
}

declare -A rss
record_rss() { rss[$1.checkit]=$(rss_kib "$checkit_pid"); rss[$1.blackbox]=$(rss_kib "$blackbox_pid"); }

started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before: $load_before" >&2

echo "phase 1: unpinned, 32 connections" >&2
pin_nginx "0-$(( $(nproc) - 1 ))"
start_exporters ""
round=0
for module in http_2xx tcp_connect; do both unpinned "$module" 32 "$DURATION" "" $(( round++ )); done
record_rss unpinned
stop_exporters

echo "phase 2: pinned (load on CPU $LOAD_CPU, exporter on CPU $EXPORTER_CPU), 32 connections" >&2
pin_nginx "$LOAD_CPU"
start_exporters "$EXPORTER_CPU"
for module in http_2xx tcp_connect; do both pinned "$module" 32 "$DURATION" "$LOAD_CPU" $(( round++ )); done
record_rss pinned
stop_exporters

echo "phase 3: pinned scale-out and mixed run" >&2
start_exporters "$EXPORTER_CPU"
for connections in $SCALE; do
  for module in http_2xx tcp_connect; do both scale "$module" "$connections" "$SCALE_DURATION" "$LOAD_CPU" $(( round++ )); done
done
# Mixed: 90 fast connections alone, then the same 90 while 10 more probe the
# blackholed port (each of those probes hangs for the module's 5 s timeout).
for name in checkit blackbox; do
  measure fast_only "$name" http_2xx 90 "$DURATION" "$LOAD_CPU"
  port=$(exporter_port "$name")
  taskset -c "$LOAD_CPU" wrk -t1 -c10 -d"$DURATION" --timeout 10s --latency \
    "http://127.0.0.1:$port/probe?module=http_2xx&target=127.0.0.1:$hole_port" >"$work/slow.$name" &
  slow=$!
  measure mixed "$name" http_2xx 90 "$DURATION" "$LOAD_CPU"
  wait "$slow"
  read -r total rps p50 p99 errors failures < <(wrk_stats "$(cat "$work/slow.$name")")
  printf '  %-9s %-12s %-9s c=%-4s %10s probes/s  p50 %7s ms (blackholed target, all time out)\n' \
    slow http_2xx "$name" 10 "$rps" "$p50" >&2
  printf 'slow\thttp_2xx\t%s\t10\t%s\t%s\t%s\t-\t%s\t-\t-\t-\t-\n' "$name" "$rps" "$p50" "$p99" "$errors" >>"$results"
done
record_rss scale
stop_exporters
elapsed=$(( $(date +%s) - started ))

python3 - "$results" "$elapsed" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u '+%F %H:%M UTC')" \
  "${rss[unpinned.checkit]}" "${rss[unpinned.blackbox]}" "${rss[pinned.checkit]}" "${rss[pinned.blackbox]}" \
  "${rss[scale.checkit]}" "${rss[scale.blackbox]}" <<'PY'
import sys
path, elapsed, load_before, load, date = sys.argv[1:6]
rss = list(map(int, sys.argv[6:]))
rows = {}
for line in open(path):
    phase, module, name, conns, rps, p50, p99, cpu, errors, failed, drops, nginx, idle = line.rstrip("\n").split("\t")
    rows[(phase, module, name, int(conns))] = dict(rps=float(rps), p50=float(p50), p99=float(p99),
                                                   cpu=None if cpu == "-" else float(cpu), errors=errors, failed=failed,
                                                   drops=drops, nginx=nginx, idle=idle)

def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"

print()
print("| phase | module | conns | probes/s checkit / blackbox | ratio | p99 ms checkit / blackbox | "
      "CPU us/probe checkit / blackbox | ratio | errors+failed checkit / blackbox | SYN drops checkit / blackbox | "
      "nginx us/probe checkit / blackbox | idle cores checkit / blackbox |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for phase in ("unpinned", "pinned", "scale", "fast_only", "mixed"):
    keys = sorted({(m, c) for (p, m, n, c) in rows if p == phase}, key=lambda k: (k[1], k[0]))
    for module, conns in keys:
        c, b = rows.get((phase, module, "checkit", conns)), rows.get((phase, module, "blackbox", conns))
        if not c or not b or c["cpu"] is None or b["cpu"] is None:
            continue
        print(f"| {phase} | {module} | {conns} | {c['rps']:,.0f} / {b['rps']:,.0f} | {ratio(c['rps'], b['rps'])} | "
              f"{c['p99']} / {b['p99']} | {c['cpu']} / {b['cpu']} | {ratio(c['cpu'], b['cpu'])} | "
              f"{int(c['errors']) + int(c['failed'])} / {int(b['errors']) + int(b['failed'])} | "
              f"{c['drops']} / {b['drops']} | {c['nginx']} / {b['nginx']} | {c['idle']} / {b['idle']} |")
for name in ("checkit", "blackbox"):
    fast, mixed = rows.get(("fast_only", "http_2xx", name, 90)), rows.get(("mixed", "http_2xx", name, 90))
    slow = rows.get(("slow", "http_2xx", name, 10))
    if fast and mixed and slow:
        print(f"\nmixed, {name}: fast probes/s {fast['rps']:,.0f} alone, {mixed['rps']:,.0f} with 10% blackholed "
              f"targets ({ratio(mixed['rps'], fast['rps'])}); fast p99 {fast['p99']} -> {mixed['p99']} ms; "
              f"blackholed probes answered after p50 {slow['p50']} ms")
print()
for label, (c, b) in zip(("unpinned, 32 conns", "pinned, 32 conns", "pinned, scale-out to 512 + mixed"),
                         zip(rss[0::2], rss[1::2])):
    print(f"peak RSS (VmHWM), {label}: checkit {c / 1024:.1f} MiB, blackbox_exporter {b / 1024:.1f} MiB, "
          f"ratio {c / b:.2f}")

# The issue's "Done when" for each 32-connection phase: every figure, its bound and whether it holds.
print("\n=== Done when (issue 14), 32 connections ===")


def check(label, value, bound, holds):
    print(f"  [{'ok' if holds else 'NOT MET'}] {label}: {value} (bound {bound})")


for phase, rss_c, rss_b in (("unpinned", rss[0], rss[1]), ("pinned", rss[2], rss[3])):
    ch, ct = rows.get((phase, "http_2xx", "checkit", 32)), rows.get((phase, "tcp_connect", "checkit", 32))
    bh, bt = rows.get((phase, "http_2xx", "blackbox", 32)), rows.get((phase, "tcp_connect", "blackbox", 32))
    if not (ch and ct and bh and bt) or None in (ch["cpu"], ct["cpu"], bh["cpu"], bt["cpu"]):
        print(f" {phase}: incomplete")
        continue
    print(f" {phase}:")
    check("tcp_connect p99 below checkit's http_2xx p99", f"{ct['p99']} vs {ch['p99']} ms", "<", ct["p99"] < ch["p99"])
    check("tcp_connect p99 below blackbox's tcp_connect p99", f"{ct['p99']} vs {bt['p99']} ms", "<",
          ct["p99"] < bt["p99"])
    for module, c, b in (("http_2xx", ch, bh), ("tcp_connect", ct, bt)):
        check(f"{module} probes/s checkit / blackbox", f"{c['rps']:,.0f} / {b['rps']:,.0f} = {ratio(c['rps'], b['rps'])}",
              ">= 4x", c["rps"] >= 4 * b["rps"])
        check(f"{module} CPU per probe checkit / blackbox",
              f"{c['cpu']} / {b['cpu']} us = {ratio(c['cpu'], b['cpu'])}", "<= 0.25x", c["cpu"] <= 0.25 * b["cpu"])
    check("checkit CPU per probe tcp_connect / http_2xx",
          f"{ct['cpu']} / {ch['cpu']} us = {ratio(ct['cpu'], ch['cpu'])}", "<= 0.5x", ct["cpu"] <= 0.5 * ch["cpu"])
    check("peak RSS checkit / blackbox", f"{rss_c / 1024:.1f} / {rss_b / 1024:.1f} MiB = {ratio(rss_c, rss_b)}",
          "<= 0.5x", rss_c <= 0.5 * rss_b)
    failed = sum(int(r["errors"]) + int(r["failed"]) for r in (ch, ct, bh, bt))
    check("answers with an error or without probe_success 1", failed, "0", failed == 0)
print(f"\n{date}: benchmark time {elapsed} s; load average before {load_before}, after {load}")
PY
