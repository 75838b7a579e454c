#!/usr/bin/env bash
# Runs every test of factum, installing what the tests need first.
# Usage: ./scripts/test.sh          (from anywhere in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: $(cargo --version), $(rustc --version)"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# Every feature of the runtime is tested: the conformance suite, and each store backend.
features="factum/conformance"

step "formatting"
cargo fmt --all -- --check

step "clippy, warnings denied"
cargo clippy --workspace --all-targets --features "$features" --locked -- -D warnings

step "tests: unit, integration, properties, snapshots, compile-fail UI, doc tests"
# CI=true makes insta fail on a changed snapshot instead of writing a new one.
test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
CI="${CI:-true}" cargo test --workspace --all-targets --features "$features" --locked 2>&1 | tee "$test_log"
CI="${CI:-true}" cargo test --workspace --doc --features "$features" --locked 2>&1 | tee -a "$test_log"

step "documentation builds without broken links"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --features "$features" --locked --quiet

step "the main job runs end to end"
cargo run --quiet --locked -p factum-example-orders --bin orders > /dev/null

step "all tests passed"
# One closing line for all the test binaries above.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$test_log"
