#!/usr/bin/env bash
# bench.sh - load test of linli-gateway with wrk over loopback: requests/s
# and p99 latency of POST /v1/orders (every request a new order, answered
# 202 only once Kafka acknowledged it, acks=all: the full publish path),
# then of GET /v1/orders/{id}.
#
#   scripts/bench.sh [seconds] [connections] [threads]     (default 15 32 2)
#
# It builds a Release gateway (-O2, no sanitizers) in $BENCH_BUILD_DIR
# (default build-bench/) - the ASan build of the tests is several times
# slower and would measure the sanitizer - starts the stack if it is not up
# (scripts/stack.sh up), runs its own gateway on $BENCH_PORT (default 18480)
# with the rate limit off, and stops that gateway at the end (the stack is
# left as it was found running, or up if it started it). Non-2xx answers
# make the script fail.
#
# The orders go to the shared linli.orders.v1 topic: they name warehouse
# "bench-wh" and SKU "bench-sku", which no stock exists for, so a reserver
# that reads them rejects them instead of taking real stock.
#
# GET reads an order this script writes into the record (PostgreSQL) the
# way the ledger does, and deletes at exit; if it cannot, one it placed
# (answered from Redis, "recorded": false). The output says which.
# shellcheck disable=SC2317  # cleanup runs from the EXIT trap
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BUILD="${BENCH_BUILD_DIR:-$REPO/build-bench}"
DURATION="${1:-15}"
CONNS="${2:-32}"
THREADS="${3:-2}"
PORT="${BENCH_PORT:-18480}"
TOKEN="${BENCH_TOKEN:-dev-shop-a-token}"
APP="${BENCH_APP:-shop_a}" # the app of $TOKEN (config/gateway-keys.conf)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
[[ "$DURATION" =~ ^[0-9]+$ && "$CONNS" =~ ^[0-9]+$ && "$THREADS" =~ ^[0-9]+$ ]] ||
  die "usage: scripts/bench.sh [seconds] [connections] [threads]"

# ------------------------------------------------------------------ build
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  log "configuring a Release build in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLINLI_SANITIZE=OFF \
    -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
fi
log "building linli-gateway and linli-migrate (Release)"
cmake --build "$BUILD" --target linli-gateway linli-migrate -j2 >/dev/null
GW="$BUILD/producers/gateway/linli-gateway"

# ------------------------------------------------------------------ stack
if ! bash "$REPO/scripts/stack.sh" status >/dev/null 2>&1; then
  log "stack not up: scripts/stack.sh up"
  BUILD_DIR="$BUILD" bash "$REPO/scripts/stack.sh" up
fi

# ---------------------------------------------------------------- gateway
work="$(mktemp -d)"
gw_pid=""
pg_order="" # a row this script put into PostgreSQL, deleted at exit
conninfo=""
cleanup() {
  if [[ -n "$gw_pid" ]]; then
    kill -TERM "$gw_pid" 2>/dev/null || true
    wait "$gw_pid" 2>/dev/null || true
  fi
  if [[ -n "$pg_order" ]]; then
    psql "$conninfo" -q -v id="$pg_order" >/dev/null 2>&1 <<'SQL' || true
DELETE FROM payments WHERE order_id = :'id';
DELETE FROM reservations WHERE order_id = :'id';
DELETE FROM order_lines WHERE order_id = :'id';
DELETE FROM orders WHERE order_id = :'id';
SQL
  fi
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$REPO" && LINLI_GATEWAY_PORT="$PORT" LINLI_GATEWAY_RATE_LIMIT_PER_S=0 \
  LINLI_METRICS_PORT=-1 LINLI_LOG_LEVEL=warn exec "$GW") >"$work/gateway.log" 2>&1 &
gw_pid=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$gw_pid" 2>/dev/null || { cat "$work/gateway.log" >&2; die "gateway exited"; }
  sleep 0.1
done
curl -fsS "$URL/healthz" >/dev/null || die "gateway at $URL is not healthy"

# One wrk run; prints "requests/s=... p99=..." and fails on non-2xx.
bench() { # label script
  local label="$1" script="$2" out="$work/wrk-$RANDOM.out"
  log "$label on $URL: ${DURATION}s, $CONNS connections, $THREADS threads"
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency \
    -s "$script" "$URL" >"$out"
  cat "$out" >&2
  local rps p99 bad
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  p99="$(awk '$1 == "99%" {print $2}' "$out")"
  bad="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")"
  printf '%-26s requests/s=%s p99=%s non_2xx=%s\n' "$label:" "$rps" "$p99" "${bad:-0}"
  [[ -z "$bad" || "$bad" == 0 ]]
}

# ------------------------------------------------------------ POST orders
run="b$(date +%s)$$"
cat >"$work/orders.lua" <<LUA
-- One new order per request: order ids unique per run, thread and request.
local threads = {}
setup = function(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
init = function(args)
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer $TOKEN"
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"order_id":"$run-%d-%d","user_id":"bench-u%d","warehouse_id":"bench-wh",' ..
    '"lines":[{"sku_id":"bench-sku","quantity":1,"unit_price_fen":990}],' ..
    '"pickup":{"pickup_point_id":"P1"}}', tid, counter, counter % 1000)
  return wrk.format(nil, "/v1/orders", nil, body)
end
LUA
rc=0
bench "POST /v1/orders" "$work/orders.lua" || rc=1

# ------------------------------------------------------- GET orders/{id}
# A recorded order as the ledger writes it (order, two lines, reservation,
# payment: the five queries of a full read), removed again at exit.
conninfo="$(source "$REPO/scripts/lib.sh" && linli_conf pg conninfo 'host=127.0.0.1 port=15432 dbname=linli user=linli')"
order="$run-rec"
kind="recorded"
pg_order="$order" # deleted at exit even if only part was written
if psql "$conninfo" -v ON_ERROR_STOP=1 -v id="$order" -v app="$APP" -q >/dev/null 2>&1 <<'SQL'
INSERT INTO orders (order_id, app_id, user_id, warehouse_id, state, total_fen,
  paid_fen, payment_txn_id, payment_method, delivery_kind, pickup_point_id,
  placed_at, last_event_id)
VALUES (:'id', :'app', 'bench-u', 'bench-wh', 'PAID', 2289, 2289, 'tx-' || :'id',
  'ALIPAY', 'PICKUP', 'P1', now(), 'ev-bench');
INSERT INTO order_lines VALUES (:'id', 0, 'bench-sku', 1, 1290), (:'id', 1, 'bench-sku-2', 1, 999);
INSERT INTO reservations (order_id, warehouse_id, status, reserved_at, last_event_id)
VALUES (:'id', 'bench-wh', 'COMMITTED', now(), 'ev-bench');
INSERT INTO payments (payment_txn_id, order_id, method, amount_fen, status, paid_at, event_id)
VALUES ('tx-' || :'id', :'id', 'ALIPAY', 2289, 'ACCEPTED', now(), 'ev-bench-' || :'id');
SQL
then
  :
else
  # No record to write into: read an order the gateway accepted (Redis).
  order="$run-get"
  kind="accepted, not recorded"
  curl -fsS -o /dev/null -X POST "$URL/v1/orders" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"order_id\":\"$order\",\"user_id\":\"bench-u\",\"warehouse_id\":\"bench-wh\",\"lines\":[{\"sku_id\":\"bench-sku\",\"quantity\":1,\"unit_price_fen\":990}],\"pickup\":{\"pickup_point_id\":\"P1\"}}" ||
    die "cannot place the order to read"
fi
curl -fsS -H "Authorization: Bearer $TOKEN" "$URL/v1/orders/$order" >/dev/null ||
  die "GET /v1/orders/$order does not answer 200"
cat >"$work/get.lua" <<LUA
init = function(args)
  wrk.headers["Authorization"] = "Bearer $TOKEN"
end
request = function()
  return wrk.format("GET", "/v1/orders/$order")
end
LUA
bench "GET /v1/orders/{id} ($kind)" "$work/get.lua" || rc=1
# The reserver's end-to-end throughput (its own script; BENCH_SKIP_RESERVER=1
# skips it).
if [[ "${BENCH_SKIP_RESERVER:-0}" != 1 ]]; then
  bash "$(dirname "${BASH_SOURCE[0]}")/bench_reserver.sh" || rc=1
fi
exit "$rc"
