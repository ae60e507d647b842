#!/usr/bin/env bash
# bench.sh - every throughput figure of issue 8 in one run on one broker,
# one summary line per figure (key=value, on stdout; progress on stderr):
#
#   ceiling.produce    plain produce (linli-loadgen: idempotent, acks=all)
#   ceiling.txcopy     linli-txcopy: a transactional consume-produce copy of
#                      the same order records at the reserver's transaction
#                      size (runner.batch_size), no Redis, no database
#   reserver.N         linli-reserver alone, N instances (each of
#                      BENCH_INSTANCES): ORDERS one-unit orders against STOCK
#                      units, end to end: first produce until the last
#                      ReservationResult is readable read_committed
#   ratio.N            reserver.N / ceiling.txcopy (same transaction size)
#   ledger.N           N linli-ledgers alone (BENCH_LEDGER_INSTANCES): they
#                      record (PostgreSQL) the order events of the first
#                      reserver pass, replayed
#   pipeline           reserver(s) and ledger together: first produce until
#                      every order's RESERVED/REJECTED status is published
#                      on linli.order-status.v1 (and recorded)
#   gateway.full       POST /v1/orders with wrk, WRK_CONNS connections
#   gateway.half       the same at half the rate gateway.full reached
#   redis.memory       Redis used_memory before and after MEM_ORDERS orders
#                      that all reached a final state (RESERVED ones expire
#                      unpaid) and passed their retention; as the server is
#                      shared, also the run's own keys and their MEMORY
#                      USAGE (run_keys / run_bytes: before / at the end of
#                      the sale / after the retention)
#   settler            linli-settler alone (BENCH_SETTLER_INSTANCES
#                      instances, default 2, BENCH_SETTLER_BATCH records per
#                      transaction, default 2000): JOINS joins over
#                      CAMPAIGNS group-buys, end to end: first produce until
#                      the last JoinResult is readable read_committed
#   notifier           scripts/bench_notifier.sh: notifications/s to the
#                      topic (2 instances, batches of 2,000) and to a local
#                      webhook
#   route              libdomain's router on 1,000 and 10,000 seeded stops
#                      (linli-bench_route; no stack), with and without time
#                      windows: planning time and distance saved
#   peak_rss           VmHWM of every process the bench started
#
# Every pass checks its counts and the run fails (exit 1, "FAILED" in the
# line) when one is wrong: one result per order, RESERVED = stock, the rest
# OUT_OF_STOCK, nothing repeated, Redis left with 0 available and STOCK
# reserved, ledger rows = orders, every copy once, every answered POST
# published once.
#
#   scripts/bench.sh                    (full size: run it rarely, the
#                                        machine is shared)
#   BENCH_ORDERS=20000 BENCH_STOCK=5000 scripts/bench.sh     (quick)
#
# Knobs (environment):
#   BENCH_ORDERS      orders per pass (default 200000)
#   BENCH_STOCK       units on sale per pass (default ORDERS/4)
#   BENCH_USERS       distinct users (default 1000)
#   BENCH_INSTANCES   reserver instance counts, one pass each (default "1 2")
#   BENCH_BATCH       records per transaction for the reserver, the ledger
#                     and txcopy (default: runner.batch_size of the config)
#   BENCH_PASSES      which passes, in this order (default "ceiling reserver
#                     ledger pipeline gateway memory"); ledger needs reserver
#   BENCH_KEEP_LOGS   a folder: every process's log is copied there at exit
#   BENCH_LEDGER_LOG_LEVEL  the ledgers' log level (default info; debug
#                     logs each batch's transaction and publish times)
#   BENCH_LEDGER_INSTANCES  ledgers of the ledger pass, in one consumer
#                     group (default 2)
#   BENCH_PIPELINE_INSTANCES  reservers beside the ledger (default: the
#                     largest of BENCH_INSTANCES)
#   BENCH_MEM_ORDERS  orders of the memory pass (default ORDERS)
#   BENCH_RETENTION_S retention of final orders in the memory pass
#                     (default 5), set through BENCH_RETENTION_KEY (default
#                     orders.retention_s, i.e. LINLI_ORDERS_RETENTION_S);
#                     unpaid reservations expire after 1 s there
#   BENCH_MEM_WAIT_S  longest wait for those expiries (default 300)
#   BENCH_WRK_SECONDS, BENCH_WRK_CONNS, BENCH_WRK_THREADS  wrk (15, 32, 2)
#   BENCH_TIMEOUT     seconds one pass may take (default 900)
#   BENCH_BUILD_DIR   Release build (-O3, no sanitizer) it builds and uses
#                     (default build-bench/)
#   BENCH_RESERVER_TOPICS  short names of the reserver's inputs (default
#                     "catalog inventory orders groupbuy.settlements")
#   BENCH_RESERVER, BENCH_LEDGER, BENCH_GATEWAY  other binaries to measure
#                     (e.g. an older build, for before/after)
#   BENCH_PORT, BENCH_TOKEN  the bench's gateway port and app token (18480,
#                     dev-shop-a-token)
#   BENCH_KEEP_STATE  1 keeps the bench warehouses' Redis state
#   LINLI_CRYPTO_KEY  the ledger's key (default: scripts/demo.sh's dev key)
#   BENCH_PERF        a folder: perf record -g of the reservers and ledgers
#                     during each pass into <pass>.perf.data there, with the
#                     top of perf report in <pass>.txt (on-CPU samples only)
#
# Isolation on a shared machine: each pass has its own run id, warehouse,
# SKU, consumer groups (started at the end of their inputs; the ledger's
# offsets are put into PostgreSQL's consumer_offsets for its own group),
# and txcopy its own topics (deleted afterwards). Counts only look at the
# run's own order ids. It measures, waits for and stops only the processes
# it started. Other clients of the shared broker, Redis and PostgreSQL still
# compete for the two cores: the load average is printed with each line.
# A linli-reserver or linli-ledger it did not start (another checkout's
# test, another bench) reads the same shared topics and Redis and may take
# part of the work: the counts stay right but the figure is not this run's.
# Such a line says disturbed_by=<pids> and the run exits 2 (1 if a count
# was wrong). It never waits for, signals or measures those processes.
# The reverse holds too: the bench's reservers read the shared
# linli.orders.v1 and process other clients' orders while they run (the
# reserver has no private-topic setting like ledger.topic_suffix yet).
# The stack is started (scripts/stack.sh up) if it is not up, and left up.
# Left behind on purpose: the ledger's rows of the bench orders (order_events
# is append-only) and the bench groups' consumer_offsets rows.
# shellcheck disable=SC2317  # cleanup runs from the EXIT trap
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"

ORDERS="${BENCH_ORDERS:-200000}"
STOCK="${BENCH_STOCK:-$((ORDERS / 4))}"
USERS="${BENCH_USERS:-1000}"
INSTANCES="${BENCH_INSTANCES:-1 2}"
LEDGER_INSTANCES="${BENCH_LEDGER_INSTANCES:-2}"
BATCH="${BENCH_BATCH:-$(linli_conf runner batch_size 500)}"
PASSES="${BENCH_PASSES:-ceiling reserver ledger pipeline gateway settler notifier route memory}"
JOINS="${BENCH_JOINS:-200000}"
CAMPAIGNS="${BENCH_CAMPAIGNS:-2000}"
SETTLER_N="${BENCH_SETTLER_INSTANCES:-2}"
SETTLER_BATCH="${BENCH_SETTLER_BATCH:-2000}"
MEM_ORDERS="${BENCH_MEM_ORDERS:-$ORDERS}"
RETENTION_S="${BENCH_RETENTION_S:-5}"
RETENTION_KEY="${BENCH_RETENTION_KEY:-orders.retention_s}"
MEM_WAIT_S="${BENCH_MEM_WAIT_S:-300}"
WRK_SECONDS="${BENCH_WRK_SECONDS:-15}"
WRK_CONNS="${BENCH_WRK_CONNS:-32}"
WRK_THREADS="${BENCH_WRK_THREADS:-2}"
TIMEOUT="${BENCH_TIMEOUT:-900}"
BUILD="${BENCH_BUILD_DIR:-$REPO/build-bench}"
if [[ -n "${BENCH_PERF:-}" ]]; then
  mkdir -p "$BENCH_PERF"
  BENCH_PERF="$(cd "$BENCH_PERF" && pwd)"
fi
PORT="${BENCH_PORT:-18480}"
TOKEN="${BENCH_TOKEN:-dev-shop-a-token}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1=$2: a positive integer"; }
posint BENCH_ORDERS "$ORDERS"
posint BENCH_STOCK "$STOCK"
posint BENCH_USERS "$USERS"
posint BENCH_SETTLER_INSTANCES "$SETTLER_N"
posint BENCH_SETTLER_BATCH "$SETTLER_BATCH"
posint BENCH_BATCH "$BATCH"
posint BENCH_MEM_ORDERS "$MEM_ORDERS"
posint BENCH_RETENTION_S "$RETENTION_S"
posint BENCH_MEM_WAIT_S "$MEM_WAIT_S"
posint BENCH_WRK_SECONDS "$WRK_SECONDS"
posint BENCH_WRK_CONNS "$WRK_CONNS"
posint BENCH_WRK_THREADS "$WRK_THREADS"
posint BENCH_TIMEOUT "$TIMEOUT"
((STOCK <= ORDERS && STOCK <= MEM_ORDERS)) ||
  die "stock ($STOCK) must not exceed the orders: a flash sale sells out"
MAXN=0
for n in $INSTANCES; do
  [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "BENCH_INSTANCES: '$n' is not an instance count (1..99)"
  ((n > MAXN)) && MAXN=$n
done
((MAXN > 0)) || die "BENCH_INSTANCES is empty"
PIPE_N="${BENCH_PIPELINE_INSTANCES:-$MAXN}"
posint BENCH_PIPELINE_INSTANCES "$PIPE_N"
for p in $PASSES; do
  case "$p" in
    ceiling | reserver | ledger | pipeline | gateway | settler | notifier | route | memory) ;;
    *) die "BENCH_PASSES: unknown pass '$p'" ;;
  esac
done
has_pass() { [[ " $PASSES " == *" $1 "* ]]; }
[[ "$LEDGER_INSTANCES" =~ ^[1-9]$ ]] || die "BENCH_LEDGER_INSTANCES must be one count, 1-9"
if has_pass ledger && ! has_pass reserver; then
  die "the ledger pass replays the first reserver pass: add 'reserver' to BENCH_PASSES"
fi
for tool in redis-cli psql; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
if has_pass gateway; then
  command -v wrk >/dev/null || die "wrk is not installed (apt-get install -y wrk)"
fi

REDIS=(redis-cli -h "$(linli_conf redis host 127.0.0.1)" -p "$(linli_conf redis port 16379)")
REDIS_PASSWORD="$(linli_conf redis password '')"
[[ -n "$REDIS_PASSWORD" ]] && export REDISCLI_AUTH="$REDIS_PASSWORD"
PG="$(linli_conf pg conninfo 'host=127.0.0.1 port=15432 dbname=linli user=linli')"
# The ledger encrypts personal data; the bench orders carry none that
# matters, so the demo's development key does (as scripts/demo.sh).
export LINLI_CRYPTO_KEY="${LINLI_CRYPTO_KEY:-6c696e6c692d64656d6f2d6b65792d6e6f742d666f722d70726f647563743031}"
# Every topic the ledger reads (all of DESIGN.md's but its own output).
# linli-reserver's inputs (an older reserver, BENCH_RESERVER, read no
# settlements: BENCH_RESERVER_TOPICS="catalog inventory orders").
# shellcheck disable=SC2086
RESERVER_TOPICS="$(linli_topics ${BENCH_RESERVER_TOPICS:-catalog inventory orders groupbuy.settlements})"
LEDGER_TOPICS="$(linli_topics catalog inventory orders groupbuy reservations groupbuy.settlements fulfillment routes delivery refunds notifications),$(linli_conf runner dlq_topic "$(linli_topic dlq)")"

# ------------------------------------------------------------------ build
# Release (-O3, no sanitizer): the ASan build would measure the sanitizer.
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  log "configuring a Release build in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLINLI_SANITIZE=OFF >/dev/null
fi
cmake -S "$REPO" -B "$BUILD" >/dev/null # new sources (globs) need it
grep -q '^LINLI_SANITIZE:BOOL=OFF' "$BUILD/CMakeCache.txt" ||
  die "$BUILD is a sanitizer build: it would measure ASan (set BENCH_BUILD_DIR)"
grep -q '^CMAKE_BUILD_TYPE:STRING=Release' "$BUILD/CMakeCache.txt" ||
  die "$BUILD is not a Release build (set BENCH_BUILD_DIR)"
log "building the Release binaries in $BUILD"
cmake --build "$BUILD" -j2 --target linli-reserver linli-ledger linli-gateway \
  linli-settler linli-bench_route linli-loadgen linli-txcopy linli-migrate >/dev/null
RESERVER="${BENCH_RESERVER:-$BUILD/consumers/reserver/linli-reserver}"
LEDGER="${BENCH_LEDGER:-$BUILD/consumers/ledger/linli-ledger}"
SETTLER="${BENCH_SETTLER:-$BUILD/consumers/settler/linli-settler}"
GATEWAY="${BENCH_GATEWAY:-$BUILD/producers/gateway/linli-gateway}"
LOADGEN="$BUILD/tools/linli-loadgen"
TXCOPY="$BUILD/tools/linli-txcopy"
for b in "$RESERVER" "$LEDGER" "$GATEWAY"; do
  [[ -x "$b" ]] || die "$b is not an executable"
done

# ------------------------------------------------------------------ stack
if ! bash "$REPO/scripts/stack.sh" status >/dev/null 2>&1; then
  log "stack not up: scripts/stack.sh up"
  BUILD_DIR="$BUILD" bash "$REPO/scripts/stack.sh" up >&2
fi

# ------------------------------------------------------- own processes
work="$(mktemp -d)"
OWN=()     # pids of every process this script started and has not reaped
DROP=()    # "in out" topic pairs to delete at exit
CLEAN=()   # "run warehouse sku" Redis state to delete at exit
cleanup() {
  local p t
  for p in "${OWN[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${OWN[@]}"; do wait "$p" 2>/dev/null || true; done
  for t in "${DROP[@]}"; do
    # shellcheck disable=SC2086  # "in out"
    set -- $t
    "$TXCOPY" --from "$1" --into "$2" --drop 2>/dev/null || true
  done
  if [[ "${BENCH_KEEP_STATE:-0}" != 1 ]] && ((${#CLEAN[@]})); then
    clean_redis || true
  fi
  if [[ -n "${BENCH_KEEP_LOGS:-}" ]]; then
    mkdir -p "$BENCH_KEEP_LOGS" && cp -r "$work"/. "$BENCH_KEEP_LOGS"/ || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # through the EXIT trap

# start NAME CMD...: runs CMD in the background from the repo, output in
# $work/NAME.log; its pid is appended to OWN and left in STARTED.
start() {
  local name="$1"
  shift
  (cd "$REPO" && exec "$@") >"$work/$name.log" 2>&1 &
  STARTED=$!
  OWN+=("$STARTED")
}
forget() { # pid: reaped, no longer ours
  local keep=() p
  for p in "${OWN[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  OWN=("${keep[@]}")
}
# stop PID NAME: SIGTERM, must exit 0.
stop() {
  local st=0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" || st=$?
  forget "$1"
  if ((st != 0)); then
    linli_tail_log "$work/$2.log"
    log "$2 (pid $1) exited with status $st after SIGTERM"
    return 1
  fi
}

now_ms() { date +%s%3N; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/'; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -n1; }
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo -1; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
redis_info() { "${REDIS[@]}" info all | tr -d '\r' | sed -n "s/^$1:\\([0-9.]*\\)$/\\1/p"; }
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }'; }
psql_q() { psql "$PG" -v ON_ERROR_STOP=1 -Atq "$@"; }

RESULT=()  # summary lines
FAILED=0
DISTURBED=0
RSS=()     # "process=kB" of every process started
emit() { # name fields...: one summary line; checks fail it
  local line
  line="$(printf '%-16s %s load=%s' "$1" "$2" "$(loadavg)")"
  echo "$line"
  RESULT+=("$line")
}
check() { # condition-text message
  if ! eval "$1"; then
    log "CHECK FAILED: $2"
    FAILED=1
    CHECK_OK=0
  fi
}

# foreign: pids of linli-reserver and linli-ledger processes this script
# did not start (comma-separated; empty if none).
foreign() {
  local p out=()
  for p in $(pgrep -x 'linli-reserver|linli-ledger' || true); do
    [[ " ${OWN[*]} " == *" $p "* ]] || out+=("$p")
  done
  (IFS=,; echo "${out[*]}")
}
# disturbed A B: the union of two foreign() samples as " disturbed_by=...",
# or nothing.
disturbed() {
  local all
  all="$(tr ',' '\n' <<<"$1,$2" | sed '/^$/d' | sort -un | paste -sd, -)"
  [[ -z "$all" ]] && return 0
  log "other linli consumers ran during this pass ($all): the figure may include their work"
  echo " disturbed_by=$all"
}

# perf_start LABEL NAME...: with BENCH_PERF, profile those processes.
PERF_PID=""
perf_start() {
  [[ -n "${BENCH_PERF:-}" ]] || return 0
  local label="$1" pids=() name
  shift
  for name in "$@"; do pids+=("${PIDOF[$name]}"); done
  mkdir -p "$BENCH_PERF"
  start "perf-$label" perf record -F 499 -g -o "$BENCH_PERF/$label.perf.data" \
    -p "$(IFS=,; echo "${pids[*]}")"
  PERF_PID=$STARTED
}
perf_stop() { # label
  [[ -n "$PERF_PID" ]] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  forget "$PERF_PID"
  PERF_PID=""
  perf report -i "$BENCH_PERF/$1.perf.data" --stdio --no-children -g none \
    --percent-limit 0.5 --sort comm,dso,sym 2>/dev/null | grep -v '^#' |
    grep -v '^$' | head -n 60 >"$BENCH_PERF/$1.txt" || true
  log "perf: $BENCH_PERF/$1.perf.data (top entries in $BENCH_PERF/$1.txt)"
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
# rsv_keys_re RUN WH: an ERE for one run's reserver keys (its warehouse's
# hash tag, lib.sh linli_rsv_key, and its order index entries).
rsv_keys_re() {
  local tag
  tag=$(linli_rsv_key "$2" "" | sed 's/[][{}.*+?^$|()\\]/\\&/g')
  printf '^%s|^%s%s-' "$tag" "$LINLI_RSV_ORDER_WH" "$1"
}
# One scan of the key space for all runs (it is shared and large).
clean_redis() {
  local t run wh sku re="" keys
  for t in "${CLEAN[@]}"; do
    read -r run wh sku <<<"$t"
    re+="${re:+|}$(rsv_keys_re "$run" "$wh")"
    "${REDIS[@]}" hdel "$LINLI_RSV_CATALOG" "$sku" >/dev/null
  done
  "${REDIS[@]}" --scan | grep -E "$re" |
    xargs -r -n 500 "${REDIS[@]}" unlink >/dev/null || true
  mapfile -t keys < <("${REDIS[@]}" --scan --pattern "$LINLI_RSV_EXPIRY*")
  if ((${#keys[@]})); then
    for t in "${CLEAN[@]}"; do
      read -r run wh sku <<<"$t"
      "${REDIS[@]}" eval "$CLEAN_LUA" "${#keys[@]}" "${keys[@]}" "$run-*" >/dev/null
    done
  fi
}

# Consumer group GROUP starts at the current end of TOPICS (Kafka commit);
# the per-partition ends are left in $work/GROUP.ends.
start_at_end() { # group topics
  "$LOADGEN" --start-at-end "$1" --topics "$2" >"$work/$1.ends" ||
    die "could not start group $1 at the end of its inputs"
}
# The same positions as the ledger's offsets (PostgreSQL consumer_offsets,
# where it resumes), from an ends file.
ledger_offsets() { # group endsfile
  local sql
  sql="$(awk -v g="$1" '$1 == "end" {
      split($2, t, "="); split($3, p, "="); split($4, o, "=")
      printf "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES (%s, %s, %s, %s);\n",
        "\047" g "\047", "\047" t[2] "\047", p[2], o[2] }' "$2")"
  [[ -n "$sql" ]] || die "no end offsets in $2"
  psql_q -c "BEGIN; $sql COMMIT;" >/dev/null || die "cannot set the ledger's offsets for $1"
}

# Every instance's latest rebalance event is an assignment and together
# they own all partitions of the inputs (total 0: any assignment, for a
# single instance whose exact topic list is its own business).
group_stable() { # total names...
  local total="$1" sum=0 name last
  shift
  for name in "$@"; do
    last="$(grep -E 'msg="?partitions (assigned|revoked)' "$work/$name.log" | tail -n1 || true)"
    [[ "$last" == *"partitions assigned"* ]] || return 1
    sum=$((sum + $(sed -n 's/.*count=\([0-9]*\).*/\1/p' <<<"$last")))
  done
  ((total == 0 ? sum > 0 : sum == total))
}
wait_stable() { # total names... (started with start, pids in PIDOF)
  local total="$1" t0 name
  shift
  t0=$(now_ms)
  until group_stable "$total" "$@"; do
    for name in "$@"; do
      kill -0 "${PIDOF[$name]}" 2>/dev/null || { linli_tail_log "$work/$name.log"; die "$name exited"; }
    done
    (($(now_ms) - t0 < 90000)) || die "$* did not share the $total partitions within 90 s"
    sleep 0.2
  done
}
declare -A PIDOF

# start_reservers RUN GROUP N [ENV...]: N reservers in GROUP; names in NAMES.
start_reservers() {
  local run="$1" group="$2" n="$3" i
  shift 3
  NAMES=()
  for ((i = 0; i < n; i++)); do
    start "reserver-$run-$i" env LINLI_RUNNER_GROUP="$group" \
      LINLI_RUNNER_INSTANCE_ID="$run-$i" LINLI_RUNNER_BATCH_SIZE="$BATCH" \
      LINLI_METRICS_PORT=-1 LINLI_LOG_LEVEL=info "$@" "$RESERVER"
    PIDOF["reserver-$run-$i"]=$STARTED
    NAMES+=("reserver-$run-$i")
  done
}

# list and restock; wait until the reservers hold the stock
restock() { # run wh sku stock
  local t0
  "$LOADGEN" --run-id "$1" --warehouse "$2" --sku "$3" --stock "$4" 2>/dev/null ||
    die "listing and restocking failed"
  t0=$(now_ms)
  until [[ "$("${REDIS[@]}" hget "$(linli_rsv_key "$2" avail)" "$3")" == "$4" ]]; do
    (($(now_ms) - t0 < 60000)) || die "the restock of $4 units did not reach Redis within 60 s"
    sleep 0.1
  done
}

# rss_of NAME...: RSS_LINE="kB,kB..." (VmHWM) of running processes, also
# kept for the peak_rss line.
rss_of() {
  local out=() name k
  for name in "$@"; do
    k="$(hwm "${PIDOF[$name]}")"
    out+=("$k")
    RSS+=("$name=$k")
  done
  RSS_LINE="$(IFS=,; echo "${out[*]}")"
}

# ------------------------------------------------------------------ ceiling
CEIL_RATE=""
pass_ceiling() {
  local run="cp$(date +%s)$$" parts in out plain
  in="bench.$run.in"
  out="bench.$run.out"
  plain="bench.$run.plain"
  parts="$("$LOADGEN" --start-at-end "linli-bench-parts-$run" --topics "$(linli_topic orders)" | field partitions /dev/stdin)"
  [[ "$parts" =~ ^[1-9][0-9]*$ ]] || die "cannot read the partition count of $(linli_topic orders)"
  log "ceiling: plain produce of $ORDERS records into $plain ($parts partitions)"
  DROP+=("$plain $plain.unused")
  "$TXCOPY" --from "$plain" --into "$plain.unused" --create "$parts" --expect 0 ||
    die "cannot create $plain"
  "$LOADGEN" --run-id "$run" --warehouse "w$run" --sku "s$run" --orders "$ORDERS" \
    --users "$USERS" --orders-topic "$plain" >"$work/plain.out" || die "plain produce failed"
  emit ceiling.produce "records=$ORDERS records_per_s=$(field produce_rate "$work/plain.out") acks=all idempotent=yes"

  log "ceiling: linli-txcopy $in -> $out, $BATCH records per transaction"
  DROP+=("$in $out")
  start txcopy "$TXCOPY" --from "$in" --into "$out" --create "$parts" \
    --expect "$ORDERS" --batch "$BATCH" --timeout "$TIMEOUT"
  local pid=$STARTED t0
  t0=$(now_ms)
  until grep -q '^ready' "$work/txcopy.log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/txcopy.log" >&2; die "linli-txcopy exited"; }
    (($(now_ms) - t0 < 60000)) || die "linli-txcopy not ready within 60 s"
    sleep 0.1
  done
  "$LOADGEN" --run-id "$run" --warehouse "w$run" --sku "s$run" --orders "$ORDERS" \
    --users "$USERS" --orders-topic "$in" >"$work/ceil-produce.out" || die "producing the copy's input failed"
  local st=0
  wait "$pid" || st=$?
  forget "$pid"
  ((st == 0)) || { cat "$work/txcopy.log" >&2; die "linli-txcopy failed"; }
  "$LOADGEN" --count-results "$run" --expect "$ORDERS" --kind key --topic "$out" \
    --since 0 --timeout 120 >"$work/ceil-count.out" || true
  local first done_ms e2e
  first="$(field first_send_ms "$work/ceil-produce.out")"
  done_ms="$(field done_ms "$work/txcopy.log")"
  e2e=$((done_ms - first))
  CEIL_RATE="$(rate "$ORDERS" "$e2e")"
  RSS+=("txcopy=$(field peak_rss_kb "$work/txcopy.log")")
  CHECK_OK=1
  check '[[ "$(field results "$work/ceil-count.out")" == "$ORDERS" ]]' "txcopy: $(field results "$work/ceil-count.out") of $ORDERS copies readable"
  check '[[ "$(field repeated "$work/ceil-count.out")" == 0 ]]' "txcopy: copies repeated"
  emit ceiling.txcopy "batch=$BATCH records=$ORDERS end_to_end_ms=$e2e records_per_s=$CEIL_RATE copy_only_per_s=$(field records_per_s "$work/txcopy.log") transactions=$(field transactions "$work/txcopy.log") commit_ms_mean=$(field commit_ms_mean "$work/txcopy.log") commit_ms_max=$(field commit_ms_max "$work/txcopy.log") copies=$(field results "$work/ceil-count.out") repeated=$(field repeated "$work/ceil-count.out") peak_rss_kb=$(field peak_rss_kb "$work/txcopy.log") $( ((CHECK_OK)) || echo FAILED)"
}

# ----------------------------------------------------------------- reserver
LEDGER_REPLAY_RUN="" # the first reserver pass: the ledger pass replays it
LEDGER_REPLAY_ENDS=""
# reserver_pass N LABEL [ledger]: one flash sale; with "ledger", a ledger
# runs beside the reservers and the end is every order's status published.
reserver_pass() {
  local n="$1" label="$2" with_ledger="${3:-}" run group wh sku parts lgroup=""
  run="rb$(date +%s)$$n$n"
  group="linli-bench-reserver-$run"
  wh="bench-$run"
  sku="bench-$run"
  log "$label: $n reserver(s)${with_ledger:+ and a ledger}, $ORDERS orders, $STOCK units, batch $BATCH (run $run)"
  start_at_end "$group" "$RESERVER_TOPICS"
  parts="$(field partitions "$work/$group.ends")"
  if [[ -z "$with_ledger" && -z "$LEDGER_REPLAY_RUN" ]]; then
    # What the ledger pass will replay: everything from here on.
    start_at_end "linli-bench-ledger-replay-$run" "$LEDGER_TOPICS"
    LEDGER_REPLAY_RUN="$run"
    LEDGER_REPLAY_ENDS="$work/linli-bench-ledger-replay-$run.ends"
  fi
  CLEAN+=("$run $wh $sku")
  start_reservers "$run" "$group" "$n"
  local names=("${NAMES[@]}")
  wait_stable "$parts" "${names[@]}"
  if [[ -n "$with_ledger" ]]; then
    lgroup="linli-bench-ledger-$run"
    start_at_end "$lgroup" "$LEDGER_TOPICS"
    ledger_offsets "$lgroup" "$work/$lgroup.ends"
    start "ledger-$run" env LINLI_RUNNER_GROUP="$lgroup" LINLI_RUNNER_INSTANCE_ID="$run-l" \
      LINLI_RUNNER_BATCH_SIZE="$BATCH" LINLI_METRICS_PORT=-1 LINLI_LOG_LEVEL=${BENCH_LEDGER_LOG_LEVEL:-info} "$LEDGER"
    PIDOF["ledger-$run"]=$STARTED
    wait_stable 0 "ledger-$run"
    names+=("ledger-$run")
  fi
  restock "$run" "$wh" "$sku" "$STOCK"

  local since cpid f0
  f0="$(foreign)"
  perf_start "$label" "${names[@]}"
  since=$(now_ms)
  "$LOADGEN" --count-results "$run" --expect "$ORDERS" --since "$since" \
    --timeout "$TIMEOUT" ${with_ledger:+--kind status} >"$work/count-$run.out" 2>"$work/count-$run.err" &
  cpid=$!
  OWN+=("$cpid")
  "$LOADGEN" --run-id "$run" --warehouse "$wh" --sku "$sku" --orders "$ORDERS" \
    --users "$USERS" >"$work/produce-$run.out" || die "producing the orders failed"
  local cst=0
  wait "$cpid" || cst=$?
  forget "$cpid"
  if ((cst != 0)); then
    cat "$work/count-$run.out" "$work/count-$run.err" >&2
    for name in "${names[@]}"; do linli_tail_log "$work/$name.log"; done
    die "$label: not every order got its outcome within ${TIMEOUT}s"
  fi
  perf_stop "$label"
  local dist
  dist="$(disturbed "$f0" "$(foreign)")"
  if [[ -n "$dist" ]]; then DISTURBED=1; fi
  local rss cpu=() name
  rss_of "${names[@]}"
  rss="$RSS_LINE"
  for name in "${names[@]}"; do cpu+=("$(cpu_s "${PIDOF[$name]}")"); done
  local ok=1
  for name in "${names[@]}"; do stop "${PIDOF[$name]}" "$name" || ok=0; done

  local c="$work/count-$run.out" first done_ms e2e avail resv
  first="$(field first_send_ms "$work/produce-$run.out")"
  done_ms="$(field done_ms "$c")"
  e2e=$((done_ms - first))
  avail="$("${REDIS[@]}" hget "$(linli_rsv_key "$wh" avail)" "$sku")"
  resv="$("${REDIS[@]}" hget "$(linli_rsv_key "$wh" resv)" "$sku")"
  CHECK_OK=$ok
  ((ok)) || FAILED=1
  check '[[ "$(field results "$c")" == "$ORDERS" ]]' "$label: $(field results "$c") of $ORDERS outcomes"
  check '[[ "$(field reserved "$c")" == "$STOCK" ]]' "$label: RESERVED $(field reserved "$c"), want exactly $STOCK"
  check '[[ "$(field out_of_stock "$c")" == $((ORDERS - STOCK)) && "$(field other "$c")" == 0 ]]' \
    "$label: want $((ORDERS - STOCK)) OUT_OF_STOCK and nothing else, got $(field out_of_stock "$c") and $(field other "$c") other"
  check '[[ "$(field repeated "$c")" == 0 ]]' "$label: $(field repeated "$c") outcomes published twice"
  check '[[ "$avail" == 0 && "$resv" == "$STOCK" ]]' "$label: Redis holds available=$avail reserved=$resv, want 0 and $STOCK"
  local extra=""
  if [[ -n "$with_ledger" ]]; then
    local rows
    rows="$(psql_q -c "SELECT count(*), count(*) FILTER (WHERE state = 'RESERVED'), count(*) FILTER (WHERE state = 'REJECTED') FROM orders WHERE order_id >= '$run-' AND order_id < '$run.'")"
    check '[[ "$rows" == "$ORDERS|$STOCK|$((ORDERS - STOCK))" ]]' \
      "$label: PostgreSQL orders rows (all|RESERVED|REJECTED) $rows, want $ORDERS|$STOCK|$((ORDERS - STOCK))"
    extra=" ledger_rows=${rows//|/,}"
  fi
  RES_RATE="$(rate "$ORDERS" "$e2e")"
  emit "$label" "instances=$n batch=$BATCH orders=$ORDERS end_to_end_ms=$e2e orders_per_s=$RES_RATE produce_rate=$(field produce_rate "$work/produce-$run.out") reserved=$(field reserved "$c") out_of_stock=$(field out_of_stock "$c") other=$(field other "$c") repeated=$(field repeated "$c") redis_avail=$avail redis_resv=$resv$extra peak_rss_kb=$rss cpu_s=$(IFS=,; echo "${cpu[*]}")$dist $( ((CHECK_OK)) || echo FAILED)"
}

pass_reserver() {
  local n
  for n in $INSTANCES; do
    reserver_pass "$n" "reserver.$n"
    if [[ -n "$CEIL_RATE" ]]; then
      emit "ratio.$n" "reserver_per_s=$RES_RATE ceiling_per_s=$CEIL_RATE batch=$BATCH ratio=$(awk -v a="$RES_RATE" -v b="$CEIL_RATE" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
    fi
  done
}

# ------------------------------------------------------------------- ledger
# The ledger alone, on the events of the first reserver pass (OrderPlaced
# and ReservationResult of each order, already in Kafka): the rate between
# the first and the last database transaction that recorded one of them.
# BENCH_LEDGER_INSTANCES ledgers in one consumer group (one count per run:
# a second replay of the same events would only find them recorded).
pass_ledger() {
  local n="$LEDGER_INSTANCES" run="$LEDGER_REPLAY_RUN" label group want
  label="ledger.$n"
  group="linli-bench-ledger-alone-$LEDGER_REPLAY_RUN-$n"
  # A ledger pass needs a reserver pass without a ledger beside it.
  [[ -n "$run" ]] || die "the ledger pass has no reserver pass to replay"
  want=$((2 * ORDERS))
  log "$label: $n ledger(s) replaying the $want order events of run $run"
  cp "$LEDGER_REPLAY_ENDS" "$work/$group.ends"
  ledger_offsets "$group" "$work/$group.ends"
  # The first reserver pass's rows are not in PostgreSQL: nothing recorded
  # them. (Its orders are told apart by id from every other run's.)
  local q="FROM order_events WHERE order_id >= '$run-' AND order_id < '$run.'"
  # Where the ledgers are done: the inputs' ends now (nothing else writes
  # them during this pass). Their offsets in consumer_offsets are a cheap
  # poll; counting 400,000 rows every half second cost the backend as
  # much CPU as a fifth of the ledger's own work. A partition's end may
  # be a transaction marker no offset is stored past, so the offsets only
  # say "nearly"; the exact count then says "done".
  local target parts
  start_at_end "linli-bench-ledger-target-$run-$n" "$LEDGER_TOPICS"
  target="$(awk '$1 == "end" { split($4, o, "="); s += o[2] } END { print s + 0 }' \
    "$work/linli-bench-ledger-target-$run-$n.ends")"
  parts="$(field partitions "$work/linli-bench-ledger-target-$run-$n.ends")"
  # Every reserver pass after the first is replayed too (its events come
  # later in the same topics): the rate counts every order event the
  # ledgers recorded, the checks the first pass's.
  local since
  since="$(psql_q -c "SELECT now()")"
  local names=() i name
  for ((i = 0; i < n; i++)); do
    name="ledger-alone-$n-$i"
    start "$name" env LINLI_RUNNER_GROUP="$group" LINLI_RUNNER_INSTANCE_ID="$run-la$n-$i" \
      LINLI_RUNNER_BATCH_SIZE="$BATCH" LINLI_METRICS_PORT=-1 LINLI_LOG_LEVEL=${BENCH_LEDGER_LOG_LEVEL:-info} "$LEDGER"
    PIDOF[$name]=$STARTED
    names+=("$name")
  done
  local f0
  f0="$(foreign)"
  perf_start "$label" "${names[@]}"
  local t0 got=0
  t0=$(now_ms)
  while :; do
    got="$(psql_q -c "SELECT coalesce(sum(next_offset), 0) + $parts FROM consumer_offsets WHERE consumer_group = '$group'")"
    if ((got >= target)); then
      got="$(psql_q -c "SELECT count(*) $q")"
      ((got >= want)) && break
    else
      got=0
    fi
    for name in "${names[@]}"; do
      kill -0 "${PIDOF[$name]}" 2>/dev/null || { linli_tail_log "$work/$name.log"; die "$name exited"; }
    done
    (($(now_ms) - t0 < TIMEOUT * 1000)) || { log "$label: not done after ${TIMEOUT}s"; break; }
    # Each poll is a psql process: 2.3 % of both cores at two a second
    # (perf, run G). The rate is timed by the rows, not by this loop.
    sleep 1
  done
  local wall=$(($(now_ms) - t0)) rss dist
  perf_stop "$label"
  dist="$(disturbed "$f0" "$(foreign)")"
  if [[ -n "$dist" ]]; then DISTURBED=1; fi
  rss_of "${names[@]}"
  rss="$RSS_LINE"
  local ok=1 cpu=()
  for name in "${names[@]}"; do cpu+=("$(cpu_s "${PIDOF[$name]}")"); done
  for name in "${names[@]}"; do stop "${PIDOF[$name]}" "$name" || ok=0; done
  local span rows
  span="$(psql_q -c "SELECT count(*), count(DISTINCT (order_id, type)), round(1000 * extract(epoch FROM max(recorded_at) - min(recorded_at))) $q")"
  rows="$(psql_q -c "SELECT count(*), count(*) FILTER (WHERE state = 'RESERVED'), count(*) FILTER (WHERE state = 'REJECTED') FROM orders WHERE order_id >= '$run-' AND order_id < '$run.'")"
  local events distinct ms all
  IFS='|' read -r events distinct ms <<<"$span"
  IFS='|' read -r all ms <<<"$(psql_q -c "SELECT count(*), round(1000 * extract(epoch FROM max(recorded_at) - min(recorded_at))) FROM order_events WHERE recorded_at >= '$since'")"
  CHECK_OK=$ok
  ((ok)) || FAILED=1
  check '[[ "$events" == "$want" && "$distinct" == "$want" ]]' "$label: $events events ($distinct distinct), want $want"
  check '[[ "$rows" == "$ORDERS|$STOCK|$((ORDERS - STOCK))" ]]' \
    "$label: orders rows (all|RESERVED|REJECTED) $rows, want $ORDERS|$STOCK|$((ORDERS - STOCK))"
  check '[[ "$all" -ge "$want" ]]' "$label: $all events recorded since the start, fewer than the $want of the first pass"
  emit "$label" "instances=$n batch=$BATCH events=$events recorded=$all span_ms=$ms events_per_s=$(rate "$all" "${ms%.*}") orders=${rows%%|*} wall_ms=$wall rows=${rows//|/,} peak_rss_kb=$rss cpu_s=$(IFS=,; echo "${cpu[*]}")$dist $( ((CHECK_OK)) || echo FAILED)"
}

pass_pipeline() {
  reserver_pass "$PIPE_N" pipeline ledger
}

# ------------------------------------------------------------------ gateway
pass_gateway() {
  local run="gb$(date +%s)$$" url="http://127.0.0.1:$PORT"
  start gateway env LINLI_GATEWAY_PORT="$PORT" LINLI_GATEWAY_RATE_LIMIT_PER_S=0 \
    LINLI_METRICS_PORT=-1 LINLI_LOG_LEVEL=warn "$GATEWAY"
  PIDOF[gateway]=$STARTED
  local i
  for i in $(seq 1 100); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && break
    kill -0 "${PIDOF[gateway]}" 2>/dev/null || { cat "$work/gateway.log" >&2; die "gateway exited"; }
    sleep 0.1
  done
  curl -fsS "$url/healthz" >/dev/null || die "gateway at $url is not healthy"
  local full half
  gateway_run "$run" gateway.full 0
  full="$GW_RPS"
  half="$(awk -v r="$full" 'BEGIN { printf "%d", r / 2 }')"
  ((half > 0)) || die "gateway.full reached no requests/s"
  # wrk paces by a pause after each answer, so the answer time slows the
  # rate below the target: a short first run measures by how much, and
  # the measured run asks for that much more.
  local secs="$WRK_SECONDS" ask
  WRK_SECONDS=$((secs < 5 ? secs : 5))
  gateway_run "${run}c" gateway.calibrate "$half" quiet
  WRK_SECONDS="$secs"
  ask="$(awk -v h="$half" -v got="$GW_RPS" 'BEGIN { printf "%d", (got > 0 ? h * h / got : h) }')"
  gateway_run "${run}h" gateway.half "$ask" "" "$half"
  rss_of gateway
  stop "${PIDOF[gateway]}" gateway || FAILED=1
}

# gateway_run RUN LABEL RATE [quiet] [WANT]: RATE 0 is as fast as
# WRK_CONNS connections go; else each connection pauses after each answer
# so that all together would send RATE requests/s if answers took no time
# (wrk's delay(), in whole ms, the fraction carried over). quiet checks
# but prints no summary line; WANT is the rate the line reports as target.
gateway_run() {
  local run="$1" label="$2" target="$3" quiet="${4:-}" want="${5:-$3}" since
  cat >"$work/$run.lua" <<LUA
-- One new order per request: ids "$run-<k>", k = counter * threads + tid,
-- so one count over 0..max covers every thread.
local threads = {}
local nthreads = $WRK_THREADS
local interval = ($target > 0) and ($WRK_CONNS * 1000.0 / $target) or 0
setup = function(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
init = function(args)
  counter = 0
  carry = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer $TOKEN"
end
request = function()
  local k = counter * nthreads + tid
  counter = counter + 1
  local body = string.format(
    '{"order_id":"$run-%d","user_id":"bench-u%d","warehouse_id":"bench-$run",' ..
    '"lines":[{"sku_id":"bench-$run","quantity":1,"unit_price_fen":990}],' ..
    '"pickup":{"pickup_point_id":"P1"}}', k, k % 1000)
  return wrk.format(nil, "/v1/orders", nil, body)
end
if interval > 0 then
  delay = function()
    carry = carry + interval
    local d = math.floor(carry)
    carry = carry - d
    return d
  end
end
done = function(summary, latency, requests)
  local generated, maxc = 0, 0
  for _, t in ipairs(threads) do
    local c = t:get("counter")
    generated = generated + c
    if c > maxc then maxc = c end
  end
  io.write(string.format("generated=%d max_index=%d\n", generated, maxc * nthreads))
end
LUA
  # The orders name a warehouse and SKU of this run that has no stock: a
  # reserver that reads them rejects them, and what it keeps in Redis for
  # them is under this run's warehouse (deleted at exit).
  CLEAN+=("$run bench-$run bench-$run")
  since=$(now_ms)
  local what="as fast as they go"
  ((target > 0)) && what="paced to $target requests/s"
  log "$label: ${WRK_SECONDS}s, $WRK_CONNS connections, $WRK_THREADS threads, $what"
  local out="$work/$run.wrk"
  wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECONDS}s" --timeout 10s --latency \
    -s "$work/$run.lua" "$url" >"$out" || die "wrk failed"
  cat "$out" >&2
  local rps p50 p99 bad total gen maxi
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  GW_RPS="${rps%.*}"
  p50="$(awk '$1 == "50%" {print $2}' "$out")"
  p99="$(awk '$1 == "99%" {print $2}' "$out")"
  bad="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")"
  total="$(awk '/requests in/ {print $1}' "$out")"
  gen="$(field generated "$out")"
  maxi="$(field max_index "$out")"
  "$LOADGEN" --count-results "$run" --expect "$maxi" --kind key --topic "$(linli_topic orders)" \
    --since "$since" --until-end --timeout 120 >"$work/$run.count" ||
    die "$label: cannot count the published orders"
  local pub
  pub="$(field results "$work/$run.count")"
  CHECK_OK=1
  check '[[ -z "$bad" || "$bad" == 0 ]]' "$label: $bad answers were not 2xx"
  # Every answered request was published once; requests cut off by the end
  # of the run may or may not have been.
  check '((pub >= total - ${bad:-0} && pub <= gen))' "$label: $pub orders published for $total answered, $gen sent"
  check '[[ "$(field repeated "$work/$run.count")" == 0 ]]' "$label: orders published twice"
  ((want > 0)) || want=max
  [[ -n "$quiet" ]] && return 0
  emit "$label" "target_rps=$want paced_at=$target requests_per_s=$rps p50=$p50 p99=$p99 requests=$total non_2xx=${bad:-0} published=$pub repeated=$(field repeated "$work/$run.count") connections=$WRK_CONNS $( ((CHECK_OK)) || echo FAILED)"
}

# ------------------------------------------------------------------- memory
# MEM_ORDERS orders, every one to a final state (OUT_OF_STOCK at once,
# RESERVED ones expire unpaid after 1 s), then past the retention: Redis
# should be back where it was. The Redis server is shared, so other
# clients move used_memory too.
# run_keys RUN WH: RUN_KEYS / RUN_BYTES, the count and MEMORY USAGE sum of
# the keys of one run (its warehouse's hash tag, its order index entries):
# the part of used_memory that other clients of a shared Redis cannot move.
run_keys() {
  local f="$work/keys-$1"
  "${REDIS[@]}" --scan | grep -E "$(rsv_keys_re "$1" "$2")" >"$f" || true
  RUN_KEYS="$(wc -l <"$f")"
  RUN_BYTES="$(sed 's/^/MEMORY USAGE /' "$f" | "${REDIS[@]}" | awk '{ s += $1 } END { printf "%d", s }')"
}

pass_memory() {
  local n="$MAXN" run group wh sku parts env_ret
  run="mb$(date +%s)$$"
  group="linli-bench-memory-$run"
  wh="bench-$run"
  sku="bench-$run"
  env_ret="LINLI_$(tr 'a-z.' 'A-Z_' <<<"$RETENTION_KEY")"
  log "memory: $MEM_ORDERS orders, $STOCK units, $env_ret=$RETENTION_S, payment timeout 1 s (run $run)"
  start_at_end "$group" "$RESERVER_TOPICS"
  parts="$(field partitions "$work/$group.ends")"
  CLEAN+=("$run $wh $sku")
  start_reservers "$run" "$group" "$n" "$env_ret=$RETENTION_S" LINLI_ORDERS_PAYMENT_TIMEOUT_S=1
  local names=("${NAMES[@]}")
  wait_stable "$parts" "${names[@]}"
  restock "$run" "$wh" "$sku" "$STOCK"
  local before keys0 rk0 rb0
  before="$(redis_info used_memory)"
  keys0="$("${REDIS[@]}" dbsize)"
  run_keys "$run" "$wh"
  rk0=$RUN_KEYS rb0=$RUN_BYTES
  local since f0
  f0="$(foreign)"
  since=$(now_ms)
  "$LOADGEN" --run-id "$run" --warehouse "$wh" --sku "$sku" --orders "$MEM_ORDERS" \
    --users "$USERS" >"$work/produce-$run.out" || die "producing the orders failed"
  "$LOADGEN" --count-results "$run" --expect "$MEM_ORDERS" --since "$since" \
    --timeout "$TIMEOUT" >"$work/count-$run.out" 2>&1 || die "memory: not every order got its result"
  local peak rk1 rb1
  peak="$(redis_info used_memory)"
  run_keys "$run" "$wh"
  rk1=$RUN_KEYS rb1=$RUN_BYTES
  # Every reservation expires unpaid: the stock comes back.
  local t0 expired=1
  t0=$(now_ms)
  until [[ "$("${REDIS[@]}" hget "$(linli_rsv_key "$wh" resv)" "$sku")" == 0 && "$("${REDIS[@]}" hget "$(linli_rsv_key "$wh" avail)" "$sku")" == "$STOCK" ]]; do
    if (($(now_ms) - t0 > MEM_WAIT_S * 1000)); then
      log "memory: $("${REDIS[@]}" hget "$(linli_rsv_key "$wh" resv)" "$sku") reservations still unexpired after ${MEM_WAIT_S}s"
      expired=0
      break
    fi
    sleep 1
  done
  # Then the retention: wait until no order key of the run is left (or the
  # retention and a minute have passed).
  local deadline=$(($(now_ms) + (RETENTION_S + 60) * 1000))
  while :; do
    run_keys "$run" "$wh"
    ((RUN_KEYS <= rk0)) && break
    (($(now_ms) < deadline)) || break
    sleep 10
  done
  local after keys1 rss dist
  dist="$(disturbed "$f0" "$(foreign)")"
  if [[ -n "$dist" ]]; then DISTURBED=1; fi
  after="$(redis_info used_memory)"
  keys1="$("${REDIS[@]}" dbsize)"
  rss_of "${names[@]}"
  rss="$RSS_LINE"
  local name ok=1
  for name in "${names[@]}"; do stop "${PIDOF[$name]}" "$name" || ok=0; done
  ((ok)) || FAILED=1
  local c="$work/count-$run.out"
  CHECK_OK=$ok
  # Reservations expire after 1 s here, during the sale: a released unit
  # is sold again (more RESERVED than stock) and the RELEASED result is a
  # second outcome of its order (counted as repeated). The stock check
  # belongs to the reserver passes; this one needs every order answered.
  check '[[ "$(field results "$c")" == "$MEM_ORDERS" && "$(field reserved "$c")" -ge "$STOCK" ]]' \
    "memory: results $(field results "$c") reserved $(field reserved "$c") repeated $(field repeated "$c")"
  check '((expired))' "memory: not every order reached a final state: the figure is not the target's"
  emit redis.memory "orders=$MEM_ORDERS retention_s=$RETENTION_S used_memory_before=$before used_memory_peak=$peak used_memory_after=$after change_pct=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }') dbsize_before=$keys0 dbsize_after=$keys1 run_keys=$rk0/$rk1/$RUN_KEYS run_bytes=$rb0/$rb1/$RUN_BYTES run_bytes_after_pct_of_before=$(awk -v a="$before" -v b="$RUN_BYTES" -v c="$rb0" 'BEGIN { printf "%.1f", (b - c) * 100 / a }') peak_rss_kb=$rss$dist $( ((CHECK_OK)) || echo FAILED)"
}

# ------------------------------------------------------------------ settler
# JOINS joins (one unit each, distinct users) over CAMPAIGNS campaigns,
# through one settler: every join answered JOINED once, nothing repeated.
pass_settler() {
  local run group parts since cpid i name names=() cpu=()
  run="sj$(date +%s)$$"
  group="linli-bench-settler-$run"
  log "settler: $JOINS joins over $CAMPAIGNS campaigns, $SETTLER_N instance(s), batch $SETTLER_BATCH (run $run)"
  start_at_end "$group" "$(linli_topic groupbuy)"
  parts="$(field partitions "$work/$group.ends")"
  for ((i = 1; i <= SETTLER_N; i++)); do
    name="settler-$run-$i"
    start "$name" env LINLI_RUNNER_GROUP="$group" LINLI_RUNNER_INSTANCE_ID="$run-$i" \
      LINLI_RUNNER_BATCH_SIZE="$SETTLER_BATCH" LINLI_METRICS_PORT=-1 LINLI_LOG_LEVEL=info "$SETTLER"
    PIDOF["$name"]=$STARTED
    names+=("$name")
  done
  wait_stable "$parts" "${names[@]}"
  since=$(now_ms)
  "$LOADGEN" --count-results "$run" --expect "$JOINS" --since "$since" \
    --timeout "$TIMEOUT" --kind join >"$work/count-$run.out" 2>"$work/count-$run.err" &
  cpid=$!
  OWN+=("$cpid")
  "$LOADGEN" --run-id "$run" --warehouse "bench-$run" --sku "bench-$run" \
    --campaigns "$CAMPAIGNS" --orders "$JOINS" >"$work/produce-$run.out" ||
    die "producing the joins failed"
  local cst=0
  wait "$cpid" || cst=$?
  forget "$cpid"
  if ((cst != 0)); then
    cat "$work/count-$run.out" "$work/count-$run.err" >&2
    for name in "${names[@]}"; do linli_tail_log "$work/$name.log"; done
    die "settler: not every join was answered within ${TIMEOUT}s"
  fi
  rss_of "${names[@]}"
  local rss="$RSS_LINE" ok=1 c="$work/count-$run.out" first e2e
  for name in "${names[@]}"; do
    cpu+=("$(cpu_s "${PIDOF[$name]}")")
    stop "${PIDOF[$name]}" "$name" || ok=0
  done
  first="$(field first_send_ms "$work/produce-$run.out")"
  e2e=$(($(field done_ms "$c") - first))
  CHECK_OK=$ok
  ((ok)) || FAILED=1
  check '[[ "$(field results "$c")" == "$JOINS" && "$(field reserved "$c")" == "$JOINS" ]]' \
    "settler: $(field results "$c") answers, $(field reserved "$c") JOINED, want $JOINS"
  check '[[ "$(field repeated "$c")" == 0 ]]' "settler: $(field repeated "$c") answers published twice"
  emit settler "instances=$SETTLER_N batch=$SETTLER_BATCH joins=$JOINS campaigns=$CAMPAIGNS end_to_end_ms=$e2e joins_per_s=$(rate "$JOINS" "$e2e") joined=$(field reserved "$c") repeated=$(field repeated "$c") peak_rss_kb=$rss cpu_s=$(IFS=,; echo "${cpu[*]}") $( ((CHECK_OK)) || echo FAILED)"
}

# ----------------------------------------------------------------- notifier
# scripts/bench_notifier.sh: notifications/s to linli.notifications.v1 (two
# consume-mode notifiers, batches of 2,000) and to a local webhook; its
# summary lines become this run's.
pass_notifier() {
  local line
  while read -r line; do
    [[ "$line" == notifier:* ]] || continue
    emit notifier "${line#notifier: }"
  done < <(BENCH_INSTANCES=2 LINLI_RUNNER_BATCH_SIZE=2000 BENCH_BUILD_DIR="$BUILD" \
    bash "$REPO/scripts/bench_notifier.sh" 20000 32 2>>"$work/notifier.err" ||
    echo "notifier: FAILED")
}

# -------------------------------------------------------------------- route
pass_route() {
  local line
  for w in "" --windows; do
    while read -r line; do
      [[ "$line" == route_bench* ]] || continue
      emit "route${w:+.windows}" "${line#route_bench }"
    done < <("$BUILD/tools/linli-bench_route" --stops 1000,10000 $w || echo "route_bench FAILED")
  done
}

# --------------------------------------------------------------------- run
log "date $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr), load $(loadavg), build $BUILD"
for p in $PASSES; do
  case "$p" in
    ceiling) pass_ceiling ;;
    reserver) pass_reserver ;;
    ledger) pass_ledger ;;
    pipeline) pass_pipeline ;;
    gateway) pass_gateway ;;
    settler) pass_settler ;;
    notifier) pass_notifier ;;
    route) pass_route ;;
    memory) pass_memory ;;
  esac
done
emit peak_rss "$(IFS=' '; echo "${RSS[*]}") max_kb=$(printf '%s\n' "${RSS[@]}" | cut -d= -f2 | sort -n | tail -n1)"
echo "==== summary ($(date -u +%H:%M:%SZ)) ====" >&2
printf '%s\n' "${RESULT[@]}" >&2
if ((FAILED)); then
  log "FAILED: a count was wrong or a process did not stop cleanly (see CHECK FAILED above)"
  exit 1
fi
if ((DISTURBED)); then
  log "DISTURBED: other linli consumers ran during a pass (disturbed_by=...): repeat on a quiet machine"
  exit 2
fi
