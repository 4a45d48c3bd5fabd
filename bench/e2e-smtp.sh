#!/bin/bash
# End-to-end SMTP benchmark: messages per second accepted by rqmail-smtpd under
# rqmail-tcpserver and delivered to a Maildir, at 1, 8 and 32 concurrent client connections,
# beside the disk's own durable-file rate measured in the same run; and the memory of one
# idle SMTP session.
#
#   bench/e2e-smtp.sh [--tools DIR]
#
# Environment (all optional):
#   N=2000            messages per run
#   RUNS=3            runs per case (smtp-load.py's RUNS; the table shows medians)
#   CONCURRENCY=1,8,32  concurrent client connections, one connection per message
#   REUSE_AT=8        also run with every message of a client over one connection (REUSE=1)
#                     at these concurrencies; empty: not at all
#   SIZE=4096         message size in bytes
#   MEM_CONNS=20      idle sessions opened for the memory figure
#   BENCH_DIR         the scratch instance (default: target/bench-smtp in the repo); it must be
#                     on the filesystem to measure, and is made afresh on every run
#   RQMAIL_BENCH_TOOLS  the shared bench tools (smtp-load.py, fsync-limit/); default
#                     ../shared/bench relative to the repo root; --tools overrides it
#   GENERATOR         smtp-source or python (smtp-load.py's choice by default)
#   FSYNC_RUNS=5 FSYNC_SECS=3   fsync-limit's -r and -t
#   FSYNC_CHURN=DEPTH  add fsync-limit -c DEPTH (the deletions of a busy queue) to the disk reference
#   DISK_FIRST=0      1: measure the disk before rqmail instead of after
#   SETTLE=2          seconds of quiet (after a sync) before each run
#   TIMEOUT=120       seconds a run may take to deliver everything
#   TCPSERVER_OPTS="-c 200 -b 64"  rqmail-tcpserver's limit and backlog
# See bench/README.md for what is measured and how.
set -eu

die() {
	echo "e2e-smtp: $*" >&2
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
[ -x "$tools/fsync-limit/run.sh" ] && [ -f "$tools/smtp-load.py" ] ||
	die "no fsync-limit/run.sh or smtp-load.py in '$tools': set RQMAIL_BENCH_TOOLS or --tools to the shared bench directory"
tools=$(cd "$tools" && pwd -P)

run=${BENCH_DIR:-$repo/target/bench-smtp}
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

# The quick start builds the release binaries and makes the instance (as nobody when root).
echo "e2e-smtp: building and setting up $run" >&2
"$repo/install/quickstart.sh" --setup-only --dir "$run" --base-port "${BASE_PORT:-20000}" \
	--domain bench.test --user bench >"${run%/}.setup.log" 2>&1 ||
	{ cat "${run%/}.setup.log" >&2; die "quickstart failed"; }
mv "${run%/}.setup.log" "$run/setup.log"
: >"$run/.rqmail-bench"

# The driver, the servers and the load generator run as the instance's user, as the quick
# start runs the instance: rqmail-queue refuses a queue it does not own.
if [ "$(id -u)" = 0 ]; then
	owner=$(stat -c %u "$run")
	group=$(stat -c %g "$run")
	exec setpriv --reuid="$owner" --regid="$group" --clear-groups -- \
		/usr/bin/env python3 "$here/e2e_smtp.py" "$run" "$tools"
fi
exec python3 "$here/e2e_smtp.py" "$run" "$tools"
