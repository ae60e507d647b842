#!/usr/bin/env bash
# bench_notifier.sh - throughput of linli-notifier: notifications/s written
# to linli.notifications.v1, then notifications/s delivered to a local
# webhook (target: 10,000/s to the topic, 2,000/s to the webhook).
#
#   scripts/bench_notifier.sh [notifications] [webhook concurrency]
#                                                    (default 50000 32)
#   BENCH_INSTANCES=n  consume-mode notifiers in the group (default 1)
#   LINLI_RUNNER_BATCH_SIZE=n  their batch size (default 500)
#
# Release build in $BENCH_BUILD_DIR (default build-bench/). Phase 1: a
# `--mode consume` notifier (one channel, webhook enqueue on) reads
# [notifications] ReservationResults that linli-notifyload publishes to the
# shared linli.reservations.v1 (users "<run>-<i>", warehouse "bench-wh");
# the rate is taken between the first and last notification's broker
# timestamps, so start-up does not count. Phase 2: a `--mode send` notifier
# drains the queue phase 1 filled into tests/helpers/linli_test_webhook
# (signatures checked), timed between its first and last request. The
# notifier's Redis keys (its own prefix) are deleted at exit.
# shellcheck disable=SC2317  # cleanup runs from the EXIT trap
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BUILD="${BENCH_BUILD_DIR:-$REPO/build-bench}"
N="${1:-50000}"
CONC="${2:-32}"
TIMEOUT="${BENCH_TIMEOUT:-300}"
INSTANCES="${BENCH_INSTANCES:-1}" # consume-mode notifiers sharing the partitions

log() { printf '[bench-notifier] %s\n' "$*" >&2; }
die() { printf '[bench-notifier] ERROR: %s\n' "$*" >&2; exit 1; }
[[ "$N" =~ ^[1-9][0-9]*$ && "$CONC" =~ ^[1-9][0-9]*$ ]] ||
  die "usage: scripts/bench_notifier.sh [notifications] [webhook concurrency]"

source "$REPO/scripts/lib.sh"
REDIS=(redis-cli -h "$(linli_conf redis host 127.0.0.1)" -p "$(linli_conf redis port 16379)")
REDIS_PASSWORD="$(linli_conf redis password '')"
[[ -n "$REDIS_PASSWORD" ]] && export REDISCLI_AUTH="$REDIS_PASSWORD"

if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  log "configuring a Release build in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLINLI_SANITIZE=OFF \
    -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
fi
cmake -S "$REPO" -B "$BUILD" >/dev/null
grep -q '^LINLI_SANITIZE:BOOL=OFF' "$BUILD/CMakeCache.txt" ||
  die "$BUILD is a sanitizer build: it would measure ASan (set BENCH_BUILD_DIR)"
log "building linli-notifier, linli-notifyload, linli-loadgen, linli_test_webhook (Release)"
cmake --build "$BUILD" --target linli-notifier linli-notifyload linli-loadgen \
  linli_test_webhook -j2 >/dev/null
NOTIFIER="$BUILD/consumers/notifier/linli-notifier"
LOAD="$BUILD/tools/linli-notifyload"
LOADGEN="$BUILD/tools/linli-loadgen"
HOOK="$BUILD/tests/linli_test_webhook"

if ! bash "$REPO/scripts/stack.sh" status >/dev/null 2>&1; then
  log "stack not up: scripts/stack.sh up"
  BUILD_DIR="$BUILD" bash "$REPO/scripts/stack.sh" up >&2
fi

RUN="nbench$(date +%s)$$"
PREFIX="bench-$RUN"
SECRET="bench-secret-$RUN"
work="$(mktemp -d)"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "${REDIS[@]}" --scan --pattern "{$PREFIX:*" | xargs -r -n 500 "${REDIS[@]}" unlink >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -n1; }

cd "$REPO"
"$HOOK" --port-file "$work/port" --log "$work/hook.txt" --secret "$SECRET" &
pids+=($!)
for ((i = 0; i < 100; i++)); do [[ -s "$work/port" ]] && break; sleep 0.1; done
PORT="$(cat "$work/port")"

GROUP="linli-notifier-$RUN"
"$LOADGEN" --start-at-end "$GROUP" \
  --topics "$(linli_topics reservations groupbuy.settlements routes delivery)" >/dev/null

export LINLI_RUNNER_GROUP="$GROUP" LINLI_NOTIFIER_REDIS_PREFIX="$PREFIX" \
  LINLI_NOTIFIER_CHANNELS=app_push LINLI_NOTIFIER_REMINDER_LEAD_S=0 \
  LINLI_NOTIFIER_RATE_PER_USER_MIN=0 LINLI_NOTIFIER_QUIET_HOURS= \
  LINLI_NOTIFIER_WEBHOOK_URL="http://127.0.0.1:$PORT/hook" \
  LINLI_NOTIFIER_WEBHOOK_SECRET="$SECRET" \
  LINLI_NOTIFIER_WEBHOOK_CONCURRENCY="$CONC" LINLI_METRICS_PORT=0 LINLI_LOG_LEVEL=warn

log "phase 1: $N ReservationResults -> $INSTANCES linli-notifier --mode consume -> $(linli_topic notifications)"
"$LOAD" --measure "$RUN" --count "$N" --timeout "$TIMEOUT" >"$work/measure.txt" &
mpid=$!
for ((i = 0; i < 100; i++)); do grep -q ready "$work/measure.txt" 2>/dev/null && break; sleep 0.1; done
for ((k = 0; k < INSTANCES; k++)); do
  # An instance id each: the same transactional.id would fence the other.
  LINLI_RUNNER_INSTANCE_ID="$RUN-$k" LINLI_LOG_LEVEL=info \
    ${BENCH_WRAP:-} "$NOTIFIER" --mode consume 2>"$work/consume-$k.log" &
  pids+=($!)
done
# The group settles before the first record: a member joining while the
# other works stops both for a rebalance. Settled: every member's latest
# assignment event is an assignment of some partitions.
group_settled() {
  local k last
  for ((k = 0; k < INSTANCES; k++)); do
    last="$(grep -E 'msg="partitions (assigned|revoked)"' "$work/consume-$k.log" 2>/dev/null | tail -n1)"
    [[ "$last" == *'msg="partitions assigned"'* && "$last" != *" count=0"* ]] || return 1
  done
}
for ((i = 0; i < 600; i++)); do group_settled && break; sleep 0.1; done
group_settled || die "phase 1: the notifiers' group did not settle in 60 s"
"$LOAD" --produce "$RUN" --count "$N" >"$work/produce.txt"
wait "$mpid" || die "phase 1: $(cat "$work/measure.txt" | tail -n1)"
topic_rate="$(field rate "$work/measure.txt")"
log "topic: $(tail -n1 "$work/measure.txt")"

log "phase 2: linli-notifier --mode send (concurrency $CONC) -> local webhook"
"$NOTIFIER" --mode send 2>"$work/send.log" &
pids+=($!)
for ((i = 0; i < TIMEOUT * 10; i++)); do
  (($(grep -c " 200 $RUN-" "$work/hook.txt" || true) >= N)) && break
  sleep 0.1
done
read -r got bad first last < <(awk -v run="$RUN-" \
  'index($4, run) == 1 { n++; if ($2 != 1) b++; if (f == "") f = $5; l = $5 } END { print n + 0, b + 0, f "", l "" }' "$work/hook.txt")
((got >= N)) || die "phase 2: the webhook received $got of $N"
((bad == 0)) || die "phase 2: $bad requests with a bad signature"
hook_rate=$(awk -v n="$got" -v f="$first" -v l="$last" 'BEGIN { printf "%.0f", (l > f) ? n * 1000 / (l - f) : 0 }')
printf 'notifier: %s notifications, %s consumer(s), batch %s: topic %s/s (target 10000), webhook %s/s (target 2000, %d requests for %d ids, concurrency %s)\n' \
  "$N" "$INSTANCES" "${LINLI_RUNNER_BATCH_SIZE:-500}" "$topic_rate" "$hook_rate" "$got" "$N" "$CONC"
