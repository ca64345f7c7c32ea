#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs them.
#
# Today the tests need only the Rust toolchain (the storage engine's unit, model and
# SIGKILL tests). The broker's end-to-end tests will install their Kafka clients here
# (Python clients from PyPI, kcat from Debian).
#
# Knobs: MODEL_SEEDS (random seeds of the model test, default 12), CRASH_CYCLES (kills in
# the SIGKILL test, default 6); MODEL_SEED / CRASH_SEED replay one failing run.
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL_SEEDS="${MODEL_SEEDS:-12}"
export CRASH_CYCLES="${CRASH_CYCLES:-6}"

# Release mode: the tests do real direct I/O and run much faster optimised.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --release --workspace --locked 2>&1 | tee "$log"

# cargo's last lines are doc-test results (often "0 passed"): close with the totals.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
