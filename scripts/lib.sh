# lib.sh - what the stack scripts share (sourced, never run): where the repo,
# the config and the stack data live, a small INI reader that honours the
# same LINLI_<SECTION>_<KEY> environment overrides as libcommon's config, and
# service probes. Every script that sources it runs with set -euo pipefail.
# shellcheck shell=bash

LINLI_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The config file: $LINLI_CONFIG (made absolute and exported so that tests,
# linli-migrate and the producers read the same file), else config/linli.conf.
if [[ -n "${LINLI_CONFIG:-}" ]]; then
  if [[ ! -f "$LINLI_CONFIG" ]]; then
    echo "LINLI_CONFIG=$LINLI_CONFIG: no such file" >&2
    exit 2
  fi
  LINLI_CONFIG="$(cd "$(dirname "$LINLI_CONFIG")" && pwd)/$(basename "$LINLI_CONFIG")"
else
  LINLI_CONFIG="$LINLI_REPO/config/linli.conf"
fi
export LINLI_CONFIG

# All local stack data lives under one folder (ignored by git).
# (Made absolute; created by whoever first writes into it.)
LINLI_STACK_DIR="${LINLI_STACK_DIR:-$LINLI_REPO/.stack}"
[[ "$LINLI_STACK_DIR" == /* ]] || LINLI_STACK_DIR="$PWD/$LINLI_STACK_DIR"
export LINLI_STACK_DIR

linli_log() { printf '[%s] %s\n' "${LINLI_LOG_TAG:-linli}" "$*"; }
linli_warn() { printf '[%s] WARNING: %s\n' "${LINLI_LOG_TAG:-linli}" "$*" >&2; }
linli_die() { printf '[%s] ERROR: %s\n' "${LINLI_LOG_TAG:-linli}" "$*" >&2; exit 1; }

# linli_ini_get FILE SECTION KEY: print the value, status 1 if absent.
# Mirrors inih: full-line comments start with ';' or '#', an inline comment
# is ' ;...', keys and values are trimmed, the last occurrence wins.
linli_ini_get() {
  [[ -f "$1" ]] || return 1
  awk -v sec="$2" -v key="$3" '
    /^[ \t]*[;#]/ { next }
    /^[ \t]*\[/ {
      s = $0; sub(/^[ \t]*\[[ \t]*/, "", s); sub(/[ \t]*\].*$/, "", s)
      cur = s; next
    }
    cur == sec {
      i = index($0, "="); if (i == 0) next
      k = substr($0, 1, i - 1); v = substr($0, i + 1)
      sub(/[ \t]+;.*$/, "", v)
      gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
      if (k == key) { val = v; found = 1 }
    }
    END { if (found) print val; exit !found }' "$1"
}

# linli_conf SECTION KEY DEFAULT: environment override, else the config
# file, else DEFAULT. LINLI_KAFKA_BOOTSTRAP_SERVERS overrides
# [kafka] bootstrap.servers, as in libcommon.
linli_conf() {
  local var="LINLI_${1}_${2}"
  var="${var//./_}"
  var="${var^^}"
  if [[ -n "${!var:-}" ]]; then
    printf '%s\n' "${!var}"
  elif ! linli_ini_get "$LINLI_CONFIG" "$1" "$2"; then
    printf '%s\n' "$3"
  fi
}

# Topic names come from config/topics.conf, the one list of topics (C reads
# it through the generated domain/topics.h, scripts/kafka.sh creates the
# topics from it): a script never spells a topic name out.
LINLI_TOPICS_FILE="${LINLI_TOPICS_FILE:-$LINLI_REPO/config/topics.conf}"

# linli_topic SHORT: the full name of topic linli.SHORT.v<n>, e.g.
# `linli_topic orders` -> linli.orders.v1; dies if there is no such topic.
linli_topic() {
  awk -v want="$1" '
    /^[ \t]*(#|$)/ { next }
    { n = $1; sub(/^linli\./, "", n); sub(/\.v[0-9]+$/, "", n) }
    n == want { print $1; found = 1 }
    END { exit !found }' "$LINLI_TOPICS_FILE" ||
    linli_die "$LINLI_TOPICS_FILE: no topic linli.$1.v<n>"
}

# linli_topics SHORT...: the full names of the topics given, comma-separated.
linli_topics() {
  local out="" t
  for t in "$@"; do out+="${out:+,}$(linli_topic "$t")" || return 1; done
  printf '%s\n' "$out"
}

# The reserver's Redis keys, as libdomain's domain/reserver_keys.h names them
# (test_domain_keys checks that these agree with it).
LINLI_RSV_CATALOG="linli:catalog"   # hash sku -> catalog record
LINLI_RSV_ORDER_WH="linli:rsv:ow:"  # + order_id: the order's warehouse
LINLI_RSV_EXPIRY="linli:rsv:exp:"   # + orders partition: deadline index
# linli_rsv_key WAREHOUSE SUFFIX: "{w:WAREHOUSE}:SUFFIX" (avail, resv, o:<id>...).
linli_rsv_key() { printf '{w:%s}:%s\n' "$1" "$2"; }
# The settler's and the router's, as domain/groupbuy_state.h and
# domain/wave.h name them (checked by test_domain_keys too):
# linli_gb_key CAMPAIGN SUFFIX: "{c:CAMPAIGN}:SUFFIX" (c, o, u).
linli_gb_key() { printf '{c:%s}:%s\n' "$1" "$2"; }
# linli_wave_key WAREHOUSE SUFFIX: "{r:WAREHOUSE}:SUFFIX" (st, q:d, seen:d).
linli_wave_key() { printf '{r:%s}:%s\n' "$1" "$2"; }

# linli_conninfo_get CONNINFO KEY DEFAULT: one key of a libpq key=value
# conninfo (values without spaces or quotes, which is all the stack needs).
linli_conninfo_get() {
  local kv
  for kv in $1; do
    if [[ "$kv" == "$2="* ]]; then
      printf '%s\n' "${kv#*=}"
      return 0
    fi
  done
  printf '%s\n' "$3"
}

# Is HOST this machine? Only local services are started by the stack; any
# other host is somebody else's service, which is probed but never managed.
linli_is_local_host() {
  case "$1" in
    127.0.0.1 | localhost | ::1 | "") return 0 ;;
    *) return 1 ;;
  esac
}

# linli_port_open HOST PORT: does something accept TCP connections there?
linli_port_open() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# linli_pid_alive PIDFILE PATTERN: the pid in PIDFILE is running and its
# command line contains PATTERN (so a stale pid file whose number was reused
# by another process does not count).
linli_pid_alive() {
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(head -n1 "$1" 2>/dev/null | tr -dc '0-9')"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"$2"* ]]
}

# linli_stop_pid PIDFILE PATTERN NAME [GRACE_S]: SIGTERM, wait up to GRACE_S
# seconds (default 30), then SIGKILL; removes the pid file.
linli_stop_pid() {
  local pidfile="$1" pattern="$2" name="$3" grace="${4:-30}" pid i
  if ! linli_pid_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    [[ -d "/proc/$pid" ]] || break
    # A zombie child of ours counts as gone.
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && break
    sleep 0.1
  done
  if [[ -d "/proc/$pid" ]] && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; then
    linli_warn "$name (pid $pid) ignored SIGTERM for ${grace}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -d "/proc/$pid" ]] || break
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
}

# linli_tail_log FILE: the last lines of a service log, for failures.
linli_tail_log() {
  if [[ -f "$1" ]]; then
    echo "----- last lines of $1 -----" >&2
    tail -n 40 "$1" >&2
    echo "-----" >&2
  fi
}
