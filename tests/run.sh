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
cargo test --release --workspace --locked
