#!/usr/bin/env bash
# stack.sh - the local stack linli runs against: Apache Kafka (KRaft, one
# node), Redis and a private PostgreSQL 15 cluster, on the hosts and ports of
# $LINLI_CONFIG (default config/linli.conf; LINLI_KAFKA_BOOTSTRAP_SERVERS,
# LINLI_REDIS_PORT, LINLI_PG_CONNINFO override), all data under
# $LINLI_STACK_DIR (default .stack/ in the repo).
#
#   scripts/stack.sh up       start what is not running, create the topics of
#                             config/topics.conf, run the migrations
#                             ($BUILD_DIR/tools/linli-migrate, BUILD_DIR=build)
#   scripts/stack.sh down     stop what this stack started; nothing left behind
#   scripts/stack.sh status   one line per service; exit 0 only if all are up
#   scripts/stack.sh clean    down, then delete the stack's data
#
# `up` twice is harmless. A service that already answers on its port but was
# not started by this stack (a shared dev server) is used as is and never
# stopped by `down`. See docs/stack.md.
set -euo pipefail
LINLI_LOG_TAG=stack
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE="$LINLI_REPO/scripts"

[[ "${1:-}" == up ]] && mkdir -p "$LINLI_STACK_DIR"
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$LINLI_REPO/$BUILD_DIR"

# ---------------------------------------------------------------- Redis
REDIS_HOST="$(linli_conf redis host 127.0.0.1)"
REDIS_PORT="$(linli_conf redis port 16379)"
REDIS_DIR="$LINLI_STACK_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"

redis_answers() {
  [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}
redis_managed() { linli_pid_alive "$REDIS_PID" redis-server; }

redis_up() {
  if redis_managed; then
    linli_log "redis: already running (pid $(cat "$REDIS_PID")) on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  if redis_answers; then
    linli_log "redis: $REDIS_HOST:$REDIS_PORT already answers (not started by this stack): using it"
    return 0
  fi
  linli_is_local_host "$REDIS_HOST" || linli_die "redis: $REDIS_HOST:$REDIS_PORT does not answer and is not local"
  linli_port_open 127.0.0.1 "$REDIS_PORT" && linli_die "redis: port $REDIS_PORT is taken by something that is not Redis"
  command -v redis-server >/dev/null || linli_die "redis-server not found (run scripts/deps.sh)"
  mkdir -p "$REDIS_DIR"
  # The append-only file with fsync on every write (DESIGN.md): an offset
  # committed in Kafka implies a durable Redis effect. No RDB snapshots.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
    --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_PID" \
    --logfile "$REDIS_DIR/redis.log" --appendonly yes --appendfsync always \
    --save '' >/dev/null
  local i
  for ((i = 0; i < 100; i++)); do
    redis_answers && break
    sleep 0.1
  done
  redis_answers || { linli_tail_log "$REDIS_DIR/redis.log"; linli_die "redis did not start"; }
  linli_log "redis: up on 127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_PID"))"
}

redis_down() {
  if redis_managed; then
    linli_log "redis: stopping (pid $(cat "$REDIS_PID"))"
    linli_stop_pid "$REDIS_PID" redis-server redis 30
  elif redis_answers; then
    linli_log "redis: not started by this stack: left alone"
  fi
}

redis_status() {
  if redis_managed && redis_answers; then
    echo "redis    up    $REDIS_HOST:$REDIS_PORT (pid $(cat "$REDIS_PID"), data $REDIS_DIR)"
  elif redis_answers; then
    echo "redis    up    $REDIS_HOST:$REDIS_PORT (not started by this stack)"
  else
    echo "redis    down  $REDIS_HOST:$REDIS_PORT"
    return 1
  fi
}

# ----------------------------------------------------------- PostgreSQL
PG_CONNINFO="$(linli_conf pg conninfo 'host=127.0.0.1 port=15432 dbname=linli user=linli')"
PG_HOST="$(linli_conninfo_get "$PG_CONNINFO" host 127.0.0.1)"
PG_PORT="$(linli_conninfo_get "$PG_CONNINFO" port 5432)"
PG_DB="$(linli_conninfo_get "$PG_CONNINFO" dbname linli)"
PG_USER="$(linli_conninfo_get "$PG_CONNINFO" user linli)"
PG_BIN="${LINLI_PG_BIN:-/usr/lib/postgresql/15/bin}"

# Where the cluster lives. As root, PostgreSQL runs as the postgres user
# (initdb refuses root), which must be able to reach its data directory.
# If a parent of the stack folder is closed to it (e.g. a clone under
# /root), the cluster goes to /tmp/linli-stack-<uid>-<hash of the stack
# path>/pg instead, and $LINLI_STACK_DIR/pg is a symlink to it.
pg_dir() {
  local link="$LINLI_STACK_DIR/pg"
  if [[ -L "$link" ]]; then
    readlink -f "$link"
  elif [[ -d "$link" || $EUID -ne 0 ]] || pg_can_reach "$LINLI_STACK_DIR"; then
    echo "$link"
  else
    echo "/tmp/linli-stack-$EUID-$(printf '%s' "$LINLI_STACK_DIR" | sha1sum | cut -c1-10)/pg"
  fi
}
pg_can_reach() {
  chmod a+x "$1" 2>/dev/null || true
  runuser -u postgres -- test -x "$1" 2>/dev/null
}
PG_DIR="$(pg_dir)"
PGDATA_DIR="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"
# A Unix socket path has at most 107 bytes.
((${#PG_SOCK} <= 90)) || PG_SOCK=/tmp
PG_LOG="$PG_DIR/postgres.log"

# Run a PostgreSQL server binary as its owner (from /, which it can read).
pg_as() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}
pg_answers() { "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
pg_managed() { linli_pid_alive "$PGDATA_DIR/postmaster.pid" postgres; }
pg_psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

pg_init() {
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] && return 0
  [[ -x "$PG_BIN/initdb" ]] || linli_die "$PG_BIN/initdb not found (run scripts/deps.sh: postgresql-15)"
  if ((EUID == 0)); then
    getent passwd postgres >/dev/null || linli_die "no postgres user (install postgresql-15)"
    if [[ "$PG_DIR" != "$LINLI_STACK_DIR/pg" ]]; then
      linli_log "postgres: $LINLI_STACK_DIR is not reachable by the postgres user; cluster in $PG_DIR"
      mkdir -p "$PG_DIR"
      chmod 755 "$(dirname "$PG_DIR")"
      ln -sfn "$PG_DIR" "$LINLI_STACK_DIR/pg"
    fi
    mkdir -p "$PG_DIR"
    chown postgres: "$PG_DIR"
  fi
  mkdir -p "$PG_DIR"
  [[ "$PG_SOCK" == /tmp ]] || pg_as mkdir -p "$PG_SOCK"
  linli_log "postgres: initdb $PGDATA_DIR"
  # Trust auth: a local, loopback-only development cluster.
  pg_as "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$PG_DIR/initdb.log" 2>&1 \
    || { linli_tail_log "$PG_DIR/initdb.log"; linli_die "initdb failed"; }
  echo "include_if_exists = 'linli-stack.conf'" | pg_as tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
}

pg_up() {
  if pg_managed; then
    linli_log "postgres: already running (pid $(head -n1 "$PGDATA_DIR/postmaster.pid")) on 127.0.0.1:$PG_PORT"
  elif pg_answers; then
    linli_log "postgres: $PG_HOST:$PG_PORT already answers (not started by this stack): using it"
    return 0
  else
    linli_is_local_host "$PG_HOST" || linli_die "postgres: $PG_HOST:$PG_PORT does not answer and is not local"
    linli_port_open 127.0.0.1 "$PG_PORT" && linli_die "postgres: port $PG_PORT is taken by something that is not PostgreSQL"
    pg_init
    # Rewritten at each start so that a port change in the config applies.
    pg_as tee "$PGDATA_DIR/linli-stack.conf" >/dev/null <<EOF
# Written by scripts/stack.sh at every start.
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCK'
max_connections = 200
# Sized for the ledger's write load (docs/performance.md, run G): the
# default 128 MB of buffers held less than the hot index pages of
# order_events once it grew past a million rows, and a checkpoint every
# 1 GB of WAL wrote every touched page again in full. Durability is
# unchanged (fsync and synchronous_commit stay on).
shared_buffers = ${LINLI_PG_SHARED_BUFFERS:-512MB}
max_wal_size = 4GB
checkpoint_timeout = 15min
wal_compression = lz4
# Short set-based statements: compiling them would cost more than it saves.
jit = off
EOF
    pg_as "$PG_BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$PG_LOG" -w -t 60 >/dev/null \
      || { linli_tail_log "$PG_LOG"; linli_die "postgres did not start"; }
    linli_log "postgres: up on 127.0.0.1:$PG_PORT (data $PGDATA_DIR)"
  fi
  # The application role and database from the conninfo, if missing.
  [[ "$PG_USER" =~ ^[A-Za-z_][A-Za-z0-9_]*$ && "$PG_DB" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] \
    || linli_die "postgres: user/dbname in conninfo must be plain identifiers"
  pg_psql -d postgres -v role="$PG_USER" -v db="$PG_DB" <<'EOF'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') AS need_role \gset
\if :need_role
CREATE ROLE :"role" LOGIN SUPERUSER;
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') AS need_db \gset
\if :need_db
CREATE DATABASE :"db" OWNER :"role";
\endif
EOF
}

pg_down() {
  if pg_managed; then
    linli_log "postgres: stopping"
    pg_as "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 >/dev/null \
      || linli_warn "pg_ctl stop failed"
    if pg_managed; then
      linli_warn "postgres still running; SIGKILL"
      linli_stop_pid "$PGDATA_DIR/postmaster.pid" postgres postgres 1
    fi
  elif pg_answers; then
    linli_log "postgres: not started by this stack: left alone"
  fi
}

pg_status() {
  if pg_managed && pg_answers; then
    echo "postgres up    127.0.0.1:$PG_PORT (pid $(head -n1 "$PGDATA_DIR/postmaster.pid"), data $PGDATA_DIR)"
  elif pg_answers; then
    echo "postgres up    $PG_HOST:$PG_PORT (not started by this stack)"
  else
    echo "postgres down  $PG_HOST:$PG_PORT"
    return 1
  fi
}

# ------------------------------------------------------------ commands
migrate() {
  local tool="$BUILD_DIR/tools/linli-migrate"
  if [[ ! -x "$tool" ]]; then
    linli_warn "$tool is not built yet: migrations skipped (build, then run scripts/stack.sh up again)"
    return 0
  fi
  linli_log "migrations: $tool"
  (cd "$LINLI_REPO" && "$tool" --config "$LINLI_CONFIG" --dir "$LINLI_REPO/schemas/sql") \
    || linli_die "migrations failed"
}

cmd_up() {
  local t0=$SECONDS
  # The broker's JVM boots while Redis and PostgreSQL start.
  bash "$HERE/kafka.sh" launch
  redis_up
  pg_up
  bash "$HERE/kafka.sh" wait
  bash "$HERE/kafka.sh" topics
  migrate
  linli_log "stack up in $((SECONDS - t0))s (data in $LINLI_STACK_DIR; stop with scripts/stack.sh down)"
}

cmd_down() {
  local rc=0
  bash "$HERE/kafka.sh" stop || rc=1
  redis_down || rc=1
  pg_down || rc=1
  # Nothing of ours may survive: no process serving our data folders, no
  # live pid file.
  local left
  left="$(pgrep -af -- "$LINLI_STACK_DIR/kafka/server.properties|$PGDATA_DIR" || true)"
  if [[ -n "$left" ]] || redis_managed; then
    linli_warn "still running after down:"
    [[ -n "$left" ]] && echo "$left" >&2
    redis_managed && echo "redis-server pid $(cat "$REDIS_PID")" >&2
    rc=1
  fi
  ((rc == 0)) && linli_log "stack down"
  return $rc
}

cmd_status() {
  local rc=0
  bash "$HERE/kafka.sh" status || rc=1
  redis_status || rc=1
  pg_status || rc=1
  return $rc
}

cmd_clean() {
  cmd_down
  linli_log "deleting $LINLI_STACK_DIR/{kafka,redis,pg} and $PG_DIR"
  rm -rf "$LINLI_STACK_DIR/kafka" "$LINLI_STACK_DIR/redis" "$PG_DIR"
  rm -rf "$LINLI_STACK_DIR/pg"
  [[ "$PG_DIR" == "$LINLI_STACK_DIR/pg" ]] || rmdir "$(dirname "$PG_DIR")" 2>/dev/null || true
  return 0
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  clean) cmd_clean ;;
  *)
    echo "usage: $0 up|down|status|clean" >&2
    exit 2
    ;;
esac
