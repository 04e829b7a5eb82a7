#!/usr/bin/env bash
# Short, bounded coverage-guided fuzzing of checkit's parsers (libFuzzer via
# cargo-fuzz): every target runs FUZZ_SECONDS (default 60) from the committed
# corpus in corpus/<target>. New inputs go to a temp dir, so the committed
# corpus only grows by hand (`cp` the interesting ones); crashes land in
# artifacts/<target>/ and fail the run; turn each into a regression test.
#
# Why RUSTC_BOOTSTRAP: cargo-fuzz instruments the build through `-Z` flags,
# which only a nightly rustc accepts; the project builds on the stable
# toolchain alone, and RUSTC_BOOTSTRAP=1 lets stable accept them (for this
# build only). `-s none` skips AddressSanitizer: checkit forbids unsafe
# code, so what we look for is panics, hangs and runaway memory (libFuzzer's
# -rss_limit_mb and -timeout catch the last two).
#
# Why `--dev`: the targets are built once, unoptimised, with libFuzzer's
# coverage instrumentation. cargo-fuzz's default (optimised, one codegen
# unit, every dependency of checkit instrumented) took 70 minutes on this
# 2-core machine under load; the dev build takes 27 (README, "Fuzzing"),
# and a dev-built target still runs thousands of inputs a second.
#
# Usage: tests/fuzz/run.sh [target...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(webhook_payload config_load duration_size matcher text_encoder)
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  # The project's install step (tests/install-peers.sh) installs it.
  echo "fuzz: cargo-fuzz is missing; run tests/install-peers.sh" >&2
  exit 1
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
flags=(--fuzz-dir . --dev -s none)
started=$SECONDS
cargo fuzz build "${flags[@]}"
echo "fuzz: targets built in $((SECONDS - started))s"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  echo "fuzz: $target for ${seconds}s"
  status=0
  cargo fuzz run "${flags[@]}" "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1 \
    >"$work/$target.log" 2>&1 || status=$?
  grep -E '^(stat::(number_of_executed_units|new_units_added|peak_rss_mb)|==|INFO: (Running|Loaded))|ERROR|panicked|Test unit written' \
    "$work/$target.log" || true
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found a failing input in tests/fuzz/artifacts/$target/" >&2
    exit 1
  fi
  if ((status != 0)); then
    # No finding, yet a failure: the build or libFuzzer itself.
    tail -n 40 "$work/$target.log" >&2
    echo "fuzz: $target failed (exit $status)" >&2
    exit 1
  fi
done
