#!/usr/bin/env bash
# The whole test suite, as the README says: install the real peers the tests
# talk to (Debian packages, needs root), then run every test of the crate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-peers.sh
cargo test --locked
