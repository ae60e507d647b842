#!/usr/bin/env bash
# demo.sh - linli end to end on this machine: installs the Debian packages,
# builds (no sanitizers) into build-demo/, starts the local stack, pushes a
# handful of events (config/demo/events.jsonl: two SKUs listed, two
# restocks, an order placed and paid) through the real broker with
# linli-produce and shows where they landed. The stack stays up afterwards;
# stop it with scripts/stack.sh down.
set -euo pipefail
LINLI_LOG_TAG=demo
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LINLI_REPO"
BUILD_DIR="${BUILD_DIR:-build-demo}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$LINLI_REPO/$BUILD_DIR"
export BUILD_DIR
EVENTS="${LINLI_DEMO_EVENTS:-$LINLI_REPO/config/demo/events.jsonl}"
PRODUCE="$BUILD_DIR/producers/produce/linli-produce"

step() { printf '\n==== %s ====\n' "$*"; }

step "packages"
bash scripts/deps.sh

step "build ($BUILD_DIR)"
cmake -S "$LINLI_REPO" -B "$BUILD_DIR" -DLINLI_SANITIZE=OFF >/dev/null
cmake --build "$BUILD_DIR" -j2

if [[ ! -x "$PRODUCE" ]]; then
  linli_die "$PRODUCE was not built: the demo needs producers/produce (linli-produce)"
fi

step "stack"
bash scripts/stack.sh up

BOOTSTRAP="$(linli_conf kafka bootstrap.servers 127.0.0.1:9092)"

step "producing $(grep -c . "$EVENTS") events from ${EVENTS#"$LINLI_REPO"/}"
# The order's times are made current, so that the payment lands well within
# the order's payment window ([orders] payment_timeout_s).
now_ms="$(date +%s%3N)"
echo "line event_id                   topic partition offset"
sed -E -e "s/\"placed_at_ms\": *\"?[0-9]+\"?/\"placed_at_ms\": \"$((now_ms - 60000))\"/" \
  -e "s/\"paid_at_ms\": *\"?[0-9]+\"?/\"paid_at_ms\": \"$now_ms\"/" "$EVENTS" \
  | "$PRODUCE"

for topic in linli.catalog.v1 linli.inventory.v1 linli.orders.v1; do
  step "$topic (everything on the log, oldest first)"
  kcat -b "$BOOTSTRAP" -C -t "$topic" -o beginning -e -q \
    -f 'partition %p offset %o key %k  (%S bytes)\n'
done

if bash scripts/stack.sh status >/dev/null 2>&1; then
  echo
  echo "The stack is still running. Next:"
else
  echo
  echo "Some stack service is down (scripts/stack.sh status says which). Next:"
fi
printf '  %-62s # %s\n' \
  "kcat -b $BOOTSTRAP -L" "topics and partitions" \
  "kcat -b $BOOTSTRAP -C -t linli.orders.v1 -o beginning -e" "the orders log" \
  "scripts/stack.sh status" "services, ports, data folders" \
  "scripts/stack.sh down" "stop the stack"
