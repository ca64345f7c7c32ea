#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs them.
#
# 1. Rust: `cargo test --release --workspace --locked` (the storage engine's unit, model
#    and SIGKILL tests).
# 2. End to end (tests/e2e, pytest): `cargo build --release --locked -p corelog`, then the
#    broker (`corelog serve`) driven by stock Kafka clients. Installed for it:
#    - kcat, from Debian (`apt-get install kcat`, with sudo when not root), if missing;
#    - a Python virtualenv, target/e2e-venv (reused; reinstalled when
#      tests/e2e/requirements.txt changes), with these pinned PyPI packages:
#      confluent-kafka 2.16.1 (bundles librdkafka 2.16.0), kafka-python 3.0.12,
#      aiokafka 0.14.0, pytest 9.2.0, pytest-timeout 2.4.0, and the codecs kafka-python
#      reads and writes snappy/lz4/zstd batches with: python-snappy 0.7.3 (on cramjam
#      2.14.0), lz4 4.4.5, zstandard 0.25.0.
# 3. Fuzzing: tests/fuzz/run.sh builds the libFuzzer targets (request frames through every
#    API's handler but CreateTopics and CreatePartitions, record-batch validation) and
#    runs each for FUZZ_SECONDS (default 30).
#
# The last line is "tests: N passed, M failed", cargo's and pytest's results together;
# a phase that fails without a counted test failure (a build error, a crash, a pytest
# collection error) counts as one failure. Exits non-zero if anything failed.
#
# Knobs: MODEL_SEEDS (random seeds of the model test, default 12), CRASH_CYCLES (kills in
# the engine's SIGKILL test, default 6), FAULT_SEEDS (disk-fault test, default 12),
# CRASH_LOOP_CYCLES (the broker's crash loop, default 20); MODEL_SEED / CRASH_SEED /
# FAULT_SEED / CRASH_LOOP_SEED replay one failing run; FUZZ_SECONDS per fuzz target
# (default 30).
# E2E_ARGS: extra pytest arguments (e.g. "-k kcat", "--shards 2", "-x");
# E2E_TIMEOUT: per-test limit in seconds (default 120); CORELOG_E2E_KEEP=1 keeps the
# brokers' data dirs and logs under target/e2e-tmp.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

export MODEL_SEEDS="${MODEL_SEEDS:-12}"
export CRASH_CYCLES="${CRASH_CYCLES:-6}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# count LOG: "P F", the passed and failed tests of a cargo or pytest log.
count_cargo() {
    # cargo's last lines are doc-test results (often "0 passed"): add up every crate.
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "%d %d\n", p, f }' "$1"
}
count_pytest() {
    # pytest's summary: "3 failed, 70 passed, 1 error in 41.2s" (maybe between ='s).
    awk '/^=* *[0-9]+ [a-z]+.* in [0-9.]+s/ { line = $0 }
         END { gsub(/[=,]/, " ", line); n = split(line, w, " ")
               for (i = 1; i < n; i++) {
                   if (w[i+1] == "passed") p += w[i]
                   if (w[i+1] == "failed" || w[i+1] == "error" || w[i+1] == "errors") f += w[i]
               }
               printf "%d %d\n", p, f }' "$1"
}
# tally NAME RC "P F": add a phase's counts; a failed phase counts at least one failure.
tally() {
    local p f
    read -r p f <<<"$3"
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$1 failed (exit code $2) without a counted test failure: counting one" >&2
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

# --- 1. Rust tests (release: the tests do real direct I/O and run much faster optimised).
rc=0
cargo test --release --workspace --locked 2>&1 | tee "$work/cargo.log" || rc=$?
tally "cargo test" "$rc" "$(count_cargo "$work/cargo.log")"

# --- 2. End-to-end tests.
install_kcat() {
    if command -v kcat >/dev/null || command -v kafkacat >/dev/null; then
        return 0
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing kcat (Debian)"
    local install="$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat"
    if ! $install >"$work/apt.log" 2>&1; then
        # A fresh machine may have no package lists yet.
        $sudo apt-get update -qq >>"$work/apt.log" 2>&1
        $install >>"$work/apt.log" 2>&1 || {
            cat "$work/apt.log" >&2
            echo "could not install kcat: its test will fail" >&2
        }
    fi
}

setup_venv() {
    local venv=target/e2e-venv req=tests/e2e/requirements.txt want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || return 1
    fi
    if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
        echo "installing the e2e Python packages into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" \
            || return 1
        echo "$want" >"$venv/.requirements.sha256"
    fi
}

install_kcat
rc=0
if ! setup_venv; then
    echo "could not set up the e2e virtualenv" >&2
    rc=1
elif ! cargo build --release --locked -p corelog; then
    echo "could not build corelog: the e2e tests were not run" >&2
    rc=1
else
    # Unquoted on purpose: E2E_ARGS holds several pytest arguments.
    # shellcheck disable=SC2086
    CORELOG_BIN="$PWD/target/release/corelog" PYTHONDONTWRITEBYTECODE=1 \
        target/e2e-venv/bin/python -m pytest tests/e2e -q \
        --timeout "${E2E_TIMEOUT:-120}" ${E2E_ARGS:-} 2>&1 | tee "$work/e2e.log" || rc=$?
fi
touch "$work/e2e.log"
tally "the e2e suite" "$rc" "$(count_pytest "$work/e2e.log")"

# --- 3. Coverage-guided fuzzing (tests/fuzz, libFuzzer): every target for FUZZ_SECONDS
# (default 30) from its checked-in corpus; each target counts as one test.
rc=0
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" tests/fuzz/run.sh 2>&1 | tee "$work/fuzz.log" || rc=$?
tally "fuzzing" "$rc" "$(grep -c '^fuzz: .*exit 0$' "$work/fuzz.log") $(grep -c '^fuzz: .*exit [1-9]' "$work/fuzz.log")"

echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
