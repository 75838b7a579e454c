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
NAME=nats.sh
WHAT=server
STATE_FILE="$ROOT/target/nats.state" # "<pid> <store dir>" of the running server
ENV_FILE="$ROOT/target/nats.env"     # FACTUM_NATS_URL=... and FACTUM_NATS_SERVER=...
DIR_PREFIX=factum-nats
PORT="${FACTUM_NATS_PORT:-4229}"
# shellcheck source=scripts/lib/process-server.sh
source scripts/lib/process-server.sh

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

start() {
    fresh_start || return 0
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
    dir=$(mktemp -d "${TMPDIR:-/tmp}/$DIR_PREFIX.XXXXXX")
    log "starting $("$server" --version) on 127.0.0.1:$PORT, JetStream store in $dir"
    # setsid: the server outlives this script's process group (the test script's trap
    # stops it).
    setsid "$server" -js -a 127.0.0.1 -p "$PORT" -sd "$dir/jetstream" \
        > "$dir/server.log" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid $dir" > "$STATE_FILE"
    wait_listening "$pid" "$PORT" "$dir/server.log" "Server is ready"

    {
        echo "FACTUM_NATS_URL=nats://127.0.0.1:$PORT"
        echo "FACTUM_NATS_SERVER=$server"
    } > "$ENV_FILE"
    print_env
}

dispatch "$@"
