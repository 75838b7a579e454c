#!/usr/bin/env bash
# The compile-time benchmark (issue 16): CPU seconds rustc spends on a generated domain of
# N events and N commands declared with factum's macros, against the same domain written
# with serde and schemars derives and hand-written matches (see README.md here).
#
# Usage: benches/compile-time/run.sh [--reps R] [--check] [--target-dir DIR] [N ...]
#   N                 domain sizes, default 10 100 500
#   --reps R          builds of each crate per size, alternating the two; default 3
#   --check           also time `cargo check` (metadata only)
#   --target-dir DIR  build the dependencies there and keep them for the next run;
#                     default a scratch directory, removed on exit
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

reps=3
modes=(build)
target=""
sizes=()
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --check) modes+=(check); shift ;;
        --target-dir) target="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) sizes+=("$1"); shift ;;
    esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 500)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
target=${target:-$scratch/target}
mkdir -p "$target"
target=$(cd "$target" && pwd)

# What a developer's build does, without incremental caches (a fresh build of the crate).
export CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$target" RUSTC_WRAPPER="$here/rustc-cpu.py"
export FACTUM_BENCH_LOG="$scratch/cpu.log"
unset RUSTC_WORKSPACE_WRAPPER

# The median, lowest and highest of the numbers given.
stats() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f %.2f %.2f\n", v[int((NR + 1) / 2)], v[1], v[NR] }'; }

results=()
for n in "${sizes[@]}"; do
    ws="$scratch/domain-$n"
    python3 "$here/generate.py" "$repo" "$ws" "$n"
    # The repo's lock file: the dependencies are the versions factum is tested with.
    cp "$repo/Cargo.lock" "$repo/rust-toolchain.toml" "$ws/"
    cd "$ws"
    cargo fetch --offline --quiet 2> /dev/null || cargo fetch --quiet
    python3 - "$repo/Cargo.lock" Cargo.lock <<'EOF'
import sys, tomllib
pinned = {}
for package in tomllib.load(open(sys.argv[1], "rb"))["package"]:
    pinned.setdefault(package["name"], set()).add(package["version"])
for package in tomllib.load(open(sys.argv[2], "rb"))["package"]:
    if "source" in package and package["version"] not in pinned.get(package["name"], ()):
        sys.exit(f"{package['name']} {package['version']} is not the repo's Cargo.lock version")
EOF
    for mode in "${modes[@]}"; do
        # The dependencies, and each domain crate once (it must build): not timed.
        echo "N=$n: cargo $mode of the dependencies and both crates (untimed)" >&2
        cargo "$mode" --offline --quiet -p factum-domain -p baseline-domain
        declare -A cpu=([factum_domain]="" [baseline_domain]="")
        for ((rep = 1; rep <= reps; rep++)); do
            # Alternate which crate goes first, so neither always builds on a warmer machine.
            order=(factum_domain baseline_domain)
            [ $((rep % 2)) -eq 1 ] || order=(baseline_domain factum_domain)
            for crate in "${order[@]}"; do
                touch "${crate/_/-}/src/lib.rs"
                : > "$FACTUM_BENCH_LOG"
                FACTUM_BENCH_CRATES="$crate" cargo "$mode" --offline --quiet -p "${crate/_/-}"
                seconds=$(awk -v crate="$crate" '$1 == crate { print $2 }' "$FACTUM_BENCH_LOG")
                [ -n "$seconds" ] || { echo "cargo $mode -p ${crate/_/-} did not compile the crate" >&2; exit 1; }
                echo "N=$n cargo $mode rep $rep: $crate ${seconds}s CPU" >&2
                cpu[$crate]+="$seconds "
            done
        done
        read -r f_med f_min f_max < <(stats ${cpu[factum_domain]})
        read -r b_med b_min b_max < <(stats ${cpu[baseline_domain]})
        ratio=$(awk -v f="$f_med" -v b="$b_med" 'BEGIN { printf "%.2f", f / b }')
        results+=("| $n | cargo $mode | $f_med ($f_min–$f_max) | $b_med ($b_min–$b_max) | ${ratio}x |")
        unset cpu
    done
    cd "$repo"
done

echo
echo "CPU seconds of the domain crate's rustc, median of $reps (lowest–highest):"
echo
echo "| N | command | factum | baseline | factum / baseline |"
echo "|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
