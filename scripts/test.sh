#!/usr/bin/env bash
# test.sh - every linli test, from a fresh machine: installs the Debian
# packages (scripts/deps.sh), builds with ASan+UBSan into build/, runs the
# fuzz targets for a while (scripts/fuzz.sh), starts the local stack, runs
# the unit then the integration tests with ctest, stops the stack again
# (also on failure or Ctrl-C) and prints a summary with the time of each
# phase. Exits with the tests' status. What CI runs (.ci/run).
#
#   scripts/test.sh [extra ctest arguments, e.g. -R test_json]
#
# BUILD_DIR (default build) picks the build tree; RELEASE_DIR (default
# build-release) the Release tree, which is only built (to prove that -O3
# builds under -Werror). A stack that was already up before the run (e.g.
# left by scripts/demo.sh) is left up.
# shellcheck disable=SC2317  # on_exit and on_signal run from traps
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
export BUILD_DIR

PHASES=()          # "name|seconds|result" rows for the summary
STACK_STARTED=0
TESTS_RC=0
T_START=$EPOCHREALTIME

elapsed() { # since $1 (an $EPOCHREALTIME), as "12.3"
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}
banner() { printf '\n==== %s ====\n' "$*"; }
record() { PHASES+=("$1|$2|$3"); }

summary() {
  local row name secs result
  printf '\n==== summary ====\n'
  for row in "${PHASES[@]}"; do
    IFS='|' read -r name secs result <<<"$row"
    printf '  %-20s %8ss  %s\n' "$name" "$secs" "$result"
  done
  printf '  %-20s %8ss\n' total "$(elapsed "$T_START")"
}

on_exit() {
  local rc=$?
  trap - EXIT
  # The stack is stopped even if Ctrl-C is pressed again (down is bounded).
  trap '' INT TERM
  if ((STACK_STARTED)); then
    banner "stack down"
    local t=$EPOCHREALTIME
    if bash scripts/stack.sh down; then
      record "stack down" "$(elapsed "$t")" ok
    else
      record "stack down" "$(elapsed "$t")" FAILED
      ((rc != 0)) || rc=1
    fi
  fi
  summary
  if ((rc == 0)); then
    printf '\nALL TESTS PASSED\n'
  else
    printf '\nFAILED (exit %d)\n' "$rc"
  fi
  exit "$rc"
}

# Every step runs in its own process group (setsid), in the background,
# while this shell waits: an interrupt then reaches this shell's trap at
# once (not after the step, which ctest would otherwise absorb), and the
# trap stops the whole group: ctest, the test, the helpers it spawned.
CHILD=0
CURRENT=start CURRENT_T=$EPOCHREALTIME   # the step running, for the summary
run() {
  local rc=0
  setsid "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=0
  return "$rc"
}

on_signal() {
  trap - INT TERM
  printf '\ninterrupted\n'
  if ((CHILD)); then
    kill -TERM -- "-$CHILD" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
      # Reap the step once it exited, else its zombie keeps the group alive.
      [[ "$(ps -o stat= -p "$CHILD" 2>/dev/null)" == Z* ]] && { wait "$CHILD" 2>/dev/null || true; }
      kill -0 -- "-$CHILD" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  record "$CURRENT" "$(elapsed "$CURRENT_T")" INTERRUPTED
  exit 130
}
trap on_exit EXIT
trap on_signal INT TERM

# phase NAME COMMAND...: one set-up step, timed; a failure ends the run.
phase() {
  local name="$1" t=$EPOCHREALTIME rc=0
  shift
  banner "$name"
  CURRENT="$name" CURRENT_T=$t
  run "$@" || rc=$?
  if ((rc == 0)); then
    record "$name" "$(elapsed "$t")" ok
  else
    record "$name" "$(elapsed "$t")" "FAILED (exit $rc)"
    exit "$rc"
  fi
}

# tests LABEL ARGS...: one ctest run over the tests carrying LABEL; a failure
# is recorded and the run goes on, so that one report shows every failure.
tests() {
  local label="$1" t=$EPOCHREALTIME rc=0
  shift
  banner "$label tests"
  CURRENT="$label tests" CURRENT_T=$t
  run ctest --test-dir "$BUILD_DIR" --output-on-failure -L "^${label}\$" "$@" || rc=$?
  if ((rc == 0)); then
    record "$label tests" "$(elapsed "$t")" ok
  else
    record "$label tests" "$(elapsed "$t")" "FAILED (ctest exit $rc)"
    TESTS_RC=$rc
  fi
}

phase deps bash scripts/deps.sh
phase configure cmake -S "$REPO" -B "$BUILD_DIR" -DLINLI_SANITIZE=ON
phase build cmake --build "$BUILD_DIR" -j2
# Release (-O3) once as well, without sanitizers: the optimiser's extra
# warnings (format-truncation, maybe-uninitialized) are errors under
# -Werror too. Its own tree, so the sanitizer build above stays as it is.
RELEASE_DIR="${RELEASE_DIR:-$REPO/build-release}"
phase "release configure" cmake -S "$REPO" -B "$RELEASE_DIR" \
  -DCMAKE_BUILD_TYPE=Release -DLINLI_SANITIZE=OFF
phase "release build" cmake --build "$RELEASE_DIR" -j2
# The libFuzzer targets of the untrusted-input parsers (clang, ASan, UBSan;
# build-fuzz/), LINLI_FUZZ_SECONDS each (default here 20) from their seed
# corpus with libFuzzer seed LINLI_FUZZ_SEED (default here 1: the same
# inputs every run; scripts/fuzz.sh alone reseeds): a crash, a leak or a
# broken invariant is a failure, recorded like a test's, and the run goes
# on. LINLI_FUZZ_SECONDS=0 skips them.
fuzz() {
  local t=$EPOCHREALTIME rc=0
  banner fuzz
  if [[ "${LINLI_FUZZ_SECONDS:-20}" == 0 ]]; then
    record fuzz 0.0 "skipped (LINLI_FUZZ_SECONDS=0)"
    return 0
  fi
  CURRENT=fuzz CURRENT_T=$t
  LINLI_FUZZ_SECONDS="${LINLI_FUZZ_SECONDS:-20}" \
    LINLI_FUZZ_SEED="${LINLI_FUZZ_SEED:-1}" run bash scripts/fuzz.sh || rc=$?
  if ((rc == 0)); then
    record fuzz "$(elapsed "$t")" ok
  else
    record fuzz "$(elapsed "$t")" "FAILED (exit $rc)"
    TESTS_RC=$rc
  fi
}
fuzz
# Only a stack this run started is stopped at the end: one that was already
# up (e.g. left by scripts/demo.sh) is used and left up.
if bash scripts/stack.sh status >/dev/null 2>&1; then
  echo "(the stack is already up: using it, and leaving it up)"
else
  STACK_STARTED=1
fi
phase "stack up" bash scripts/stack.sh up
# Unit tests need no services and may run two at a time; integration tests
# share the broker and run one at a time.
tests unit -j2 "$@"
tests integration "$@"
exit "$TESTS_RC"
