#!/usr/bin/env bash
# A throwaway PostgreSQL server for factum's PostgreSQL tests and benchmarks.
#
#   scripts/postgres.sh start    install PostgreSQL (Debian packages) if missing, create a
#                                cluster in a temp dir, start it on 127.0.0.1, create the
#                                database `factum`; prints `export FACTUM_POSTGRES_URL=...`
#                                and writes target/postgres.env. Idempotent: a running
#                                server is reused.
#   scripts/postgres.sh stop     stop the server and delete its cluster.
#   scripts/postgres.sh status   exit 0 when the server runs, and print its URL.
#
# Typical use:  eval "$(scripts/postgres.sh start)" && cargo test -p factum --features postgres
#
# Durability is PostgreSQL's default (fsync, synchronous_commit and full_page_writes on),
# so benchmarks measure real commits. Everything goes to stderr except the export line.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$(pwd)
STATE_DIR="$ROOT/target"
STATE_FILE="$STATE_DIR/postgres.state" # the data directory of the running cluster
ENV_FILE="$STATE_DIR/postgres.env"     # FACTUM_POSTGRES_URL=...
PORT="${FACTUM_POSTGRES_PORT:-54329}"
DATABASE=factum

log() { printf '[postgres.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The newest installed server's bin directory (Debian keeps it off PATH), or nothing.
find_bindir() {
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]] && best="$dir"
    done
    if [[ -z "$best" ]] && command -v pg_config > /dev/null; then
        dir=$(pg_config --bindir 2> /dev/null || true)
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && best="$dir"
    fi
    printf '%s' "$best"
}

install_postgres() {
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and installing needs root (apt-get install postgresql)"
    command -v apt-get > /dev/null || die "PostgreSQL is not installed and apt-get is missing"
    log "installing PostgreSQL from Debian packages"
    # No default cluster on port 5432: this script makes its own.
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        mkdir -p /etc/postgresql-common
        echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq -o Dpkg::Options::=--force-confold postgresql >&2
}

# Runs a command as the owner of the cluster: `postgres` when we are root (the server
# refuses to run as root), else the current user.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

url_for() { printf 'postgres://postgres@127.0.0.1:%s/%s' "$1" "$DATABASE"; }

running_datadir() {
    [[ -f "$STATE_FILE" ]] || return 1
    local datadir
    datadir=$(cat "$STATE_FILE")
    [[ -d "$datadir" ]] || return 1
    local bindir
    bindir=$(find_bindir)
    [[ -n "$bindir" ]] || return 1
    as_owner "$bindir/pg_ctl" -D "$datadir/data" status > /dev/null 2>&1 || return 1
    printf '%s' "$datadir"
}

print_env() {
    local url
    url=$(sed -n 's/^FACTUM_POSTGRES_URL=//p' "$ENV_FILE")
    log "FACTUM_POSTGRES_URL=$url (also in target/postgres.env)"
    printf 'export FACTUM_POSTGRES_URL=%s\n' "$url"
}

start() {
    mkdir -p "$STATE_DIR"
    if running_datadir > /dev/null && [[ -f "$ENV_FILE" ]]; then
        log "already running"
        print_env
        return
    fi
    stop_quietly

    local bindir
    bindir=$(find_bindir)
    if [[ -z "$bindir" ]]; then
        install_postgres
        bindir=$(find_bindir)
        [[ -n "$bindir" ]] || die "installed PostgreSQL, but found no initdb under /usr/lib/postgresql"
    fi
    if [[ $(id -u) -eq 0 ]] && ! id postgres > /dev/null 2>&1; then
        die "running as root needs the 'postgres' OS user (created by the Debian package)"
    fi

    while port_in_use "$PORT"; do
        PORT=$((PORT + 1))
    done

    local datadir
    datadir=$(mktemp -d "${TMPDIR:-/tmp}/factum-postgres.XXXXXX")
    [[ $(id -u) -eq 0 ]] && chown postgres: "$datadir"
    chmod 700 "$datadir"
    echo "$datadir" > "$STATE_FILE"

    log "creating a cluster in $datadir ($("$bindir/postgres" --version))"
    as_owner "$bindir/initdb" -D "$datadir/data" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale > "$datadir/initdb.log" 2>&1 ||
        die "initdb failed: $(cat "$datadir/initdb.log")"

    log "starting it on 127.0.0.1:$PORT"
    as_owner "$bindir/pg_ctl" -D "$datadir/data" -l "$datadir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$datadir \
            -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
            -c max_connections=200 -c shared_buffers=256MB" \
        start > /dev/null || die "the server did not start: $(tail -n 20 "$datadir/server.log")"

    as_owner "$bindir/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres \
        -c "CREATE DATABASE $DATABASE" > /dev/null || die "could not create database $DATABASE"

    echo "FACTUM_POSTGRES_URL=$(url_for "$PORT")" > "$ENV_FILE"
    print_env
}

# Stops the cluster recorded in the state file (if any) and deletes it.
stop_quietly() {
    [[ -f "$STATE_FILE" ]] || {
        rm -f "$ENV_FILE"
        return 0
    }
    local datadir bindir
    datadir=$(cat "$STATE_FILE")
    bindir=$(find_bindir)
    if [[ -n "$bindir" && -d "$datadir/data" ]]; then
        as_owner "$bindir/pg_ctl" -D "$datadir/data" -m fast -w stop > /dev/null 2>&1 || true
    fi
    # Only ever delete what this script created.
    case "$datadir" in
        */factum-postgres.*) rm -rf "$datadir" ;;
    esac
    rm -f "$STATE_FILE" "$ENV_FILE"
}

stop() {
    if [[ -f "$STATE_FILE" ]]; then
        log "stopping the cluster in $(cat "$STATE_FILE") and deleting it"
    else
        log "no cluster to stop"
    fi
    stop_quietly
}

status() {
    local datadir
    if datadir=$(running_datadir) && [[ -f "$ENV_FILE" ]]; then
        log "running, cluster in $datadir"
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
