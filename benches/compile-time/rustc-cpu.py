#!/usr/bin/env python3
"""RUSTC_WRAPPER of the compile-time benchmark: runs rustc as given and, when the crate
compiled is one of FACTUM_BENCH_CRATES (comma-separated crate names), appends
`<crate> <cpu seconds> <wall seconds>` to FACTUM_BENCH_LOG. CPU is user + system time of
rustc and everything it waited for (its threads, a linker), from getrusage."""

import os
import resource
import subprocess
import sys
import time

args = sys.argv[1:]
start = time.monotonic()
# The jobserver's descriptors stay open: rustc shares the build's job slots through them.
status = subprocess.call(args, close_fds=False)
wall = time.monotonic() - start
crate = args[args.index("--crate-name") + 1] if "--crate-name" in args else None
if status == 0 and crate in os.environ.get("FACTUM_BENCH_CRATES", "").split(","):
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.environ["FACTUM_BENCH_LOG"], "a") as log:
        log.write(f"{crate} {usage.ru_utime + usage.ru_stime:.3f} {wall:.3f}\n")
sys.exit(status)
