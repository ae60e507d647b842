#!/usr/bin/env bash
# kafka.sh - runs the local single-node Apache Kafka 4.1.1 broker (KRaft,
# broker+controller in one JVM) for the stack and the tests.
#
#   scripts/kafka.sh fetch    resolve the broker jars (Maven Central, cached)
#   scripts/kafka.sh start    start the broker and wait until it answers
#   scripts/kafka.sh stop     stop it (SIGTERM, then SIGKILL), nothing left
#   scripts/kafka.sh status   print up/down; exit 0 only if up
#   scripts/kafka.sh topics   create the topics of config/topics.conf
#   scripts/kafka.sh jars     print the jar folder (for `java -cp 'DIR/*'`)
# (`launch` and `wait` split `start` in two so that stack.sh can start the
# other services while the JVM boots.)
#
# The port is the one of [kafka] bootstrap.servers in $LINLI_CONFIG
# (or config/linli.conf; LINLI_KAFKA_BOOTSTRAP_SERVERS wins); the controller
# listens on port+1. Data, logs and the pid file live in $LINLI_STACK_DIR/kafka.
# No Kafka tarball is needed: scripts/kafka/pom.xml pins the broker artifact
# and mvn copies it with its runtime dependencies into .cache/kafka-jars
# (KAFKA_HOME/libs is used instead when KAFKA_HOME points at a distribution).
set -euo pipefail
LINLI_LOG_TAG=kafka
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$LINLI_REPO/scripts/kafka/pom.xml"
CACHE_JARS="${LINLI_KAFKA_JARS:-$LINLI_REPO/.cache/kafka-jars}"
KDIR="$LINLI_STACK_DIR/kafka"
PIDFILE="$KDIR/kafka.pid"
BROKER_LOG="$KDIR/broker.log"   # log4j2 (WARN and above)
STDOUT_LOG="$KDIR/stdout.log"   # JVM stdout/stderr (crashes before log4j)
PATTERN="kafka.Kafka"
START_TIMEOUT_S="${LINLI_KAFKA_START_TIMEOUT_S:-60}"

BOOTSTRAP="$(linli_conf kafka bootstrap.servers 127.0.0.1:9092)"
FIRST="${BOOTSTRAP%%,*}"
HOST="${FIRST%:*}"
PORT="${FIRST##*:}"
[[ "$PORT" =~ ^[0-9]+$ ]] || linli_die "cannot read a port from bootstrap.servers=$BOOTSTRAP"
CTRL_PORT=$((PORT + 1))
ADDR="$HOST:$PORT"

jars_dir() {
  if [[ -n "${KAFKA_HOME:-}" && -d "$KAFKA_HOME/libs" ]]; then
    echo "$KAFKA_HOME/libs"
  else
    echo "$CACHE_JARS"
  fi
}

# The cache is valid for the pom it was resolved from.
pom_hash() { sha256sum "$POM" | cut -c1-16; }

cmd_fetch() {
  if [[ -n "${KAFKA_HOME:-}" && -d "$KAFKA_HOME/libs" ]]; then
    linli_log "using KAFKA_HOME=$KAFKA_HOME/libs"
    return 0
  fi
  if [[ -f "$CACHE_JARS/.complete" && "$(cat "$CACHE_JARS/.complete")" == "$(pom_hash)" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || linli_die "mvn not found (scripts/deps.sh installs maven)"
  linli_log "resolving broker jars from $POM into $CACHE_JARS (Maven Central)"
  rm -rf "$CACHE_JARS"
  mkdir -p "$CACHE_JARS"
  local mvnlog
  mvnlog="$(mktemp)"
  if ! mvn -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$CACHE_JARS" >"$mvnlog" 2>&1; then
    linli_tail_log "$mvnlog"
    rm -rf "$CACHE_JARS" "$mvnlog"
    linli_die "mvn could not resolve the broker jars"
  fi
  rm -f "$mvnlog"
  ls "$CACHE_JARS"/kafka_2.13-*.jar >/dev/null 2>&1 || linli_die "no kafka_2.13 jar in $CACHE_JARS"
  pom_hash >"$CACHE_JARS/.complete"
  linli_log "$(find "$CACHE_JARS" -name '*.jar' | wc -l) jars cached"
}

# Does a broker answer a metadata request on our port?
answers() { kcat -b "$ADDR" -L -m 3 >/dev/null 2>&1; }

managed_up() { linli_pid_alive "$PIDFILE" "$PATTERN"; }

write_config() {
  mkdir -p "$KDIR/data"
  cat >"$KDIR/server.properties" <<EOF
# Written by scripts/kafka.sh: a single-node KRaft broker+controller for the
# local stack. Regenerated at every start; data lives in log.dirs.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KDIR/data
# One node: internal topics cannot have more than one replica, else
# consumer groups and transactions stall.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: faster first group and
# first transaction on a small machine; semantics are unchanged.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
# Tests rebalance often; do not wait 3 s for more members.
group.initial.rebalance.delay.ms=0
# Topics are created explicitly (stack.sh from config/topics.conf, tests
# through the admin API), so a typo in a topic name fails loudly.
auto.create.topics.enable=false
num.partitions=1
EOF
  cat >"$KDIR/log4j2.properties" <<EOF
# Written by scripts/kafka.sh: broker warnings and errors to a file.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $BROKER_LOG
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
EOF
}

cmd_launch() {
  if managed_up; then
    linli_log "already running (pid $(cat "$PIDFILE")) on $ADDR"
    return 0
  fi
  if ! linli_is_local_host "$HOST"; then
    linli_log "bootstrap.servers=$BOOTSTRAP is not local: not starting a broker"
    return 0
  fi
  if linli_port_open 127.0.0.1 "$PORT" || linli_port_open 127.0.0.1 "$CTRL_PORT"; then
    if answers; then
      linli_log "a broker not started by this stack already answers on $ADDR: using it"
      return 0
    fi
    linli_die "port $PORT or $CTRL_PORT is taken by something that is not a Kafka broker"
  fi
  command -v java >/dev/null || linli_die "java not found (scripts/deps.sh installs it)"
  cmd_fetch
  local jars
  jars="$(jars_dir)"
  write_config
  if [[ ! -f "$KDIR/data/meta.properties" ]]; then
    local uuid
    uuid="$(java -cp "$jars/*" kafka.tools.StorageTool random-uuid)"
    linli_log "formatting $KDIR/data (cluster id $uuid)"
    java -cp "$jars/*" -Dlog4j2.configurationFile="$KDIR/log4j2.properties" \
      kafka.tools.StorageTool format -t "$uuid" -c "$KDIR/server.properties" \
      >"$KDIR/format.log" 2>&1 || { linli_tail_log "$KDIR/format.log"; linli_die "storage format failed"; }
  fi
  linli_log "starting broker on $ADDR (controller 127.0.0.1:$CTRL_PORT)"
  : >"$STDOUT_LOG"
  # setsid: the broker outlives this script and ignores the terminal's Ctrl-C;
  # it is stopped by `kafka.sh stop` only.
  setsid java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KDIR/log4j2.properties" \
    -cp "$jars/*" kafka.Kafka "$KDIR/server.properties" \
    </dev/null >>"$STDOUT_LOG" 2>&1 &
  echo $! >"$PIDFILE"
}

cmd_wait() {
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while ! answers; do
    if [[ -f "$PIDFILE" ]] && ! managed_up; then
      linli_tail_log "$STDOUT_LOG"
      linli_tail_log "$BROKER_LOG"
      rm -f "$PIDFILE"
      linli_die "the broker exited during start-up"
    fi
    if ((SECONDS >= deadline)); then
      linli_tail_log "$STDOUT_LOG"
      linli_tail_log "$BROKER_LOG"
      linli_die "no answer from $ADDR after ${START_TIMEOUT_S}s"
    fi
    sleep 0.5
  done
  linli_log "up on $ADDR"
}

cmd_stop() {
  if ! managed_up; then
    rm -f "$PIDFILE"
    if linli_port_open 127.0.0.1 "$PORT"; then
      linli_log "not started by this stack (something else serves $ADDR): left alone"
    else
      linli_log "not running"
    fi
    return 0
  fi
  linli_log "stopping broker (pid $(cat "$PIDFILE"))"
  # A single-node controlled shutdown takes a few seconds; 60 s is generous.
  linli_stop_pid "$PIDFILE" "$PATTERN" kafka 60
  local i
  for ((i = 0; i < 50; i++)); do
    linli_port_open 127.0.0.1 "$PORT" || break
    sleep 0.1
  done
  linli_port_open 127.0.0.1 "$PORT" && linli_die "port $PORT still open after stop"
  linli_log "stopped"
}

cmd_status() {
  if managed_up && answers; then
    echo "kafka    up    $ADDR (pid $(cat "$PIDFILE"), data $KDIR)"
  elif answers; then
    echo "kafka    up    $ADDR (not started by this stack)"
  elif managed_up; then
    echo "kafka    starting/unhealthy  $ADDR (pid $(cat "$PIDFILE")), see $BROKER_LOG"
    return 1
  else
    echo "kafka    down  $ADDR"
    return 1
  fi
}

# Create every topic of config/topics.conf that the broker does not have yet.
# TopicCommand takes one topic per JVM (~1 s each), so missing topics are
# created two at a time and existing ones cost nothing: a second `up` is
# instant.
create_topic() { # name partitions retention policy
  java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$(jars_dir)/*" \
    -Dlog4j2.configurationFile="$KDIR/log4j2.properties" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$ADDR" \
    --create --if-not-exists --topic "$1" --partitions "$2" \
    --replication-factor 1 --config "retention.ms=$3" --config "cleanup.policy=$4" \
    >"$KDIR/topic-$1.log" 2>&1 || { linli_tail_log "$KDIR/topic-$1.log"; return 1; }
  rm -f "$KDIR/topic-$1.log"
}

cmd_topics() {
  local file="${LINLI_TOPICS_FILE:-$LINLI_REPO/config/topics.conf}"
  local existing name parts retention policy extra created=0 running=0 failed=0
  cmd_fetch
  mkdir -p "$KDIR"
  existing="$(kcat -b "$ADDR" -L -m 5 2>/dev/null | awk '$1 == "topic" { gsub(/"/, "", $2); print $2 }')"
  while read -r name parts retention policy extra; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    [[ -n "$policy" && -z "$extra" ]] || linli_die "$file: bad line for $name (want: name partitions retention.ms cleanup.policy)"
    grep -qxF -- "$name" <<<"$existing" && continue
    create_topic "$name" "$parts" "$retention" "$policy" &
    created=$((created + 1))
    running=$((running + 1))
    if ((running >= 2)); then
      wait -n || failed=1
      running=$((running - 1))
    fi
  done <"$file"
  while ((running > 0)); do
    wait -n || failed=1
    running=$((running - 1))
  done
  ((failed == 0)) || linli_die "could not create every topic of $file"
  linli_log "topics: $created created, $(grep -cvE '^[[:space:]]*(#|$)' "$file") in $(basename "$file")"
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  launch) cmd_launch ;;
  wait) cmd_wait ;;
  start) cmd_launch; cmd_wait ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  topics) cmd_topics ;;
  jars) cmd_fetch >&2; jars_dir ;;
  *)
    echo "usage: $0 fetch|start|stop|status|topics|jars" >&2
    exit 2
    ;;
esac
