#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets (tests/fuzz: a record's bytes as
# Kafka hands them to a consumer, JSON bodies, HTTP request heads,
# configuration files, the router's reference data, the Lua scripts'
# outcomes) with clang, ASan and
# UBSan into build-fuzz/, and runs each for a while from its seed corpus
# (tests/fuzz/corpus/<target>, copied: the tree is not written). Exits 1 at
# the first target that crashes, leaks, hangs or breaks an invariant, with
# the input that did it saved under build-fuzz/crashes/.
#
#   scripts/fuzz.sh [TARGET...]     (default: every target)
#
# LINLI_FUZZ_SECONDS (default 30) is each target's time; LINLI_FUZZ_SEED
# fixes libFuzzer's seed (default: a new one each run). scripts/test.sh
# runs this with its own time and seed 1, so that a CI run tries the same
# inputs as any other of the same length: a new find comes from a longer
# or a reseeded run, not at random in CI.
# Reproduce a crash: build-fuzz/tests/fuzz/TARGET FILE
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
FUZZ_DIR="${FUZZ_DIR:-$REPO/build-fuzz}"
SECONDS_EACH="${LINLI_FUZZ_SECONDS:-30}"
ALL=(fuzz_record fuzz_json fuzz_config fuzz_reference fuzz_replies
     fuzz_http_head)
targets=("$@")
((${#targets[@]})) || targets=("${ALL[@]}")

CC=clang cmake -S "$REPO" -B "$FUZZ_DIR" -DLINLI_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$FUZZ_DIR" -j2 --target "${targets[@]}" >/dev/null

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$FUZZ_DIR/crashes"
for t in "${targets[@]}"; do
  corpus="$work/$t"
  mkdir -p "$corpus"
  cp "$REPO/tests/fuzz/corpus/$t/"* "$corpus/"
  seed=()
  [[ -n "${LINLI_FUZZ_SEED:-}" ]] && seed=(-seed="$LINLI_FUZZ_SEED")
  dict=()
  [[ -f "$REPO/tests/fuzz/$t.dict" ]] && dict=(-dict="$REPO/tests/fuzz/$t.dict")
  echo "[fuzz] $t: ${SECONDS_EACH}s from $(ls "$corpus" | wc -l) seeds"
  rc=0
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$FUZZ_DIR/tests/fuzz/$t" "${seed[@]}" "${dict[@]}" \
    -max_total_time="$SECONDS_EACH" \
    -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_DIR/crashes/$t-" "$corpus" \
    >"$work/$t.log" 2>&1 || rc=$?
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/$t.log" |
    sed "s/^/[fuzz] $t /" || true
  if ((rc != 0)); then
    tail -60 "$work/$t.log"
    echo "[fuzz] $t FAILED (exit $rc); the input is in $FUZZ_DIR/crashes/"
    exit 1
  fi
done
echo "[fuzz] every target ran clean"
