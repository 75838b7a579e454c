#!/usr/bin/env bash
# A throwaway NATS server with JetStream for factum's event-bus tests.
#
#   scripts/nats.sh start    install nats-server (Debian package) if missing, start it with
#                            JetStream on 127.0.0.1, its store in a temp dir; prints
#                            `export FACTUM_NATS_URL=...` and `export FACTUM_NATS_SERVER=...`
#                            (the binary, so tests can run servers of their own that they
#                            stop and restart) and writes target/nats.env. Idempotent: a
#                            running server is reused.
#   scripts/nats.sh stop     stop the server and delete its store.
#   scripts/nats.sh status   exit 0 when the server runs, and print its exports.
#
# Typical use:  eval "$(scripts/nats.sh start)" && cargo test -p factum --features nats,sqlite
#
# The port is FACTUM_NATS_PORT (default 4229; the next free one if taken). Everything goes
# to stderr except the export lines.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$(pwd)
STATE_DIR="$ROOT/target"
STATE_FILE="$STATE_DIR/nats.state" # "<pid> <store dir>" of the running server
ENV_FILE="$STATE_DIR/nats.env"     # FACTUM_NATS_URL=... and FACTUM_NATS_SERVER=...
PORT="${FACTUM_NATS_PORT:-4229}"

log() { printf '[nats.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The nats-server binary (Debian installs it in /usr/sbin, which may be off PATH), or nothing.
find_server() {
    local candidate
    for candidate in "$(command -v nats-server 2> /dev/null || true)" /usr/sbin/nats-server /usr/bin/nats-server; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            printf '%s' "$candidate"
            return
        fi
    done
}

install_server() {
    [[ $(id -u) -eq 0 ]] || die "nats-server is not installed and installing needs root (apt-get install nats-server)"
    command -v apt-get > /dev/null || die "nats-server is not installed and apt-get is missing"
    log "installing nats-server from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq nats-server >&2
    # The package may enable a system service on the default port; this script runs its own.
    if command -v systemctl > /dev/null && systemctl is-active --quiet nats-server 2> /dev/null; then
        systemctl stop nats-server >&2 || true
    fi
}

port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# The pid and store dir of the running server, when it still runs.
running() {
    [[ -f "$STATE_FILE" ]] || return 1
    local pid dir
    read -r pid dir < "$STATE_FILE" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2> /dev/null || return 1
    printf '%s %s' "$pid" "$dir"
}

print_env() {
    local url server
    url=$(sed -n 's/^FACTUM_NATS_URL=//p' "$ENV_FILE")
    server=$(sed -n 's/^FACTUM_NATS_SERVER=//p' "$ENV_FILE")
    log "FACTUM_NATS_URL=$url FACTUM_NATS_SERVER=$server (also in target/nats.env)"
    printf 'export FACTUM_NATS_URL=%s\n' "$url"
    printf 'export FACTUM_NATS_SERVER=%s\n' "$server"
}

start() {
    mkdir -p "$STATE_DIR"
    if running > /dev/null && [[ -f "$ENV_FILE" ]]; then
        log "already running"
        print_env
        return
    fi
    stop_quietly

    local server
    server=$(find_server)
    if [[ -z "$server" ]]; then
        install_server
        server=$(find_server)
        [[ -n "$server" ]] || die "installed nats-server, but found no binary"
    fi

    while port_in_use "$PORT"; do
        PORT=$((PORT + 1))
    done

    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/factum-nats.XXXXXX")
    log "starting $("$server" --version) on 127.0.0.1:$PORT, JetStream store in $dir"
    # setsid: the server outlives this script's process group (the test script's trap
    # stops it).
    setsid "$server" -js -a 127.0.0.1 -p "$PORT" -sd "$dir/jetstream" \
        > "$dir/server.log" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid $dir" > "$STATE_FILE"

    local waited=0
    until port_in_use "$PORT" && grep -q "Server is ready" "$dir/server.log"; do
        if ! kill -0 "$pid" 2> /dev/null; then
            die "the server exited: $(tail -n 20 "$dir/server.log")"
        fi
        if ((waited >= 300)); then
            kill "$pid" 2> /dev/null || true
            die "the server did not answer within 30 s: $(tail -n 20 "$dir/server.log")"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done

    {
        echo "FACTUM_NATS_URL=nats://127.0.0.1:$PORT"
        echo "FACTUM_NATS_SERVER=$server"
    } > "$ENV_FILE"
    print_env
}

# Stops the server recorded in the state file (if any) and deletes its store.
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
            */factum-nats.*) rm -rf "$dir" ;;
        esac
    fi
    rm -f "$STATE_FILE" "$ENV_FILE"
}

stop() {
    if [[ -f "$STATE_FILE" ]]; then
        log "stopping the server ($(cat "$STATE_FILE")) and deleting its store"
    else
        log "no server to stop"
    fi
    stop_quietly
}

status() {
    local state
    if state=$(running) && [[ -f "$ENV_FILE" ]]; then
        log "running (pid and store: $state)"
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
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
