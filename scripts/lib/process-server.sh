# What scripts/nats.sh and scripts/kafka.sh share: a throwaway server run as one process
# in a temp dir of its own, its pid and dir kept in a state file, its exports in an env
# file under target/. Sourced; the script sets, before sourcing:
#
#   NAME         the log prefix (`nats.sh`)
#   WHAT         what it runs, in messages (`server`, `broker`)
#   STATE_FILE   where "<pid> <dir>" of the running server is kept
#   ENV_FILE     where its exports are kept (NAME=value lines)
#   DIR_PREFIX   the temp dir's name prefix (`factum-nats`): only such dirs are deleted
#
# and defines `start`; `dispatch "$@"` then runs start, stop or status.

log() { printf '[%s] %s\n' "$NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# The pid and dir of the running server, when it still runs.
running() {
    [[ -f "$STATE_FILE" ]] || return 1
    local pid dir
    read -r pid dir < "$STATE_FILE" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2> /dev/null || return 1
    printf '%s %s' "$pid" "$dir"
}

# Prints the env file's lines as `export` lines (the only output on stdout).
print_env() {
    local line shown=""
    while IFS= read -r line; do
        [[ -n "$line" ]] || continue
        shown+="$line "
        printf 'export %s\n' "$line"
    done < "$ENV_FILE"
    log "${shown}(also in ${ENV_FILE#"$PWD"/})"
}

# Waits until the server with `pid` listens on `port` (and, if given, its log `file`
# holds `ready`); dies with the log's tail when it exits or takes over 30 s.
wait_listening() { # PID PORT FILE [READY]
    local pid=$1 port=$2 file=$3 ready=${4:-} waited=0
    until port_in_use "$port" && { [[ -z "$ready" ]] || grep -q "$ready" "$file"; }; do
        if ! kill -0 "$pid" 2> /dev/null; then
            die "the $WHAT exited: $(tail -n 20 "$file")"
        fi
        if ((waited >= 300)); then
            kill "$pid" 2> /dev/null || true
            die "the $WHAT did not answer within 30 s: $(tail -n 20 "$file")"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# Stops the server recorded in the state file (if any) and deletes its dir.
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
            */"$DIR_PREFIX".*) rm -rf "$dir" ;;
        esac
    fi
    rm -f "$STATE_FILE" "$ENV_FILE"
}

stop() {
    if [[ -f "$STATE_FILE" ]]; then
        log "stopping the $WHAT ($(cat "$STATE_FILE")) and deleting its files"
    else
        log "no $WHAT to stop"
    fi
    stop_quietly
}

status() {
    local state
    if state=$(running) && [[ -f "$ENV_FILE" ]]; then
        log "running (pid and dir: $state)"
        print_env
    else
        log "not running"
        return 1
    fi
}

# Reuses a running server, or clears what a dead one left; returns 1 when reused.
fresh_start() {
    mkdir -p "$(dirname "$STATE_FILE")"
    if running > /dev/null && [[ -f "$ENV_FILE" ]]; then
        log "already running"
        print_env
        return 1
    fi
    stop_quietly
}

dispatch() {
    case "${1:-}" in
        start) start ;;
        stop) stop ;;
        status) status ;;
        *)
            echo "usage: $0 start|stop|status" >&2
            exit 2
            ;;
    esac
}
