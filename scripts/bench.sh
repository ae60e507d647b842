#!/usr/bin/env bash
# bench.sh - load test of linli-gateway's POST /v1/orders with wrk (Debian
# package wrk) over loopback; prints requests/s and the p99 latency.
#
#   scripts/bench.sh [seconds] [connections] [threads]     (default 20 64 2)
#
# Assumes `scripts/stack.sh up` (Kafka, Redis, PostgreSQL) and a build in
# $BUILD_DIR (default build/). Starts one linli-gateway from that build on
# $BENCH_PORT (default 18480) with the rate limit off, and stops it at the
# end; or set BENCH_URL to measure a gateway that is already running (its
# rate limit then applies). Every request places a new order (unique
# order_id per thread and request), answered 202 only after Kafka
# acknowledged it (acks=all), so this measures the full publish path.
# Non-2xx answers are reported by wrk and make the script fail.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$REPO/build}"
DURATION="${1:-20}"
CONNS="${2:-64}"
THREADS="${3:-2}"
PORT="${BENCH_PORT:-18480}"
TOKEN="${BENCH_TOKEN:-dev-shop-a-token}"

command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 2; }

work="$(mktemp -d)"
gw_pid=""
cleanup() {
  if [[ -n "$gw_pid" ]]; then
    kill -TERM "$gw_pid" 2>/dev/null || true
    wait "$gw_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "${BENCH_URL:-}" ]]; then
  gw="$BUILD_DIR/producers/gateway/linli-gateway"
  [[ -x "$gw" ]] || { echo "bench: $gw not built" >&2; exit 2; }
  (cd "$REPO" && LINLI_GATEWAY_PORT="$PORT" LINLI_GATEWAY_RATE_LIMIT_PER_S=0 \
     LINLI_METRICS_PORT=-1 LINLI_LOG_LEVEL=warn exec "$gw") >"$work/gateway.log" 2>&1 &
  gw_pid=$!
  BENCH_URL="http://127.0.0.1:$PORT"
  for _ in $(seq 1 100); do
    curl -fsS "$BENCH_URL/healthz" >/dev/null 2>&1 && break
    kill -0 "$gw_pid" 2>/dev/null || { cat "$work/gateway.log" >&2; exit 1; }
    sleep 0.1
  done
fi
curl -fsS "$BENCH_URL/healthz" >/dev/null || { echo "bench: gateway at $BENCH_URL is not healthy" >&2; exit 1; }

run="b$(date +%s)$$"
cat >"$work/orders.lua" <<LUA
-- One new order per request: order ids unique per run, thread and request.
local counter = 0
local threads = {}
setup = function(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
init = function(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer $TOKEN"
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"order_id":"$run-%d-%d","user_id":"bench-u%d","warehouse_id":"W1",' ..
    '"lines":[{"sku_id":"SKU-1","quantity":1,"unit_price_fen":990}],' ..
    '"pickup":{"pickup_point_id":"P1"}}', tid, counter, counter % 1000)
  return wrk.format(nil, "/v1/orders", nil, body)
end
LUA

echo "bench: POST /v1/orders on $BENCH_URL for ${DURATION}s, $CONNS connections, $THREADS threads" >&2
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$work/orders.lua" "$BENCH_URL" \
  | tee "$work/wrk.out" >&2

rps="$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")"
p99="$(awk '$1 == "99%" {print $2}' "$work/wrk.out")"
errors="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$work/wrk.out")"
echo "POST /v1/orders: requests/s=$rps p99=$p99 non_2xx=${errors:-0}"
[[ -z "$errors" || "$errors" == 0 ]]
