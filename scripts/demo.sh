#!/usr/bin/env bash
# demo.sh - a morning in a neighbourhood, end to end on this machine:
# installs the Debian packages, builds (no sanitizers) into build-demo/,
# starts the local stack, then runs the real consumers (linli-reserver,
# linli-ledger) and the gateway (linli-gateway) against the real broker and
# walks orders through them:
#   - the catalog is listed with linli-produce (JSON lines on stdin), the
#     warehouse restocked through the gateway;
#   - o1 is placed and paid (reserved -> committed -> ready for delivery),
#     collected at the pickup point by the courier's events;
#   - o2 is placed for home delivery and cancelled (stock released);
#   - o3 is placed and never paid: the reserver's clock writes OrderExpired
#     when the payment window ([orders] payment_timeout_s, 12 s here) ends,
#     and the payment that arrives afterwards is refused and refunded;
#   - o4 asks for more rice than is left: rejected OUT_OF_STOCK;
# and prints what happened: the reservation results and refunds on the log,
# the stock in Redis, the orders in PostgreSQL (through the gateway), and
# an audit of the warehouse. The stack stays up; the demo's processes stop.
set -euo pipefail
LINLI_LOG_TAG=demo
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LINLI_REPO"
BUILD_DIR="${BUILD_DIR:-build-demo}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$LINLI_REPO/$BUILD_DIR"
export BUILD_DIR
export LINLI_CONFIG="${LINLI_CONFIG:-$LINLI_REPO/config/linli.conf}"

step() { printf '\n==== %s ====\n' "$*"; }

step "packages"
bash scripts/deps.sh

step "build ($BUILD_DIR)"
cmake -S "$LINLI_REPO" -B "$BUILD_DIR" -DLINLI_SANITIZE=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 >/dev/null
PRODUCE="$BUILD_DIR/producers/produce/linli-produce"
RESERVER="$BUILD_DIR/consumers/reserver/linli-reserver"
LEDGER="$BUILD_DIR/consumers/ledger/linli-ledger"
SETTLER="$BUILD_DIR/consumers/settler/linli-settler"
NOTIFIER="$BUILD_DIR/consumers/notifier/linli-notifier"
GATEWAY="$BUILD_DIR/producers/gateway/linli-gateway"
REPLAY_BIN="$BUILD_DIR/consumers/replay/linli-replay"
# One-shot tools open no metrics listener.
replay() { LINLI_METRICS_PORT=-1 "$REPLAY_BIN" "$@"; }
for bin in "$PRODUCE" "$RESERVER" "$LEDGER" "$SETTLER" "$NOTIFIER" "$GATEWAY" "$REPLAY_BIN"; do
  [[ -x "$bin" ]] || linli_die "$bin was not built"
done

step "stack"
bash scripts/stack.sh up

BOOTSTRAP="$(linli_conf kafka bootstrap.servers 127.0.0.1:9092)"
REDIS_PORT="$(linli_conf redis port 16379)"
LOGS="$LINLI_REPO/.stack/demo"
mkdir -p "$LOGS"

# Every run gets its own warehouse and ids, so the demo can run again and
# again on the same stack and still tell a clean story.
RUN="$(date +%H%M%S)$((RANDOM % 90 + 10))"
W="wh-pudong-$RUN"
RICE="rice-5kg-$RUN"
MILK="milk-1l-$RUN"
o() { printf 'o%s-%s' "$1" "$RUN"; }

# The demo's own processes, stopped on exit (the stack stays up).
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

GW_PORT="${LINLI_DEMO_GATEWAY_PORT:-18080}"
GW="http://127.0.0.1:$GW_PORT"
# Demo-only secrets: the ledger's encryption key for personal data.
export LINLI_CRYPTO_KEY="${LINLI_CRYPTO_KEY:-6c696e6c692d64656d6f2d6b65792d6e6f742d666f722d70726f647563743031}"
export LINLI_METRICS_PORT=0

step "consumers and gateway"
LINLI_ORDERS_PAYMENT_TIMEOUT_S=12 LINLI_RUNNER_INSTANCE_ID="demo-$RUN" \
  "$RESERVER" >"$LOGS/reserver.log" 2>&1 &
PIDS+=($!)
LINLI_RUNNER_INSTANCE_ID="demo-$RUN" "$LEDGER" >"$LOGS/ledger.log" 2>&1 &
PIDS+=($!)
LINLI_RUNNER_INSTANCE_ID="demo-$RUN" "$SETTLER" >"$LOGS/settler.log" 2>&1 &
PIDS+=($!)
# u-wang reads English (a per-user locale override); everyone else zh-CN.
redis-cli -p "$REDIS_PORT" SET linli:locale:u-wang en >/dev/null
LINLI_RUNNER_INSTANCE_ID="demo-$RUN" "$NOTIFIER" >"$LOGS/notifier.log" 2>&1 &
PIDS+=($!)
LINLI_GATEWAY_PORT="$GW_PORT" "$GATEWAY" >"$LOGS/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
  curl -fsS "$GW/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$GW/healthz" >/dev/null || linli_die "the gateway did not start (see $LOGS/gateway.log)"
echo "reserver, ledger, settler, notifier and gateway ($GW) running; logs in ${LOGS#"$LINLI_REPO"/}"

J='Content-Type: application/json'
APP='Authorization: Bearer dev-shop-a-token'
ADMIN='Authorization: Bearer dev-ops-admin-token'
COURIER='Authorization: Bearer dev-courier-x-token'
post() { # post KEY PATH JSON: prints "<status> <body>"
  local out status
  out="$(curl -sS -o /dev/stdout -w ' %{http_code}' -X POST "$GW$2" -H "$1" \
    -H "$J" -H "Idempotency-Key: demo-$RUN-$RANDOM$RANDOM" -d "$3")"
  status="${out##* }"
  out="${out% *}"
  printf '  POST %-34s -> %s %s\n' "$2" "$status" "${out%$'\n'}"
}

step "catalog (linli-produce, JSON lines on stdin)"
LINLI_METRICS_PORT=-1 "$PRODUCE" <<EOF
{"topic": "$(linli_topic catalog)", "event": {"sku": {"sku_id": "$RICE", "name": "东北大米 5kg", "category": "grain/rice", "storage_class": "AMBIENT", "weight_g": 5000, "list_price_fen": "4990", "origin": "黑龙江五常", "status": "LISTED"}}}
{"topic": "$(linli_topic catalog)", "event": {"sku": {"sku_id": "$MILK", "name": "鲜牛奶 1L", "category": "dairy/milk", "storage_class": "CHILLED", "weight_g": 1030, "list_price_fen": "1290", "origin": "内蒙古", "status": "LISTED"}}}
EOF

step "restock $W through the gateway (admin key)"
post "$ADMIN" /v1/inventory/adjustments \
  "{\"adjustment_id\":\"adj-rice-$RUN\",\"warehouse_id\":\"$W\",\"sku_id\":\"$RICE\",\"quantity\":5,\"reason\":\"RESTOCK\",\"note\":\"morning delivery\"}"
post "$ADMIN" /v1/inventory/adjustments \
  "{\"adjustment_id\":\"adj-milk-$RUN\",\"warehouse_id\":\"$W\",\"sku_id\":\"$MILK\",\"quantity\":10,\"reason\":\"RESTOCK\",\"note\":\"cold chain\"}"
sleep 2 # let the reserver take the stock before the first order

step "orders through the gateway (app key shop_a)"
line() { printf '{"sku_id":"%s","quantity":%d,"unit_price_fen":%d}' "$1" "$2" "$3"; }
post "$APP" /v1/orders "{\"order_id\":\"$(o 1)\",\"user_id\":\"u-li\",\"warehouse_id\":\"$W\",\"lines\":[$(line "$RICE" 2 4990),$(line "$MILK" 1 1290)],\"pickup\":{\"pickup_point_id\":\"pp-xiaoqu-3\"}}"
post "$APP" /v1/orders "{\"order_id\":\"$(o 2)\",\"user_id\":\"u-wang\",\"warehouse_id\":\"$W\",\"lines\":[$(line "$RICE" 1 4990)],\"home\":{\"recipient_name\":\"王阿姨\",\"phone\":\"13800138000\",\"address\":\"浦东新区 幸福小区 5-302\",\"lat_e6\":31221000,\"lng_e6\":121544000}}"
post "$APP" /v1/orders "{\"order_id\":\"$(o 3)\",\"user_id\":\"u-zhang\",\"warehouse_id\":\"$W\",\"lines\":[$(line "$RICE" 2 4990)],\"pickup\":{\"pickup_point_id\":\"pp-xiaoqu-3\"}}"
post "$APP" /v1/orders "{\"order_id\":\"$(o 4)\",\"user_id\":\"u-zhao\",\"warehouse_id\":\"$W\",\"lines\":[$(line "$RICE" 5 4990)],\"pickup\":{\"pickup_point_id\":\"pp-xiaoqu-3\"}}"
sleep 2
post "$APP" "/v1/orders/$(o 1)/payment" '{"method":"WECHAT_PAY","payment_txn_id":"wx-'"$RUN"'-1","amount_fen":"11270"}'
post "$APP" "/v1/orders/$(o 2)/cancel" '{"reason":"bought it downstairs"}'

step "waiting for o3's payment window to close (12 s)"
state_of() {
  curl -fsS "$GW/v1/orders/$1" -H "$APP" 2>/dev/null |
    sed -n 's/.*"state":"\([A-Z_]*\)".*/\1/p'
}
for _ in $(seq 1 60); do
  [[ "$(state_of "$(o 3)")" == EXPIRED ]] && break
  sleep 1
done
echo "  o3 is $(state_of "$(o 3)")"
echo "  ... and now o3's payment arrives, too late:"
post "$APP" "/v1/orders/$(o 3)/payment" '{"method":"ALIPAY","payment_txn_id":"ali-'"$RUN"'-3","amount_fen":"9980"}'

step "o1 travels to the pickup point (courier key)"
sleep 2
post "$COURIER" /v1/deliveries/events "{\"out_for_delivery\":{\"order_id\":\"$(o 1)\",\"route_id\":\"r-$RUN\",\"courier_id\":\"c-7\"}}"
post "$COURIER" /v1/deliveries/events "{\"arrived_at_pickup_point\":{\"order_id\":\"$(o 1)\",\"pickup_point_id\":\"pp-xiaoqu-3\",\"pickup_code\":\"4417\"}}"
post "$COURIER" /v1/deliveries/events "{\"picked_up\":{\"order_id\":\"$(o 1)\",\"pickup_code\":\"4417\"}}"
sleep 3

step "what the reserver decided ($(linli_topic reservations), from the log)"
# Columns before the first repeated field (a quoted JSON cell) are safe to
# split on commas; that is all this summary needs.
replay export --topic "$(linli_topic reservations)" --from "@$(( ($(date +%s) - 300) * 1000 ))" \
    --format csv --quiet |
  awk -F, -v run="-$RUN" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    substr($col["reservation_result.order_id"], length($col["reservation_result.order_id"]) - length(run) + 1) == run {
      printf "  %-16s %-10s %s\n",
        $col["reservation_result.order_id"], $col["reservation_result.status"],
        ($col["reservation_result.reason"] == "REASON_UNSPECIFIED" ? "" : $col["reservation_result.reason"]) }'

step "refunds owed ($(linli_topic refunds))"
replay export --topic "$(linli_topic refunds)" --from "@$(( ($(date +%s) - 300) * 1000 ))" \
    --format csv --quiet |
  awk -F, -v run="-$RUN" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    substr($col["refund_requested.order_id"], length($col["refund_requested.order_id"]) - length(run) + 1) == run {
      printf "  %-16s %-14s %s fen (payment %s)\n",
        $col["refund_requested.order_id"], $col["refund_requested.reason"],
        $col["refund_requested.amount_fen"], $col["refund_requested.payment_txn_id"] }'

step "stock of $W in Redis (the reserver's hot state)"
for sku in "$RICE" "$MILK"; do
  printf '  %-20s' "$sku"
  for f in init avail resv sold; do
    printf ' %s=%s' "$f" "$(redis-cli -p "$REDIS_PORT" HGET "$(linli_rsv_key "$W" "$f")" "$sku")"
  done
  echo
done

step "the orders in the record (GET /v1/orders/{id} through the gateway)"
for n in 1 2 3 4; do
  printf '  %-16s %s\n' "$(o "$n")" "$(state_of "$(o "$n")")"
done

# ------------------------------------------------------------ group-buys
EGG="eggs-30-$RUN"
GB_UP="gb-eggs-$RUN"     # forms and climbs two tiers
GB_DOWN="gb-durian-$RUN" # reaches no tier and fails
step "group-buys: $GB_UP (tiers at 2 and 4 neighbours) and $GB_DOWN (needs 5)"
printf '%s\n' "{\"topic\": \"$(linli_topic catalog)\", \"event\": {\"sku\": {\"sku_id\": \"$EGG\", \"name\": \"土鸡蛋 30枚\", \"category\": \"eggs\", \"storage_class\": \"CHILLED\", \"weight_g\": 1800, \"list_price_fen\": \"3990\", \"origin\": \"安徽\", \"status\": \"LISTED\"}}}" |
  LINLI_METRICS_PORT=-1 "$PRODUCE"
post "$ADMIN" /v1/inventory/adjustments \
  "{\"adjustment_id\":\"adj-egg-$RUN\",\"warehouse_id\":\"$W\",\"sku_id\":\"$EGG\",\"quantity\":40,\"reason\":\"RESTOCK\",\"note\":\"group-buy stock\"}"
DEADLINE=$(($(date +%s%3N) + 25000))
post "$ADMIN" /v1/groupbuys "{\"campaign_id\":\"$GB_UP\",\"app_id\":\"shop_a\",\"sku_id\":\"$EGG\",\"warehouse_id\":\"$W\",\"list_price_fen\":\"3990\",\"tiers\":[{\"min_participants\":2,\"unit_price_fen\":\"3490\"},{\"min_participants\":4,\"unit_price_fen\":\"2990\"}],\"deadline_ms\":\"$DEADLINE\",\"per_user_limit\":3,\"title\":\"土鸡蛋拼团\"}"
post "$ADMIN" /v1/groupbuys "{\"campaign_id\":\"$GB_DOWN\",\"app_id\":\"shop_a\",\"sku_id\":\"$EGG\",\"warehouse_id\":\"$W\",\"list_price_fen\":\"3990\",\"tiers\":[{\"min_participants\":5,\"unit_price_fen\":\"2500\"}],\"deadline_ms\":\"$DEADLINE\"}"
sleep 2
# gb_join CAMPAIGN USER QTY PRICE: an order at the campaign's first price,
# paid, then the join (an app joins its user after the payment).
gb_join() {
  local oid="g-$2-$1"
  post "$APP" /v1/orders "{\"order_id\":\"$oid\",\"user_id\":\"$2\",\"warehouse_id\":\"$W\",\"campaign_id\":\"$1\",\"lines\":[$(line "$EGG" "$3" "$4")],\"pickup\":{\"pickup_point_id\":\"pp-xiaoqu-3\"}}"
  sleep 0.5
  post "$APP" "/v1/orders/$oid/payment" "{\"method\":\"WECHAT_PAY\",\"payment_txn_id\":\"wx-$oid\",\"amount_fen\":\"$(($3 * $4))\"}"
  post "$APP" "/v1/groupbuys/$1/join" "{\"user_id\":\"$2\",\"order_id\":\"$oid\",\"quantity\":$3}"
}
gb_join "$GB_UP" u-li 2 3490
gb_join "$GB_UP" u-wang 1 3490
gb_join "$GB_UP" u-zhang 1 3490
gb_join "$GB_UP" u-zhao 3 3490
gb_join "$GB_DOWN" u-chen 1 2500
gb_join "$GB_DOWN" u-liu 2 2500
sleep 2
echo "  progress of $GB_UP (GET /v1/groupbuys/{id}):"
curl -fsS "$GW/v1/groupbuys/$GB_UP" -H "$APP" |
  jq -c '{state, participants, current_tier_price: .current_tier.unit_price_fen, next_tier, needed_for_next_tier, time_left_ms}' |
  sed 's/^/    /' || true

step "waiting for the deadline (the settler's clock writes CampaignDeadline)"
gb_state() { curl -fsS "$GW/v1/groupbuys/$1" -H "$APP" 2>/dev/null | jq -r .state; }
for _ in $(seq 1 90); do
  [[ "$(gb_state "$GB_UP")" != OPEN && "$(gb_state "$GB_DOWN")" != OPEN ]] && break
  sleep 1
done
sleep 2
echo "  $GB_UP is $(gb_state "$GB_UP"), $GB_DOWN is $(gb_state "$GB_DOWN")"

step "what the settler decided ($(linli_topic groupbuy.settlements), from the log)"
SINCE="@$((($(date +%s) - 300) * 1000))"
GB_JQ='select(.key == $a or .key == $b) | .event as $e
  | if $e.join_result then "  \(.key) \($e.join_result.order_id) \($e.join_result.status) \($e.join_result.reason // "") participants=\($e.join_result.participants) needed_for_next_tier=\($e.join_result.needed_for_next_tier // 0)"
    elif $e.threshold_reached then "  \(.key) tier \($e.threshold_reached.tier // 0) reached by \($e.threshold_reached.participants) neighbours: \($e.threshold_reached.unit_price_fen) fen a unit"
    elif $e.campaign_settled then "  \(.key) SETTLED at tier \($e.campaign_settled.tier // 0): \($e.campaign_settled.unit_price_fen) fen a unit, \($e.campaign_settled.participants) participants"
    elif $e.campaign_failed then "  \(.key) FAILED with \($e.campaign_failed.participants) participants: \($e.campaign_failed.reason)"
    else empty end'
replay export --topic "$(linli_topic groupbuy.settlements)" --from "$SINCE" --quiet |
  jq -r --arg a "$GB_UP" --arg b "$GB_DOWN" "$GB_JQ"

step "group-buy refunds ($(linli_topic refunds): the payment service's feed)"
replay export --topic "$(linli_topic refunds)" --from "$SINCE" --quiet |
  jq -r --arg a "$GB_UP" --arg b "$GB_DOWN" '.event.refund_requested
    | select(. != null and (.campaign_id == $a or .campaign_id == $b))
    | "  \(.order_id) \(.user_id) \(.reason) \(.amount_fen) fen"'

step "what the residents were told (linli-notifier -> $(linli_topic notifications))"
sleep 2
replay export --topic "$(linli_topic notifications)" --from "$SINCE" --quiet |
  jq -r --arg run "$RUN" '.event.notification
    | select(. != null and ((.order_id // "") | endswith($run)) or ((.campaign_id // "") | endswith($run)))
    | "  \(.user_id) [\(.locale)] \(.template): \(.text)"' |
  awk 'NR <= 40 { print } END { if (NR > 40) printf "  ... and %d more\n", NR - 40 }'

# ------------------------------------------------------------- delivery
# linli-router routes $W's paid orders. Its reference data is the shipped
# file (pickup points pp-xiaoqu-3 and pp-sh-0007 among them) plus this run's
# warehouse with an ambient van and a refrigerated one, and one daily cutoff
# a few minutes ahead. Its clock reads a file (LINLI_FAKE_CLOCK_FILE) that
# the demo moves past the cutoff instead of waiting for it: the router
# itself then writes WaveClosed and routes the wave, as at a real cutoff.
ROUTER="$BUILD_DIR/consumers/router/linli-router"
[[ -x "$ROUTER" ]] || linli_die "$ROUTER was not built"
WAREHOUSE_KEY='Authorization: Bearer dev-warehouse-token'
ROUTER_REF="$LOGS/router-reference-$RUN.conf"
ROUTER_CLOCK="$LOGS/router-clock-$RUN"
NOW_MS=$(date +%s%3N)
CUT_MS=$(((NOW_MS / 60000 + 5) * 60000))
CUT_MIN=$(((CUT_MS / 60000 + 480) % 1440)) # Shanghai, UTC+8
CUT_HHMM=$(printf '%02d:%02d' $((CUT_MIN / 60)) $((CUT_MIN % 60)))
{
  cat config/router-reference.conf
  echo "warehouse $W lat=31.221000 lng=121.544000 cutoffs=$CUT_HHMM depart=07:00 express_every_min=0 utc_offset_min=480"
  echo "vehicle $W-van-1 warehouse=$W kg=1200 items=400 refrigerated=no shift_min=600"
  echo "vehicle $W-cold-1 warehouse=$W kg=800 items=250 refrigerated=yes shift_min=480"
} >"$ROUTER_REF"
echo "$NOW_MS" >"$ROUTER_CLOCK"
step "delivery: linli-router for $W (a daily wave, cutoff $CUT_HHMM Shanghai time)"
# Other warehouses on the shared topic (earlier runs, tests) are not ours.
LINLI_ROUTER_REFERENCE_FILE="$ROUTER_REF" LINLI_FAKE_CLOCK_FILE="$ROUTER_CLOCK" \
  LINLI_ROUTER_SKIP_UNKNOWN_WAREHOUSES=true LINLI_RUNNER_INSTANCE_ID="demo-$RUN" \
  "$ROUTER" >"$LOGS/router.log" 2>&1 &
PIDS+=($!)
post "$ADMIN" /v1/inventory/adjustments \
  "{\"adjustment_id\":\"adj-rice-wave-$RUN\",\"warehouse_id\":\"$W\",\"sku_id\":\"$RICE\",\"quantity\":10,\"reason\":\"RESTOCK\",\"note\":\"for the wave\"}"
sleep 2
post "$APP" /v1/orders "{\"order_id\":\"$(o 5)\",\"user_id\":\"u-li\",\"warehouse_id\":\"$W\",\"lines\":[$(line "$RICE" 1 4990),$(line "$MILK" 2 1290)],\"pickup\":{\"pickup_point_id\":\"pp-xiaoqu-3\"}}"
post "$APP" /v1/orders "{\"order_id\":\"$(o 6)\",\"user_id\":\"u-zhang\",\"warehouse_id\":\"$W\",\"lines\":[$(line "$RICE" 2 4990)],\"pickup\":{\"pickup_point_id\":\"pp-xiaoqu-3\"}}"
post "$APP" /v1/orders "{\"order_id\":\"$(o 7)\",\"user_id\":\"u-chen\",\"warehouse_id\":\"$W\",\"lines\":[$(line "$RICE" 1 4990)],\"pickup\":{\"pickup_point_id\":\"pp-sh-0007\"}}"
post "$APP" /v1/orders "{\"order_id\":\"$(o 8)\",\"user_id\":\"u-wang\",\"warehouse_id\":\"$W\",\"lines\":[$(line "$MILK" 1 1290)],\"home\":{\"recipient_name\":\"王阿姨\",\"phone\":\"13800138000\",\"address\":\"浦东新区 幸福小区 5-302\",\"lat_e6\":31228500,\"lng_e6\":121551200}}"
sleep 2
post "$APP" "/v1/orders/$(o 5)/payment" '{"method":"WECHAT_PAY","payment_txn_id":"wx-'"$RUN"'-5","amount_fen":"7570"}'
post "$APP" "/v1/orders/$(o 6)/payment" '{"method":"ALIPAY","payment_txn_id":"ali-'"$RUN"'-6","amount_fen":"9980"}'
post "$APP" "/v1/orders/$(o 7)/payment" '{"method":"WECHAT_PAY","payment_txn_id":"wx-'"$RUN"'-7","amount_fen":"4990"}'
post "$APP" "/v1/orders/$(o 8)/payment" '{"method":"WECHAT_PAY","payment_txn_id":"wx-'"$RUN"'-8","amount_fen":"1290"}'
# Paid orders reach the router as FulfillmentItem; wait until all four are
# in the warehouse's open daily wave ({r:W}:seen:d), then pass the cutoff.
for _ in $(seq 1 120); do
  waiting=0
  for n in 5 6 7 8; do
    [[ "$(redis-cli -p "$REDIS_PORT" HEXISTS "$(linli_wave_key "$W" seen:d)" "$(o "$n")")" == 1 ]] || waiting=1
  done
  ((waiting)) || break
  sleep 1
done
echo "  $(redis-cli -p "$REDIS_PORT" LLEN "$(linli_wave_key "$W" q:d)") orders wait in $W's open wave; the router's clock passes $CUT_HHMM"
echo "$((CUT_MS + 1000))" >"$ROUTER_CLOCK"
ROUTES_SINCE="@$(((NOW_MS / 1000 - 60) * 1000))"
routes_log() { replay export --topic linli.routes.v1 --from "$ROUTES_SINCE" --quiet; }
WAVE=""
for _ in $(seq 1 60); do
  WAVE="$(routes_log | jq -r --arg w "$W" 'select(.key == $w) | .event.wave_planned.wave_id // empty' | tail -n 1)"
  [[ -n "$WAVE" ]] && break
  sleep 1
done
[[ -n "$WAVE" ]] || linli_die "the router planned no wave for $W (see $LOGS/router.log)"

step "routes of $W (linli.routes.v1: RouteBatch per vehicle, WavePlanned per wave)"
# Times in Shanghai time (UTC+8).
routes_log | jq -r --arg w "$W" '
  def t: (tonumber / 1000 + 28800 | floor | strftime("%H:%M"));
  select(.key == $w) | .event
  | if .route_batch then .route_batch
      | "  wave \(.wave_id)  route \(.route_id)  vehicle \(.vehicle_id)\(if .cold_chain then " (cold chain)" else "" end)  \(.distance_m) m, leaves \(.departs_at_ms | t)",
        (.stops[] | "    \(.seq). \(if .pickup_point_id then "pickup point \(.pickup_point_id)" else "home at (\(.location.lat_e6 / 1e6), \(.location.lng_e6 / 1e6))" end)  eta \(.eta_ms | t)  orders \(.order_ids | join(" "))")
    elif .wave_planned then .wave_planned
      | "  wave \(.wave_id): \(.orders // 0) orders, \(.routes // 0) routes, \(.distance_m // 0) m, \(.unassigned // [] | length) unassigned\([(.unassigned // [])[] | "\n    unassigned \(.order_id): \(.reason) (\(.detail))"] | join(""))"
    else empty end'

step "sorting list of pp-xiaoqu-3 for wave $WAVE (GET .../sorting-list, warehouse key)"
SL_PATH="/v1/warehouses/$W/waves/$WAVE/sorting-list"
sl_recorded() { # the ledger recorded what the router wrote
  curl -fsS "$GW$SL_PATH" -H "$WAREHOUSE_KEY" 2>/dev/null |
    jq -e --arg o "$(o 6)" '[.pickup_points[].lines[].order_id] | index($o) != null' >/dev/null 2>&1
}
for _ in $(seq 1 90); do
  sl_recorded && break
  sleep 1
done
if sl_recorded; then
  curl -fsS "$GW$SL_PATH" -H "$WAREHOUSE_KEY" | jq -r '
    "  wave \(.wave_id): \(.lines) lines, \(.units) units for \(.pickup_points | length) pickup points",
    (.pickup_points[] | select(.pickup_point_id == "pp-xiaoqu-3")
     | "  \(.pickup_point_id) (\(.community // "?")), route \(.route_id): \(.orders) orders, \(.units) units",
       (.lines[] | "    \(.order_id)  \(.user_id // "-")  \(.sku_id) x\(.quantity)  \(.storage_class)"))'
else
  # A ledger with a long backlog on a busy shared log: say so, and show
  # the router's own list instead.
  echo "  the ledger has not recorded the wave yet (behind on the shared log: $LOGS/ledger.log);"
  echo "  the router's SortingList from linli.routes.v1:"
  routes_log | jq -r --arg w "$W" --arg wave "$WAVE" '
    select(.key == $w) | .event.sorting_list
    | select(. != null and .wave_id == $wave and .pickup_point_id == "pp-xiaoqu-3")
    | "  \(.pickup_point_id) (\(.community // "?")), route \(.route_id)",
      (.lines[] | "    \(.order_id)  \(.user_id // "-")  \(.sku_id) x\(.quantity // 0)  \(.storage_class // "AMBIENT")")'
fi
printf '  the same list as a shop key sees it: %s\n' \
  "$(curl -sS -o /dev/null -w '%{http_code}' "$GW$SL_PATH" -H "$APP")"

step "audit of $W: the log vs PostgreSQL and Redis"
replay audit --warehouse "$W" | tail -n 4 || true

echo
echo "The stack is still running. Next:"
printf '  %-66s # %s\n' \
  "curl -s $GW/v1/orders/$(o 1) -H '$APP'" "(gateway stopped with the demo)" \
  "$REPLAY_BIN export --topic "$(linli_topic orders)" --key $(o 3)" "an order's history" \
  "kcat -b $BOOTSTRAP -L" "topics and partitions" \
  "scripts/stack.sh status" "services, ports, data folders" \
  "scripts/stack.sh down" "stop the stack"
