#!/usr/bin/env bash
# Short, bounded coverage-guided fuzzing of checkit's parsers (libFuzzer via
# cargo-fuzz): every target runs FUZZ_SECONDS (default 45) from the committed
# corpus in corpus/<target>. New inputs go to a temp dir, so the committed
# corpus only grows by hand (`cp` the interesting ones); crashes land in
# artifacts/<target>/ and fail the run; turn each into a regression test.
#
# Why nightly: cargo-fuzz instruments the build with SanitizerCoverage through
# `-Z` flags, which only a nightly rustc accepts. This machine has a nightly
# next to the pinned stable one (`rustup toolchain list`); the project itself
# still builds and tests on stable. `-s none` skips AddressSanitizer: checkit
# forbids unsafe code, so what we look for is panics, hangs and runaway memory
# (libFuzzer's -rss_limit_mb and -timeout catch the last two).
#
# Usage: tests/fuzz/run.sh [target...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-45}"
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(webhook_payload config_load duration_size matcher text_encoder)
fi
missing() {
  if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
    echo "fuzz: $1" >&2
    exit 1
  fi
  echo "fuzz: skipped, $1" >&2
  exit 0
}
rustup run nightly rustc --version >/dev/null 2>&1 || missing "no nightly toolchain (rustup toolchain install nightly)"
command -v cargo-fuzz >/dev/null 2>&1 || missing "no cargo-fuzz (cargo install cargo-fuzz --locked)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo +nightly fuzz build --fuzz-dir . -s none 2>&1 | tail -n 20
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run --fuzz-dir . -s none "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1 2>&1 \
    | grep -E '^(stat::|==|INFO: (Running|Loaded))|ERROR|panicked|Test unit written' || true
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found a failing input in tests/fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
