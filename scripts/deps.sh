#!/usr/bin/env bash
# deps.sh - installs every Debian 12 package linli needs to build, test and
# run its local stack. Idempotent and non-interactive; a fast no-op (one
# dpkg-query) when everything is present, otherwise apt-get update + install
# as root. Not root and something missing: prints what to install, exits 1.
set -euo pipefail

PKGS=(
  # build
  build-essential pkg-config
  librdkafka-dev libevent-dev libhiredis-dev libprotobuf-c-dev
  protobuf-c-compiler libpq-dev libcunit1-dev libjansson-dev libinih-dev
  libsodium-dev libssl-dev
  # libFuzzer targets of the untrusted-input parsers (scripts/fuzz.sh)
  clang libclang-rt-14-dev
  # local stack and tools
  redis-server postgresql-15 postgresql-client-15 kcat wrk procps curl jq
  ca-certificates
)
# Tools the base image may provide outside dpkg (CI has its own cmake, Java
# 17 and Maven): the Debian package only when the command is missing.
command -v cmake >/dev/null || PKGS+=(cmake)
command -v mvn >/dev/null || PKGS+=(maven)
command -v java >/dev/null || PKGS+=(default-jre-headless)

missing=()
for p in "${PKGS[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
  [[ "$status" == ii* ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "[deps] all ${#PKGS[@]} packages present"
  exit 0
fi

if ((EUID != 0)); then
  echo "[deps] missing Debian packages: ${missing[*]}" >&2
  echo "[deps] install them as root:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "[deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package scripts would start the distribution's own PostgreSQL (5432) and
# Redis (6379) services; linli starts private ones (scripts/stack.sh), so
# keep those from starting during the install (the Docker policy-rc.d idiom;
# removed afterwards, and only if we created it).
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\n# temporary, scripts/deps.sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}"

still=()
for p in "${missing[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
  [[ "$status" == ii* ]] || still+=("$p")
done
if ((${#still[@]} > 0)); then
  echo "[deps] still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
echo "[deps] installed ${#missing[@]} packages"
