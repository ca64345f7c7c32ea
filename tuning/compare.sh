#!/usr/bin/env bash
# What a tuning profile changes: the rows of the standard suite that its settings touch
# (write chunk and depth: durable produce; flush window: small acks=1 records; ring
# depth: both), each run with the built-in defaults and with the profile, alternating
# ROUNDS times in one run so that both see the same machine noise.
# Usage: tuning/compare.sh PROFILE [OUT_DIR]   (ROUNDS=3, BENCH_SECONDS=8 by default)
# The table it prints goes to BENCHMARKS.md ("What the tuned profile changes").
set -euo pipefail
cd "$(dirname "$0")/.."
profile=$(realpath "${1:?usage: tuning/compare.sh PROFILE [OUT_DIR]}")
out="${2:-target/tune-compare}"
rounds="${ROUNDS:-3}"
D="${BENCH_SECONDS:-8}"
mkdir -p "$out"
cargo build --release --locked -p corelog
B=./target/release/corelog
row() {
  local name=$1 variant=$2 round=$3
  shift 3
  local extra=()
  if [ "$variant" = tuned ]; then
    extra=(--broker-arg=--tuning-profile --broker-arg="$profile")
  fi
  "$B" bench "$@" "${extra[@]}" --json "$out/$name-$variant-$round.json" --quiet >/dev/null
}
for r in $(seq 1 "$rounds"); do
  # Alternate which variant goes first, so neither always runs on a warmer machine.
  if [ $((r % 2)) -eq 1 ]; then order="default tuned"; else order="tuned default"; fi
  for v in $order; do
    echo "round $r/$rounds: $v"
    row durable "$v" "$r" produce --producers 4 --acks all --batch-bytes 1MiB --duration "$D"
    row small "$v" "$r" produce --record-bytes 100 --producers 2 --acks 1 --batch-bytes 64KiB --duration "$D"
    row e2e "$v" "$r" e2e --rate 100MB/s --producers 2 --acks 1 --batch-bytes 256KiB --duration "$D"
  done
done
python3 - "$out" "$rounds" "$profile" <<'PY'
import json, statistics, sys
out, rounds, profile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def load(name, variant):
    return [json.load(open(f"{out}/{name}-{variant}-{r}.json")) for r in range(1, rounds + 1)]
def med(xs):
    return statistics.median(xs)
rows = [
    ("durable produce, acks=all, 1 MiB batches: MB/s", "durable", lambda d: d["mb_s"], "{:.0f}"),
    ("durable produce: ack p99 (ms)", "durable", lambda d: d["produce"]["latency"]["p99_us"] / 1e3, "{:.1f}"),
    ("100 B records, acks=1: records/s (M)", "small", lambda d: d["records_s"] / 1e6, "{:.2f}"),
    ("100 B records: broker CPU s per MB", "small", lambda d: d["broker_cpu_s_per_mb"] * 1e3, "{:.2f} ms"),
    ("100 MB/s acks=1: end-to-end p50 (ms)", "e2e", lambda d: d["e2e_latency"]["p50_us"] / 1e3, "{:.2f}"),
    ("100 MB/s acks=1: end-to-end p99 (ms)", "e2e", lambda d: d["e2e_latency"]["p99_us"] / 1e3, "{:.2f}"),
]
print(f"profile: {profile}; median of {rounds} alternating rounds (each round's figures in brackets)")
print()
print("| Row | Defaults | Tuned profile | Tuned / defaults |")
print("|---|---|---|---|")
for label, name, get, fmt in rows:
    a = [get(d) for d in load(name, "default")]
    b = [get(d) for d in load(name, "tuned")]
    each = lambda xs: ", ".join(fmt.format(x) for x in xs)
    ratio = med(b) / med(a) if med(a) else float("nan")
    print(f"| {label} | {fmt.format(med(a))} ({each(a)}) | {fmt.format(med(b))} ({each(b)}) | {ratio:.2f} |")
PY
