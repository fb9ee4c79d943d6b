#!/bin/sh
# Runs every fuzz target (or the ones named) for FUZZ_SECONDS each (default 180), starting from the
# committed seeds in seeds/<target>/ plus what earlier runs found (corpus/<target>/, not
# committed). Crashes land in artifacts/<target>/; copy each into
# tests/fixtures/fuzz-regressions/<target>/ once fixed. Needs nightly and cargo-fuzz.
set -eu
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-180}
TARGETS=${*:-safetensors_header gguf config}
for t in $TARGETS; do
    mkdir -p "corpus/$t"
    # -a: debug assertions and overflow checks on, as in `cargo test`.
    # The limits make an allocation sized from a length field a crash, not a slow run.
    cargo +nightly fuzz run -a -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10
done
