#!/usr/bin/env bash
# bench_reserver.sh - end-to-end throughput of linli-reserver in a flash
# sale: ORDERS one-line orders from USERS users for one SKU that has STOCK
# units, published through libcommon's producer (acks=all, idempotent) by
# linli-loadgen, measured from the first produce until every order's
# ReservationResult is committed on linli.reservations.v1 (read with
# read_committed). One pass per instance count in $BENCH_INSTANCES.
#
#   scripts/bench_reserver.sh [orders] [stock] [users]   (default 20000 5000 1000)
#
#   BENCH_INSTANCES   reserver instances per pass (default "1 3")
#   BENCH_BUILD_DIR   Release build folder (default build-bench/; configured
#                     -DCMAKE_BUILD_TYPE=Release -DLINLI_SANITIZE=OFF if absent)
#   BENCH_TIMEOUT     seconds a pass may take (default 300)
#   BENCH_KEEP_STATE  1 keeps the bench warehouse's Redis state afterwards
#   BENCH_RESERVER    another linli-reserver binary to measure (e.g. an older
#                     build, for a before/after comparison)
#
# Each pass uses its own run id, warehouse, SKU and consumer group
# (runner.group), started at the end of the input topics, so it neither
# reads nor disturbs other runs on a shared broker. It checks correctness as
# well as speed: one result per order, exactly STOCK RESERVED and the rest
# OUT_OF_STOCK, no repeated result, and Redis left with available 0 and
# reserved STOCK. Per pass it prints orders/s end to end, the produce rate,
# each reserver's peak RSS (VmHWM) and CPU seconds, and Redis commands and
# CPU per order (the Redis server is shared: other clients add to those).
# The reservers are stopped with SIGTERM at the end and must exit 0;
# nothing is left running. The stack is started (scripts/stack.sh up) if it
# is not up. Afterwards the bench warehouse's Redis keys, its order index
# and pending-expiry entries are deleted, so that no other reserver expires
# the bench's reservations later (BENCH_KEEP_STATE=1 keeps them).
# shellcheck disable=SC2317  # cleanup runs from the EXIT trap
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BUILD="${BENCH_BUILD_DIR:-$REPO/build-bench}"
ORDERS="${1:-20000}"
STOCK="${2:-5000}"
USERS="${3:-1000}"
INSTANCES="${BENCH_INSTANCES:-1 3}"
TIMEOUT="${BENCH_TIMEOUT:-300}"

log() { printf '[bench-reserver] %s\n' "$*" >&2; }
die() { printf '[bench-reserver] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$ORDERS" =~ ^[1-9][0-9]*$ && "$STOCK" =~ ^[1-9][0-9]*$ && "$USERS" =~ ^[1-9][0-9]*$ ]] ||
  die "usage: scripts/bench_reserver.sh [orders] [stock] [users] (positive integers)"
((STOCK <= ORDERS)) || die "stock ($STOCK) must not exceed orders ($ORDERS): a flash sale sells out"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT=$TIMEOUT: seconds, a positive integer"
for n in $INSTANCES; do
  [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "BENCH_INSTANCES: '$n' is not an instance count (1..99)"
done
command -v redis-cli >/dev/null || die "redis-cli is not installed"

# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"
REDIS=(redis-cli -h "$(linli_conf redis host 127.0.0.1)" -p "$(linli_conf redis port 16379)")
REDIS_PASSWORD="$(linli_conf redis password '')"
[[ -n "$REDIS_PASSWORD" ]] && export REDISCLI_AUTH="$REDIS_PASSWORD"

# ------------------------------------------------------------------ build
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  log "configuring a Release build in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLINLI_SANITIZE=OFF \
    -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
fi
# Re-run the configure step: new sources (CONFIGURE_DEPENDS globs) need it
# before their targets exist.
cmake -S "$REPO" -B "$BUILD" >/dev/null
grep -q '^LINLI_SANITIZE:BOOL=OFF' "$BUILD/CMakeCache.txt" ||
  die "$BUILD is a sanitizer build: it would measure ASan (set BENCH_BUILD_DIR)"
log "building linli-reserver, linli-loadgen and linli-migrate (Release)"
cmake --build "$BUILD" --target linli-reserver linli-loadgen linli-migrate -j2 >/dev/null
RESERVER="${BENCH_RESERVER:-$BUILD/consumers/reserver/linli-reserver}"
[[ -x "$RESERVER" ]] || die "BENCH_RESERVER=$RESERVER is not an executable"
LOADGEN="$BUILD/tools/linli-loadgen"

# ------------------------------------------------------------------ stack
if ! bash "$REPO/scripts/stack.sh" status >/dev/null 2>&1; then
  log "stack not up: scripts/stack.sh up"
  BUILD_DIR="$BUILD" bash "$REPO/scripts/stack.sh" up >&2
fi

work="$(mktemp -d)"
pids=()
counter_pid=""
cleanup() {
  local p
  for p in "${pids[@]}" $counter_pid; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}" $counter_pid; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

# key=value field of a one-line report
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -n1; }

# Reservers of other runs would compete for the CPU and, on the same
# orders, publish results too: wait (within reason) until none runs.
wait_foreign_reservers() {
  local i others
  for ((i = 0; i < 240; i++)); do
    others="$(pgrep -x linli-reserver | grep -vxF -f <(printf '%s\n' "${pids[@]}" 0) || true)"
    [[ -z "$others" ]] && return 0
    ((i == 0)) && log "waiting for other linli-reserver processes to finish: $(echo "$others" | tr '\n' ' ')"
    sleep 0.5
  done
  log "other linli-reserver processes still run ($(echo "$others" | tr '\n' ' ')): figures are disturbed"
}

# Every instance's latest rebalance event is an assignment and together
# they own all partitions of the inputs.
group_stable() { # total
  local total="$1" sum=0 i last
  for ((i = 0; i < ${#pids[@]}; i++)); do
    last="$(grep -E 'msg="?partitions (assigned|revoked)' "$work/reserver-$i.log" | tail -n1 || true)"
    [[ "$last" == *"partitions assigned"* ]] || return 1
    sum=$((sum + $(sed -n 's/.*count=\([0-9]*\).*/\1/p' <<<"$last")))
  done
  ((sum == total))
}

cpu_s() { # pid: user+system CPU seconds
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}

redis_info() { # field
  "${REDIS[@]}" info all | tr -d '\r' | sed -n "s/^$1:\\([0-9.]*\\)$/\\1/p"
}

# Delete what a pass left in Redis: the warehouse's hot state (hash tag),
# the order -> warehouse index and pending-expiry entries of its orders,
# and its catalog entry.
CLEAN_LUA='local n = 0
for _, k in ipairs(KEYS) do
  local hash = string.sub(k, -4) == ":ann"
  local cursor = "0"
  repeat
    local r = redis.call(hash and "HSCAN" or "ZSCAN", k, cursor, "MATCH", ARGV[1], "COUNT", 1000)
    cursor = r[1]
    for i = 1, #r[2], 2 do
      redis.call(hash and "HDEL" or "ZREM", k, r[2][i])
      n = n + 1
    end
  until cursor == "0"
end
return n'
clean_redis() { # run warehouse sku
  local run="$1" wh="$2" sku="$3" keys
  "${REDIS[@]}" --scan --pattern "{w:$wh}:*" | xargs -r -n 500 "${REDIS[@]}" unlink >/dev/null
  "${REDIS[@]}" --scan --pattern "linli:rsv:ow:$run-*" | xargs -r -n 500 "${REDIS[@]}" unlink >/dev/null
  mapfile -t keys < <("${REDIS[@]}" --scan --pattern 'linli:rsv:exp:*')
  if ((${#keys[@]})); then
    "${REDIS[@]}" eval "$CLEAN_LUA" "${#keys[@]}" "${keys[@]}" "$run-*" >/dev/null
  fi
  "${REDIS[@]}" hdel linli:catalog "$sku" >/dev/null
}

# ------------------------------------------------------------------- pass
summary=()
pass() { # instances
  local n="$1" run group wh sku parts i t0 since
  run="rb$(date +%s)p$$n$n"
  group="linli-bench-reserver-$run"
  wh="bench-$run"
  sku="bench-$run"
  wait_foreign_reservers
  log "pass: $n reserver(s), $ORDERS orders, $STOCK units, $USERS users (run $run)"

  "$LOADGEN" --start-at-end "$group" >"$work/start.out" || die "could not start group $group at the end"
  parts="$(field partitions "$work/start.out")"

  pids=()
  for ((i = 0; i < n; i++)); do
    (cd "$REPO" && LINLI_RUNNER_GROUP="$group" LINLI_RUNNER_INSTANCE_ID="$run-$i" \
      LINLI_METRICS_PORT=-1 LINLI_LOG_LEVEL=info exec "$RESERVER") >"$work/reserver-$i.log" 2>&1 &
    pids+=("$!")
  done
  t0=$(now_ms)
  until group_stable "$parts"; do
    for ((i = 0; i < n; i++)); do
      kill -0 "${pids[$i]}" 2>/dev/null || { linli_tail_log "$work/reserver-$i.log"; die "reserver $i exited"; }
    done
    (($(now_ms) - t0 < 60000)) || die "the $n reserver(s) did not share the $parts partitions within 60 s"
    sleep 0.2
  done

  # Stock first, as a shop would before the sale; the timed part starts
  # once the reservers hold it.
  "$LOADGEN" --run-id "$run" --warehouse "$wh" --sku "$sku" --stock "$STOCK" 2>/dev/null ||
    die "listing and restocking failed"
  t0=$(now_ms)
  until [[ "$("${REDIS[@]}" hget "{w:$wh}:avail" "$sku")" == "$STOCK" ]]; do
    (($(now_ms) - t0 < 60000)) || die "the restock of $STOCK units did not reach Redis within 60 s"
    sleep 0.1
  done

  local cmds0 rcpu0 rcpu1
  cmds0="$(redis_info total_commands_processed)"
  rcpu0="$(awk -v a="$(redis_info used_cpu_user)" -v b="$(redis_info used_cpu_sys)" 'BEGIN{print a + b}')"
  since=$(now_ms)
  "$LOADGEN" --count-results "$run" --expect "$ORDERS" --since "$since" \
    --timeout "$TIMEOUT" >"$work/count.out" 2>"$work/count.err" &
  counter_pid=$!
  "$LOADGEN" --run-id "$run" --warehouse "$wh" --sku "$sku" --orders "$ORDERS" \
    --users "$USERS" >"$work/produce.out" || die "producing the orders failed"
  if ! wait "$counter_pid"; then
    counter_pid=""
    cat "$work/count.out" "$work/count.err" >&2
    die "not every order got its result within ${TIMEOUT}s"
  fi
  counter_pid=""
  local cmds1
  cmds1="$(redis_info total_commands_processed)"
  rcpu1="$(awk -v a="$(redis_info used_cpu_user)" -v b="$(redis_info used_cpu_sys)" 'BEGIN{print a + b}')"

  # Peak memory and CPU, read before the processes go.
  local rss=() cpu=() hwm
  for ((i = 0; i < n; i++)); do
    hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/${pids[$i]}/status")"
    rss+=("$hwm")
    cpu+=("$(cpu_s "${pids[$i]}")")
  done

  local rc=0 st
  for ((i = 0; i < n; i++)); do
    kill -TERM "${pids[$i]}"
    st=0
    wait "${pids[$i]}" || st=$?
    if ((st != 0)); then
      linli_tail_log "$work/reserver-$i.log"
      log "reserver $i exited with status $st after SIGTERM"
      rc=1
    fi
  done
  pids=()

  local first done_ms results reserved oos other repeated avail resv
  first="$(field first_send_ms "$work/produce.out")"
  done_ms="$(field done_ms "$work/count.out")"
  results="$(field results "$work/count.out")"
  reserved="$(field reserved "$work/count.out")"
  oos="$(field out_of_stock "$work/count.out")"
  other="$(field other "$work/count.out")"
  repeated="$(field repeated "$work/count.out")"
  avail="$("${REDIS[@]}" hget "{w:$wh}:avail" "$sku")"
  resv="$("${REDIS[@]}" hget "{w:$wh}:resv" "$sku")"
  local elapsed=$((done_ms - first))
  ((elapsed > 0)) || elapsed=1

  local line
  line="$(printf 'instances=%d orders=%d end_to_end_ms=%d orders_per_s=%d produce_rate=%s reserved=%s out_of_stock=%s other=%s repeated=%s redis_avail=%s redis_resv=%s peak_rss_kb=%s reserver_cpu_s=%s redis_cmds_per_order=%s redis_cpu_ms_per_1k_orders=%s' \
    "$n" "$ORDERS" "$elapsed" $((ORDERS * 1000 / elapsed)) \
    "$(field produce_rate "$work/produce.out")" "$reserved" "$oos" "$other" \
    "$repeated" "$avail" "$resv" "$(IFS=,; echo "${rss[*]}")" \
    "$(IFS=,; echo "${cpu[*]}")" \
    "$(awk -v a="$cmds0" -v b="$cmds1" -v m="$ORDERS" 'BEGIN{printf "%.1f", (b - a) / m}')" \
    "$(awk -v a="$rcpu0" -v b="$rcpu1" -v m="$ORDERS" 'BEGIN{printf "%.0f", (b - a) * 1e6 / m}')")"
  echo "$line"
  summary+=("$line")

  [[ "$results" == "$ORDERS" ]] || { log "$results of $ORDERS results"; rc=1; }
  [[ "$reserved" == "$STOCK" ]] || { log "RESERVED $reserved, want exactly $STOCK"; rc=1; }
  [[ "$oos" == $((ORDERS - STOCK)) && "$other" == 0 ]] ||
    { log "want $((ORDERS - STOCK)) OUT_OF_STOCK and nothing else, got $oos and $other other"; rc=1; }
  [[ "$repeated" == 0 ]] ||
    { log "$repeated results published twice (another reserver on the same orders?)"; rc=1; }
  [[ "$avail" == 0 && "$resv" == "$STOCK" ]] ||
    { log "Redis holds available=$avail reserved=$resv, want 0 and $STOCK"; rc=1; }

  if [[ "${BENCH_KEEP_STATE:-0}" != 1 ]]; then
    clean_redis "$run" "$wh" "$sku"
  fi
  ((rc == 0)) || status=1
}

# (pass is not called in a condition: that would switch off set -e inside.)
status=0
for n in $INSTANCES; do
  pass "$n"
done
log "date: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -sr), build $BUILD"
exit "$status"
