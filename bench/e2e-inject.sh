#!/bin/bash
# End-to-end benchmark: messages per second from parallel rqmail-inject to delivered in a
# Maildir, beside the disk's own durable-file rate measured in the same run.
#
#   bench/e2e-inject.sh [--tools DIR]
#
# Environment (all optional):
#   N=2000            messages per case
#   PARALLEL=1,8,32   numbers of parallel injectors
#   SIZES=4096        message sizes in bytes
#   BENCH_DIR         the scratch instance (default: target/bench-run in the repo); it must be
#                     on the filesystem to measure, and is made afresh on every run
#   RQMAIL_BENCH_TOOLS  the shared bench tools (fsync-limit/); default ../shared/bench
#                     relative to the repo root; --tools overrides it
#   FSYNC_RUNS=5 FSYNC_SECS=3   fsync-limit's -r and -t
#   FSYNC_CHURN=DEPTH  add fsync-limit -c DEPTH (the deletions of a busy queue) to the disk reference
#   DISK_FIRST=0      1: measure the disk before rqmail instead of after
#   SETTLE=2          seconds of quiet (after a sync) before each case
#   TIMEOUT=60        seconds without progress before a case is given up
# See bench/README.md for what is measured and how.
set -eu

die() {
	echo "e2e-inject: $*" >&2
	exit 100
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")
tools=${RQMAIL_BENCH_TOOLS:-$repo/../shared/bench}
while [ $# -gt 0 ]; do
	case $1 in
	--tools) [ $# -ge 2 ] || die "--tools needs a value"; tools=$2; shift 2 ;;
	--tools=*) tools=${1#*=}; shift ;;
	-h | --help) sed -n '2,/^# See/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
[ -x "$tools/fsync-limit/run.sh" ] ||
	die "no fsync-limit/run.sh in '$tools': set RQMAIL_BENCH_TOOLS or --tools to the shared bench directory"
tools=$(cd "$tools" && pwd -P)

run=${BENCH_DIR:-$repo/target/bench-run}
if [ -e "$run" ]; then
	[ -e "$run/.rqmail-bench" ] || die "$run exists and is not a benchmark instance; remove it or set BENCH_DIR"
	run=$(cd "$run" && pwd -P)
	# An instance still running there would work on the new queue too: refuse.
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in
		"$run"/bin/*) die "${p#/proc/} ($(readlink "$p/exe")) still runs from $run; stop it first" ;;
		esac
	done
	rm -rf "$run"
fi
# On ext4, the T attribute puts each directory made in $run (the queue, the homes, the disk
# reference's scratch directory) in a block group of its own, away from the inodes freed by
# earlier runs, which a file system without a journal skips on every create for seconds to
# minutes (bench/README.md). Best effort: elsewhere nothing changes.
mkdir -p "$run"
chattr +T "$run" 2>/dev/null || :

# The quick start builds the release binaries and makes the instance (as nobody when root).
echo "e2e-inject: building and setting up $run" >&2
"$repo/install/quickstart.sh" --setup-only --dir "$run" --base-port "${BASE_PORT:-20000}" \
	--domain bench.test --user bench >"${run%/}.setup.log" 2>&1 ||
	{ cat "${run%/}.setup.log" >&2; die "quickstart failed"; }
mv "${run%/}.setup.log" "$run/setup.log"
: >"$run/.rqmail-bench"

# The driver runs as the instance's user: injected files must belong to it, as the
# setuid rqmail-queue would make them in a real install.
if [ "$(id -u)" = 0 ]; then
	owner=$(stat -c %u "$run")
	group=$(stat -c %g "$run")
	exec setpriv --reuid="$owner" --regid="$group" --clear-groups -- \
		/usr/bin/env python3 "$here/e2e_inject.py" "$run" "$tools"
fi
exec python3 "$here/e2e_inject.py" "$run" "$tools"
