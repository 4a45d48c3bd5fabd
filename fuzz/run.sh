#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each: ./fuzz/run.sh [SECONDS] (default 60).
# Needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). New inputs go to a
# scratch corpus; the committed fuzz/corpus/TARGET is only read. Crashes land in
# fuzz/artifacts/TARGET. Without cargo-fuzz the committed corpus still runs on stable as a
# plain test: cargo test -p rqmail-rules fuzz_corpus.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 100 ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 111
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: needs cargo-fuzz: cargo install cargo-fuzz" >&2
    exit 111
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
    echo "fuzz/run.sh: $target for ${seconds}s"
    mkdir -p "$scratch/$target" "corpus/$target"
    cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10
done
