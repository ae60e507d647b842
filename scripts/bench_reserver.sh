#!/usr/bin/env bash
# bench_reserver.sh - linli-reserver alone in a flash sale: the "reserver"
# passes of scripts/bench.sh (one per BENCH_INSTANCES count, default "1 2"),
# with that script's checks and knobs (BENCH_BUILD_DIR, BENCH_BATCH,
# BENCH_RESERVER for a before/after comparison, BENCH_TIMEOUT...). Add
# "ceiling" to BENCH_PASSES for the ratio to linli-txcopy.
#
#   scripts/bench_reserver.sh [orders] [stock] [users]   (default 20000 5000 1000)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export BENCH_ORDERS="${1:-${BENCH_ORDERS:-20000}}"
export BENCH_STOCK="${2:-${BENCH_STOCK:-5000}}"
export BENCH_USERS="${3:-${BENCH_USERS:-1000}}"
export BENCH_PASSES="${BENCH_PASSES:-reserver}"
exec bash "$HERE/bench.sh"
