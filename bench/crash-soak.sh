#!/bin/bash
# Crash soak: N messages over SMTP while random rqmail processes are killed with SIGKILL
# (bench/crash_soak.py says how); prints accepted, lost, late, duplicated. An instance is
# made afresh by the quick start (--setup-only) and run by the script's own supervisor loop.
#
#   bench/crash-soak.sh
#
# Environment (all optional): N=2000 messages, KILL_MS=50 (mean time between kills),
# DRAIN=120 (seconds the queue gets after the killing), CLIENTS=4, SEED=1, PORT=12025 (the
# SMTP port; the quick start's base is PORT-25), BENCH_DIR (default target/bench-crash),
# BINDIR (default target/release, built if missing).
set -eu
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")
dir=${BENCH_DIR:-$repo/target/bench-crash}
bindir=${BINDIR:-$repo/target/release}
port=${PORT:-12025}
[ -x "$bindir/rqmail-start" ] || (cd "$repo" && cargo build --release --workspace)
rm -rf "$dir"
mkdir -p "$dir"
chmod 755 "$dir"
"$repo/install/quickstart.sh" --dir "$dir/run" --base-port $((port - 25)) --bindir "$bindir" \
	--setup-only >/dev/null
run_as=
if [ "$(id -u)" = 0 ]; then
	run_as="$(id -u nobody):$(id -g nobody)"
fi
DIR="$dir/run" PORT=$port RUN_AS=$run_as exec python3 "$here/crash_soak.py"
