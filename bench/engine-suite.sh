#!/usr/bin/env bash
# Runs the engine benchmark configurations reported in BENCHMARKS.md.
# Usage: bench/engine-suite.sh [OUT_DIR]   (JSON per run in OUT_DIR, default ./bench-results)
# Each run: 20 s of engine phases and 20 s of raw phases, alternating in 10 rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-results}"
mkdir -p "$out"
cargo build --release --locked
B=./target/release/corelog
run() {
  local name=$1
  shift
  echo "### $name: corelog bench engine $*"
  "$B" bench engine --duration 20 --rounds 10 --json "$out/$name.json" "$@"
  echo
}
run a_1k_1m
run b_1k_1m_inflight8 --inflight 8
run c_1k_1m_p4 --partitions 4 --inflight 2
run d_100b_64k --record-bytes 100 --batch-bytes 65536
run e_100b_64k_inflight16 --record-bytes 100 --batch-bytes 65536 --inflight 16
run f_100b_64k_noflush --record-bytes 100 --batch-bytes 65536 --flush none
