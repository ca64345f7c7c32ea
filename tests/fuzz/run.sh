#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation and runs each for
# FUZZ_SECONDS (default 60) from its checked-in seed corpus (corpus/<target>).
#
# Stable Rust: the instrumentation flags are the ones cargo fuzz passes (sancov with
# 8-bit counters, PC table and comparison tracing), without a sanitizer, which needs
# nightly. libFuzzer itself is compiled by the libfuzzer-sys crate (needs a C++ compiler).
#
# Inputs found during a run go to a scratch directory, not into the corpus; a crash is
# written to target/fuzz-artifacts/<target>/ and fails the script. Reproduce one with
#   tests/fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>
# FUZZ_TARGETS: which targets (default: all). Used by tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"request record_batch"}
triple=x86_64-unknown-linux-gnu
tmp_base=${TMPDIR:-/tmp}
# Only the fuzz binaries and their dependencies are instrumented (--target keeps the
# flags off build scripts and proc macros).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --release --locked --target "$triple" --bins
export CORELOG_LOG=${CORELOG_LOG:-off}
for t in $targets; do
    scratch=$(mktemp -d -p "$tmp_base")
    # The request target's shard keeps its data under TMPDIR; libFuzzer exits without
    # running destructors, so each target gets a directory removed afterwards.
    export TMPDIR
    TMPDIR=$(mktemp -d -p "$tmp_base")
    artifacts="target/fuzz-artifacts/$t/"
    mkdir -p "$artifacts"
    echo "fuzz: $t for ${seconds}s from $(ls corpus/$t | wc -l) seeds"
    set +e
    "target/$triple/release/$t" -max_total_time="$seconds" -rss_limit_mb=4096 \
        -max_len=65536 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts" "$scratch" "corpus/$t" 2>&1 | tail -n 25
    rc=${PIPESTATUS[0]}
    set -e
    echo "fuzz: $t: $(ls "$scratch" | wc -l) new inputs, exit $rc"
    rm -rf "$scratch" "$TMPDIR"
    if [ "$rc" -ne 0 ]; then
        exit "$rc"
    fi
done
