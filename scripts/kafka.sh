#!/usr/bin/env bash
# A throwaway Kafka-protocol broker for factum's Kafka bus tests: nisshi 0.8.1 (Apache
# Kafka itself cannot be installed here), in memory, on loopback.
#
#   scripts/kafka.sh start    build nisshi if it is not cached yet (it needs rustc >= 1.96,
#                             the `nightly` toolchain; ~8 minutes on 2 cores, once: the
#                             binary is kept under ~/.cache/factum/nisshi-0.8.1), start it on
#                             127.0.0.1 with in-memory storage; prints
#                             `export FACTUM_KAFKA_BROKERS=...` and
#                             `export FACTUM_KAFKA_SERVER=...` (the binary, so tests can run
#                             brokers of their own that they stop and restart) and writes
#                             target/kafka.env. Idempotent: a running broker is reused.
#   scripts/kafka.sh stop     stop the broker.
#   scripts/kafka.sh status   exit 0 when the broker runs, and print its exports.
#
# Typical use:  eval "$(scripts/kafka.sh start)" && cargo test -p factum --features kafka,sqlite
#
# The port is FACTUM_KAFKA_PORT (default 9192; the next free one if taken); the cache is
# FACTUM_KAFKA_CACHE (default ~/.cache/factum). Everything goes to stderr except the export
# lines.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$(pwd)
STATE_DIR="$ROOT/target"
STATE_FILE="$STATE_DIR/kafka.state" # "<pid> <log dir>" of the running broker
ENV_FILE="$STATE_DIR/kafka.env"     # FACTUM_KAFKA_BROKERS=... and FACTUM_KAFKA_SERVER=...
PORT="${FACTUM_KAFKA_PORT:-9192}"
VERSION=0.8.1
CACHE="${FACTUM_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/factum}/nisshi-$VERSION"
BROKER="$CACHE/bin/nisshi"

log() { printf '[kafka.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

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
    log "building nisshi $VERSION with $(rustup run nightly rustc --version) (once; ~8 minutes on 2 cores)"
    mkdir -p "$CACHE"
    if ! CARGO_PROFILE_DEV_DEBUG=0 CARGO_TARGET_DIR="$target" rustup run nightly cargo install \
        --debug --locked --no-default-features --features dynostore \
        --root "$CACHE" "nisshi@$VERSION" < /dev/null >&2; then
        rm -rf "$target"
        die "building nisshi $VERSION failed (see above)"
    fi
    rm -rf "$target"
    [[ -x "$BROKER" ]] || die "built nisshi, but $BROKER is missing"
}

port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# The pid and log dir of the running broker, when it still runs.
running() {
    [[ -f "$STATE_FILE" ]] || return 1
    local pid dir
    read -r pid dir < "$STATE_FILE" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2> /dev/null || return 1
    printf '%s %s' "$pid" "$dir"
}

print_env() {
    local brokers server
    brokers=$(sed -n 's/^FACTUM_KAFKA_BROKERS=//p' "$ENV_FILE")
    server=$(sed -n 's/^FACTUM_KAFKA_SERVER=//p' "$ENV_FILE")
    log "FACTUM_KAFKA_BROKERS=$brokers FACTUM_KAFKA_SERVER=$server (also in target/kafka.env)"
    printf 'export FACTUM_KAFKA_BROKERS=%s\n' "$brokers"
    printf 'export FACTUM_KAFKA_SERVER=%s\n' "$server"
}

start() {
    mkdir -p "$STATE_DIR"
    if running > /dev/null && [[ -f "$ENV_FILE" ]]; then
        log "already running"
        print_env
        return
    fi
    stop_quietly
    [[ -x "$BROKER" ]] || build_broker

    while port_in_use "$PORT"; do
        PORT=$((PORT + 1))
    done

    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/factum-kafka.XXXXXX")
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

    local waited=0
    until port_in_use "$PORT"; do
        if ! kill -0 "$pid" 2> /dev/null; then
            die "the broker exited: $(tail -n 20 "$dir/broker.log")"
        fi
        if ((waited >= 300)); then
            kill "$pid" 2> /dev/null || true
            die "the broker did not answer within 30 s: $(tail -n 20 "$dir/broker.log")"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done

    {
        echo "FACTUM_KAFKA_BROKERS=127.0.0.1:$PORT"
        echo "FACTUM_KAFKA_SERVER=$BROKER"
    } > "$ENV_FILE"
    print_env
}

# Stops the broker recorded in the state file (if any) and deletes its log dir.
stop_quietly() {
    if [[ -f "$STATE_FILE" ]]; then
        local pid dir
        read -r pid dir < "$STATE_FILE" || true
        if [[ -n "${pid:-}" ]] && kill -0 "$pid" 2> /dev/null; then
            kill "$pid" 2> /dev/null || true
            local waited=0
            while kill -0 "$pid" 2> /dev/null && ((waited < 100)); do
                sleep 0.1
                waited=$((waited + 1))
            done
            kill -9 "$pid" 2> /dev/null || true
        fi
        # Only ever delete what this script created.
        case "${dir:-}" in
            */factum-kafka.*) rm -rf "$dir" ;;
        esac
    fi
    rm -f "$STATE_FILE" "$ENV_FILE"
}

stop() {
    if [[ -f "$STATE_FILE" ]]; then
        log "stopping the broker ($(cat "$STATE_FILE"))"
    else
        log "no broker to stop"
    fi
    stop_quietly
}

status() {
    local state
    if state=$(running) && [[ -f "$ENV_FILE" ]]; then
        log "running (pid and log dir: $state)"
        print_env
    else
        log "not running"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    build) [[ -x "$BROKER" ]] || build_broker ;;
    *)
        echo "usage: $0 start|stop|status|build" >&2
        exit 2
        ;;
esac
