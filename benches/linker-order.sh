#!/usr/bin/env bash
# Regenerates benches/linker-order.ld, a linker script that build.rs hands to
# the release link: it gathers the functions a serving checkit runs into one
# output section, `.text.hot`, placed just before the rest of the code.
#
# Why: a process's code is mapped from the binary file, and the kernel maps
# it in aligned 64 KiB windows around each page a process touches (fault-
# around). The 2 MiB of functions a serving exporter runs were spread over
# the 15 MiB of code, so about 9 MiB of it was resident. Gathered, they fill
# a few dozen windows (see README, "Benchmarks": peak RSS).
#
# How: runs the release build under callgrind (which records every
# function executed, however rarely, unlike a sampling profiler) while it
# starts on the benchmark's blackbox.yml and on the embedded default config,
# answers probes of the common modules, one at a time and under concurrent
# load (wrk), /metrics and the other endpoints, reloads and stops. The
# executed functions, most-run first, become the list. Each is listed by its
# exact symbol, then again with its hash wildcarded (`17h<hash>E` becomes
# `17h*`, a v0 crate hash `Cs<hash>_` becomes `Cs*_`): the exact entries
# match this toolchain and Cargo.lock, the patterns keep the list useful
# when a new compiler or dependency changes the hashes (they also catch other
# instances of the same generic function, which costs a little space). An
# entry that matches nothing costs nothing; regenerate the script after
# large changes to the serving path:
#
#   benches/linker-order.sh        # needs valgrind, nginx, wrk, curl, python3
#
# The script uses only the linker-script features GNU ld and lld share
# (INSERT BEFORE), and build.rs passes it only to release links on Linux.
# Only loopback is used. Takes about a minute after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
for bin in valgrind nginx wrk curl python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin: run tests/install-peers.sh" >&2; exit 1; }
done
# The release profile keeps the symbol table, and the profiled build is the
# shipped one but for the linker script (valgrind names only functions in
# `.text`), in its own target dir so the two builds do not evict each other.
# CHECKIT=path profiles a given build instead.
if [[ -z ${CHECKIT:-} ]]; then
  target=${CARGO_TARGET_DIR:-target}/linker-order
  CARGO_TARGET_DIR=$target CHECKIT_LINKER_ORDER=off cargo build --release --locked --quiet --bin checkit
fi
checkit=${CHECKIT:-$target/release/checkit}

bench_workdir

nginx_port=$(free_port)
nginx_pid=$(start_nginx "$work" "$nginx_port"); pids+=("$nginx_pid")
wait_port "$nginx_port"
closed_port=$(free_port)

{
  bench_modules
  cat <<YAML
  icmp:
    prober: icmp
    timeout: 5s
  dns_udp:
    prober: dns
    timeout: 5s
    dns:
      query_name: localhost
YAML
} > "$work/blackbox.yml"

# run NAME ARGS...: one checkit under callgrind, driven through its endpoints,
# then stopped with SIGTERM so callgrind writes its profile.
run() {
  local name=$1 port
  shift
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.%p.out" --demangle=no --compress-strings=no \
    --compress-pos=no "$checkit" "$@" --web.listen-address="127.0.0.1:$port" --log.level=error \
    2>"$work/$name.valgrind.log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$port/-/healthy" 2>/dev/null && break; sleep 0.2; done
  local base=http://127.0.0.1:$port
  local i module target
  for i in $(seq 20); do
    for module in http_2xx tcp_connect icmp dns_udp; do
      case $module in
        icmp) target=127.0.0.1 ;;
        dns_udp) target=127.0.0.1:$closed_port ;;
        *) target=127.0.0.1:$nginx_port ;;
      esac
      curl -sS -o /dev/null "$base/probe?module=$module&target=$target" || true
    done
    curl -sS -o /dev/null "$base/probe?module=tcp_connect&target=127.0.0.1:$closed_port" || true
    curl -sS -o /dev/null -H 'X-Prometheus-Scrape-Timeout-Seconds: 5' \
      "$base/probe?module=http_2xx&target=127.0.0.1:$nginx_port" || true
    curl -sS -o /dev/null "$base/metrics" || true
    curl -sS -o /dev/null -H 'Accept: application/openmetrics-text;version=1.0.0' "$base/metrics" || true
  done
  # Concurrent requests take paths one at a time never does (work stealing,
  # wake-ups, pooled buffers).
  for module in http_2xx tcp_connect; do
    wrk -t2 -c8 -d5s "$base/probe?module=$module&target=127.0.0.1:$nginx_port" >/dev/null || true
  done
  for path in "/probe?module=http_2xx&target=127.0.0.1:$nginx_port&debug=true" /config /logs / /-/ready \
    "/probe?module=nope&target=x"; do
    curl -sS -o /dev/null "$base$path" || true
  done
  curl -sS -o /dev/null -X POST "$base/-/reload" || true
  kill -TERM "$pid"
  wait "$pid" || true
}

echo "exporter on blackbox.yml" >&2
run exporter --config.file="$work/blackbox.yml"
echo "embedded default config" >&2
(cd "$work" && run default)

python3 - benches/linker-order.ld "$checkit" "$work"/*.out <<'PY'
import os, re, sys
out, binary, profiles = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3:]
cost = {}
for path in profiles:
    obj = name = None
    skip = False
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            obj = os.path.realpath(line[3:].strip())
        elif line.startswith("fn="):
            name, skip = (line[3:].strip() if obj == binary else None), False
        elif line.startswith("calls="):
            skip = True  # the next cost line is the callee's, not this function's
        elif line[:1].isdigit():
            if skip:
                skip = False
            elif name:
                parts = line.split()
                if len(parts) >= 2:
                    cost[name] = cost.get(name, 0) + int(parts[1])
exact, patterns = {}, {}
for name, instructions in cost.items():
    if not re.fullmatch(r"[A-Za-z0-9_.$]+", name):
        continue  # no symbol ("0x…"), or valgrind's own names ("(below main)")
    exact[".text." + name] = instructions
    # Rust's legacy mangling ends in a hash (and LTO may add ".llvm.<n>");
    # v0 mangling names each crate with its hash.
    pattern = re.sub(r"17h[0-9a-f]{16}E.*$", "17h*", name)
    pattern = ".text." + re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", pattern)
    if pattern != ".text." + name:
        patterns[pattern] = patterns.get(pattern, 0) + instructions
by_cost = lambda item: (-item[1], item[0])
with open(out, "w") as f:
    f.write("/* Generated by benches/linker-order.sh; see there. */\n")
    f.write("SECTIONS {\n  .text.hot : {\n")
    # Exact names first, most-run first: a section is placed by the first
    # entry that matches it.
    for name, _ in sorted(exact.items(), key=by_cost):
        f.write(f"    *({name} .text.unlikely.{name[6:]})\n")
    for pattern, _ in sorted(patterns.items(), key=by_cost):
        f.write(f"    *({pattern} .text.unlikely.{pattern[6:]})\n")
    f.write("  }\n} INSERT BEFORE .text;\n")
print(f"{len(exact)} functions and {len(patterns)} patterns written to {out}", file=sys.stderr)
PY
