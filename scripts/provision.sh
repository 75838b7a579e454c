#!/usr/bin/env bash
# Installs and starts what factum's tests need, so that a fresh Debian machine runs them:
# the pinned Rust toolchain with rustfmt and clippy (rust-toolchain.toml), Node.js and npm
# (the TypeScript contract checks), Python with venv (the Python contract checks),
# Chromium (the web console's browser test), DejaVu fonts (the scale bench's plot), and
# throwaway PostgreSQL and NATS JetStream servers and a Kafka-protocol broker (nisshi,
# built once with the nightly toolchain and cached) on loopback.
#
#   eval "$(scripts/provision.sh)"    install what is missing, start the servers, and
#                                     export their URLs (FACTUM_POSTGRES_URL,
#                                     FACTUM_NATS_URL, FACTUM_NATS_SERVER,
#                                     FACTUM_KAFKA_BROKERS, FACTUM_KAFKA_SERVER)
#   scripts/provision.sh stop         stop the servers and delete their data
#
# Idempotent: what is installed stays, a running server is reused. Everything goes to
# stderr except the export lines. scripts/test.sh calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[provision.sh] %s\n' "$*" >&2; }

apt_install() { # PACKAGE...
    [[ $(id -u) -eq 0 ]] || { log "error: installing $* needs root (apt-get install $*)"; exit 1; }
    command -v apt-get > /dev/null || { log "error: $* missing and apt-get is not available"; exit 1; }
    log "installing $* from Debian packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq < /dev/null >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" < /dev/null > /dev/null
}

if [[ "${1:-}" == stop ]]; then
    scripts/postgres.sh stop || true
    scripts/nats.sh stop || true
    scripts/kafka.sh stop || true
    exit 0
fi

# rustup installs the toolchain rust-toolchain.toml pins (and its components) on first
# use in this directory; `rustup show` makes that happen here, not inside a cargo call.
command -v rustup > /dev/null || { log "error: rustup is missing (https://rustup.rs)"; exit 1; }
rustup show active-toolchain >&2 || rustup toolchain install >&2
for component in rustfmt clippy; do
    rustup component list --installed 2> /dev/null | grep -q "^$component" || rustup component add "$component" >&2
done
log "toolchain: $(cargo --version), $(rustc --version)"

if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    apt_install nodejs npm
fi
log "node $(node --version), npm $(npm --version); the tests install typescript@5.6.3 into target/tmp/ts-tools"

if ! python3 -m venv --help > /dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
fi
log "$(python3 --version); the tests install pydantic 2.9.2 and mypy 1.13.0 into a venv under target/tmp"

if ! command -v chromium > /dev/null; then
    apt_install chromium
fi
log "$(chromium --version 2> /dev/null | head -n 1) (the console's browser test drives it headless)"

# The scale bench (benches/benches/scale.rs, run once by the tests) draws the text of its
# plot with DejaVu Sans.
if [[ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
    apt_install fonts-dejavu-core
fi

# The servers print their export lines on stdout: the only output of this script.
scripts/postgres.sh start
scripts/nats.sh start
scripts/kafka.sh start
