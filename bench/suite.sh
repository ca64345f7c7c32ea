#!/usr/bin/env bash
# The standard broker suite of BENCHMARKS.md: every row against an embedded corelog broker
# (2 shards on this 2-core machine) with the bench client in the same run, then the table
# in BENCHMARKS.md (between the suite markers) is rewritten from the JSON results.
# Usage: bench/suite.sh [OUT_DIR]   (JSON per row in OUT_DIR, default target/bench-suite)
# Takes ~10 minutes and ~25 GB of temporary disk space (freed as rows finish).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/bench-suite}"
mkdir -p "$out"
cargo build --release --locked -p corelog
B=./target/release/corelog
D="${BENCH_SECONDS:-10}"
run() {
  local name=$1
  shift
  echo "### $name: corelog bench $*"
  "$B" bench "$@" --json "$out/$name.json" --quiet
  echo
}
# 1. Durable produce: 4 producers, acks=all, 1 MiB batches; raw O_DIRECT right after.
run durable produce --producers 4 --acks all --batch-bytes 1MiB --duration "$D" --raw-baseline
# 2. Small records: 100 B, acks=1, 64 KiB batches.
run small produce --record-bytes 100 --producers 2 --acks 1 --batch-bytes 64KiB --duration "$D"
# 3. Fixed rate 200 MB/s, acks=all: produce and end-to-end latency (coordinated-omission
#    corrected), with the engine's own append-to-durable latency as the floor.
run rate200 e2e --rate 200MB/s --producers 4 --acks all --batch-bytes 1MiB --duration "$D" --plot "$out/rate200.svg"
"$B" bench engine --batch-bytes 65536 --partitions 8 --inflight 1 --duration 4 --rounds 2 --no-baseline --json "$out/engine_latency.json" >/dev/null
# 4. One record per request, one producer, acks=1: with default settings, and with the
#    broker's connections and the client busy-polling their sockets (latency mode). The
#    floor: the same round trip between two threads, sleeping and busy-polling.
run single produce --producers 1 --batch-bytes 0 --in-flight 1 --acks 1 --partitions 1 --duration "$D"
printf 'busy_poll_us = 100\n' >"$out/busy_poll.toml"
run single_poll produce --producers 1 --batch-bytes 0 --in-flight 1 --acks 1 --partitions 1 --duration "$D" \
  --busy-poll-us 100 --broker-arg=--config --broker-arg="$(realpath "$out/busy_poll.toml")"
"$B" bench pingpong --json "$out/pingpong.json"
# 5. Catch-up read of 4 GiB with 4 consumers: from the tail cache, and cold after a restart.
run catchup_warm consume --preload 4GiB --producers 4 --acks 1 --batch-bytes 1MiB --consumers 4 --warmup 0 --duration 120
run catchup_cold consume --preload 4GiB --producers 4 --acks 1 --batch-bytes 1MiB --consumers 4 --warmup 0 --duration 120 --restart
# 6. Fan-out: 32 groups tailing while producing 100 MB/s, against the same without them.
run fanout_base produce --rate 100MB/s --producers 2 --acks 1 --batch-bytes 256KiB --duration "$D"
run fanout e2e --rate 100MB/s --producers 2 --acks 1 --batch-bytes 256KiB --groups 32 --consumers 1 --duration "$D"
#    The machine's own ceiling for bytes over local TCP (what 32 x 100 MB/s must cross).
"$B" bench loopback --duration 5 --json "$out/loopback.json"
# 7. Restart holding 10 GiB in 100 partitions (clean stop), then the first fetches.
echo "### restart: corelog bench restart"
"$B" bench restart --preload 10GiB --partitions 100 --producers 4 --acks 1 --batch-bytes 1MiB --consumers 4 --first-bytes 1GiB --json "$out/restart.json" --quiet
echo
# 8. librdkafka (kcat) against this client, the same load: 1 producer, 2M x 100 B records,
#    acks=1, 64 KiB batches, against one broker, CPU time of each client measured.
if command -v kcat >/dev/null; then
  dir=$(mktemp -d); port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$B" serve --listen 127.0.0.1:"$port" --data-dir "$dir" 2>/dev/null & pid=$!
  trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
  python3 -c 'import sys; sys.stdout.write(("x"*100+"\n")*2000000)' > "$dir/records.txt"
  sleep 1
  start=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$dir/kcat.time" kcat -P -b 127.0.0.1:"$port" -t kcat-compare -X acks=1 -X batch.size=65536 -X linger.ms=5 -X queue.buffering.max.messages=1000000 -l "$dir/records.txt"
  end=$(date +%s.%N)
  python3 - "$out/kcat.json" "$start" "$end" "$dir/kcat.time" <<'PY'
import json, sys
wall = float(sys.argv[3]) - float(sys.argv[2]); u, s = map(float, open(sys.argv[4]).read().split()[-2:])
json.dump({"records_s": 2e6 / wall, "mb_s": 2e8 / wall / 1e6, "client_cpu_s": u + s, "seconds": wall}, open(sys.argv[1], "w"))
PY
  "$B" bench produce --bootstrap 127.0.0.1:"$port" --broker-pid "$pid" --topic bench-compare --producers 1 --record-bytes 100 --acks 1 --batch-bytes 64KiB --total-bytes 200MB --warmup 0 --json "$out/client_compare.json" --quiet
  # The one-record latency of this broker as a plain blocking socket client sees it
  # (baseline for row 4: the same requests without a client executor).
  python3 bench/produce_ping.py 127.0.0.1:"$port" bench-compare 10000 "$out/produce_ping.json"
  kill $pid; wait $pid 2>/dev/null || true
fi
python3 bench/suite_table.py "$out" BENCHMARKS.md
