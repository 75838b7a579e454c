#!/usr/bin/env bash
# A throwaway Kafka-protocol broker for factum's Kafka bus tests: nisshi 0.8.1 (Apache
# Kafka itself cannot be installed here), in memory, on loopback. It is built with its
# PostgreSQL storage engine too, so a test can run a broker of its own that keeps its log
# in a database and loses nothing when it is killed and restarted.
#
#   scripts/kafka.sh start    build nisshi if it is not cached yet (it needs rustc >= 1.96,
#                             the `nightly` toolchain; ~10 minutes on 2 cores, once: the
#                             binary is kept under
#                             ~/.cache/factum/nisshi-0.8.1-dynostore-postgres), start it on
#                             127.0.0.1 with in-memory storage; prints
#                             `export FACTUM_KAFKA_BROKERS=...` and
#                             `export FACTUM_KAFKA_SERVER=...` (the binary, so tests can run
#                             brokers of their own that they stop and restart) and writes
#                             target/kafka.env. Idempotent: a running broker is reused.
#   scripts/kafka.sh stop     stop the broker.
#   scripts/kafka.sh status   exit 0 when the broker runs, and print its exports.
#   scripts/kafka.sh build    only build (or find cached) the broker.
#
# Typical use:  eval "$(scripts/kafka.sh start)" && cargo test -p factum --features kafka,sqlite
#
# The port is FACTUM_KAFKA_PORT (default 9192; the next free one if taken); the cache is
# FACTUM_KAFKA_CACHE (default ~/.cache/factum). Everything goes to stderr except the export
# lines.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$(pwd)
NAME=kafka.sh
WHAT=broker
STATE_FILE="$ROOT/target/kafka.state" # "<pid> <log dir>" of the running broker
ENV_FILE="$ROOT/target/kafka.env"     # FACTUM_KAFKA_BROKERS=... and FACTUM_KAFKA_SERVER=...
DIR_PREFIX=factum-kafka
PORT="${FACTUM_KAFKA_PORT:-9192}"
VERSION=0.8.1
# Storage engines: memory (`dynostore`) and PostgreSQL.
FEATURES=dynostore,postgres
CACHE="${FACTUM_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/factum}/nisshi-$VERSION-${FEATURES//,/-}"
BROKER="$CACHE/bin/nisshi"
# shellcheck source=scripts/lib/process-server.sh
source scripts/lib/process-server.sh

# Builds nisshi into the cache with the nightly toolchain, in a temporary target dir
# that is deleted after (~1.9 GB).
build_broker() {
    command -v rustup > /dev/null || die "rustup is missing: nisshi is built with the nightly toolchain"
    if ! rustup run nightly rustc --version > /dev/null 2>&1; then
        log "installing the nightly toolchain (nisshi needs rustc >= 1.96)"
        rustup toolchain install nightly --profile minimal >&2 ||
            die "the nightly toolchain is missing and could not be installed: the Kafka tests need it to build their broker"
    fi
    local target
    target=$(mktemp -d "${TMPDIR:-/tmp}/factum-nisshi-build.XXXXXX")
    log "building nisshi $VERSION ($FEATURES) with $(rustup run nightly rustc --version) (once; ~10 minutes on 2 cores)"
    mkdir -p "$CACHE"
    if ! CARGO_PROFILE_DEV_DEBUG=0 CARGO_TARGET_DIR="$target" rustup run nightly cargo install \
        --debug --locked --no-default-features --features "$FEATURES" \
        --root "$CACHE" "nisshi@$VERSION" < /dev/null >&2; then
        rm -rf "$target"
        die "building nisshi $VERSION failed (see above)"
    fi
    rm -rf "$target"
    [[ -x "$BROKER" ]] || die "built nisshi, but $BROKER is missing"
}

start() {
    fresh_start || return 0
    [[ -x "$BROKER" ]] || build_broker

    while port_in_use "$PORT"; do
        PORT=$((PORT + 1))
    done

    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/$DIR_PREFIX.XXXXXX")
    log "starting nisshi $VERSION on 127.0.0.1:$PORT (in memory), its log in $dir/broker.log"
    # setsid: the broker outlives this script's process group (the test script's trap
    # stops it).
    setsid "$BROKER" broker \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "memory://nisshi/" \
        --group-initial-rebalance-delay 0s \
        > "$dir/broker.log" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid $dir" > "$STATE_FILE"
    wait_listening "$pid" "$PORT" "$dir/broker.log"

    {
        echo "FACTUM_KAFKA_BROKERS=127.0.0.1:$PORT"
        echo "FACTUM_KAFKA_SERVER=$BROKER"
    } > "$ENV_FILE"
    print_env
}

if [[ "${1:-}" == build ]]; then
    [[ -x "$BROKER" ]] || build_broker
    exit 0
fi
dispatch "$@"
