#!/usr/bin/env bash
# The whole stack on loopback without Docker, from Debian's packages:
#
#   sudo apt-get install prometheus prometheus-alertmanager python3-aiosmtpd
#   cargo build --release && examples/local/run.sh
#
# starts, each logging to examples/local/state/<name>.log:
#   http://127.0.0.1:9115   checkit "home": probes, /metrics, the bridge (checkit.yml)
#   http://127.0.0.1:9116   checkit "remote": a second vantage point (checkit-remote.yml)
#   http://127.0.0.1:19090  Prometheus: rules from ../../alerts, targets from targets/
#   http://127.0.0.1:19093  Alertmanager: alerts to the bridge, the bridge's own by email
#   127.0.0.1:1025          a mail catcher (aiosmtpd) printing every email to state/mail.log
# and stops them all on Ctrl-C (or when one of them exits). State (the
# bridge's SQLite store, Prometheus' and Alertmanager's data) stays in state/.
#
# Binaries: CHECKIT (default: target/release/checkit of this repository, else
# `checkit` on PATH), PROMETHEUS, ALERTMANAGER, PYTHON (with aiosmtpd).
# tests/it/ops_full_loop.rs runs this script (on other ports) from cargo test.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
repo_build="$here/../../target/release/checkit"
if [[ -z ${CHECKIT:-} ]]; then
  if [[ -x $repo_build ]]; then CHECKIT=$repo_build; else CHECKIT=checkit; fi
fi
PROMETHEUS=${PROMETHEUS:-prometheus}
ALERTMANAGER=${ALERTMANAGER:-prometheus-alertmanager}
PYTHON=${PYTHON:-python3}

need() {
  command -v "$1" >/dev/null || { echo "run.sh: $1 not found; $2" >&2; exit 1; }
}
need "$CHECKIT" "build it with 'cargo build --release' or set CHECKIT"
need "$PROMETHEUS" "install it with 'sudo apt-get install prometheus' or set PROMETHEUS"
need "$ALERTMANAGER" "install it with 'sudo apt-get install prometheus-alertmanager' or set ALERTMANAGER"
"$PYTHON" -c 'import aiosmtpd' 2>/dev/null \
  || { echo "run.sh: $PYTHON cannot import aiosmtpd; install it with 'sudo apt-get install python3-aiosmtpd'" >&2; exit 1; }
"$CHECKIT" --config.file=checkit.yml --config.check
"$CHECKIT" --config.file=checkit-remote.yml --config.check

mkdir -p state
pids=()
stop() {
  trap - INT TERM EXIT
  if ((${#pids[@]})); then kill "${pids[@]}" 2>/dev/null || true; fi
  wait
}
trap 'stop; exit 0' INT TERM
trap stop EXIT
start() {
  local name=$1
  shift
  "$@" >"state/$name.log" 2>&1 &
  pids+=($!)
  echo "started $name (pid $!, log examples/local/state/$name.log)"
}

# -u: print each email as it arrives, not when a buffer fills.
start mail "$PYTHON" -u -m aiosmtpd -n -l 127.0.0.1:1025
start checkit "$CHECKIT" --config.file=checkit.yml --web.listen-address=127.0.0.1:9115
start checkit-remote "$CHECKIT" --config.file=checkit-remote.yml --web.listen-address=127.0.0.1:9116
# An empty cluster address: one Alertmanager, no gossip port on 0.0.0.0:9094.
# --web.external-url: the address links in notifications point at.
start alertmanager "$ALERTMANAGER" --config.file=alertmanager.yml --storage.path=state/alertmanager \
  --web.listen-address=127.0.0.1:19093 --web.external-url=http://127.0.0.1:19093/ --cluster.listen-address=
start prometheus "$PROMETHEUS" --config.file=prometheus.yml --storage.tsdb.path=state/prometheus \
  --web.listen-address=127.0.0.1:19090 --web.external-url=http://127.0.0.1:19090/

echo "all started; emails appear in examples/local/state/mail.log; Ctrl-C stops everything"
# Stop everything as soon as one exits (a port in use, a bad config).
set +e
wait -n
status=$?
echo "run.sh: a process exited (status $status); stopping the others; see examples/local/state/*.log" >&2
exit 1
