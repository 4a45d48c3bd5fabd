#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each:
#   ./fuzz/run.sh [SECONDS [TARGET...]]     (default 60 seconds, every target)
# Needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). New inputs go to a
# scratch corpus; the committed fuzz/corpus/TARGET is only read. Crashes land in
# fuzz/artifacts/TARGET, and the script exits non-zero if any target found one. At the end
# it prints each target's number of runs. Without cargo-fuzz the rules corpus still runs on
# stable as a plain test: cargo test -p rqmail-rules fuzz_corpus; any committed corpus can be
# replayed with cargo +nightly fuzz run TARGET fuzz/corpus/TARGET -- -runs=0.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS [TARGET...]]" >&2; exit 100 ;;
esac
shift $(( $# > 0 ? 1 : 0 ))

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 111
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: needs cargo-fuzz: cargo install cargo-fuzz" >&2
    exit 111
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
summary=()
failed=0
for target in "${targets[@]}"; do
    echo "fuzz/run.sh: $target for ${seconds}s"
    mkdir -p "$scratch/$target" "corpus/$target"
    status=0
    cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 2>&1 | tee "$scratch/$target.log" || status=$?
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$scratch/$target.log")
    if [ "$status" = 0 ]; then
        summary+=("$target: ${runs:-?}, clean")
    else
        summary+=("$target: FAILED (status $status), see fuzz/artifacts/$target")
        failed=1
    fi
done
echo
echo "fuzz/run.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), ${seconds}s per target"
printf '  %s\n' "${summary[@]}"
exit "$failed"
