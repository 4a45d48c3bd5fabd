#!/bin/bash
# Remote delivery benchmark: messages per second rqmail-send + rqmail-rspawn + rqmail-remote
# deliver to a local SMTP sink (Postfix's smtp-sink) at several concurrencyremote settings,
# and CPU seconds per message; beside what the same sink accepts from Postfix's smtp-source
# at the same concurrency in the same run (the protocol-only ceiling).
#
#   bench/remote-sink.sh
#
# Environment (all optional):
#   N=2000              messages per case, one remote recipient each
#   CONCURRENCY=1,20,100  control/concurrencyremote of each case (and smtp-source -s)
#   SIZE=4096           message size in bytes
#   INJECTORS=8         parallel rqmail-queue processes filling the queue before a case
#   BENCH_DIR           the scratch instance (default: target/bench-remote in the repo); made
#                       afresh on every run
#   SMTP_SINK, SMTP_SOURCE  the Postfix test programs (default /usr/sbin/smtp-sink, -source)
#   SINK_PORT=0         the sink's loopback port (0: a free one)
#   SETTLE=2            seconds of quiet (after a sync) before each case
#   TIMEOUT=120         seconds without progress before a case is given up
# See bench/README.md for what is measured and how.
set -eu

die() {
	echo "remote-sink: $*" >&2
	exit 100
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) sed -n '2,/^# See/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
for p in "${SMTP_SINK:=/usr/sbin/smtp-sink}" "${SMTP_SOURCE:=/usr/sbin/smtp-source}"; do
	[ -x "$p" ] || die "$p not found: install the Debian package postfix (it may stay stopped)"
done
export SMTP_SINK SMTP_SOURCE

run=${BENCH_DIR:-$repo/target/bench-remote}
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
echo "remote-sink: building and setting up $run" >&2
"$repo/install/quickstart.sh" --setup-only --dir "$run" --base-port "${BASE_PORT:-21000}" \
	--domain bench.test --user bench >"${run%/}.setup.log" 2>&1 ||
	{ cat "${run%/}.setup.log" >&2; die "quickstart failed"; }
mv "${run%/}.setup.log" "$run/setup.log"
: >"$run/.rqmail-bench"

# The driver stays root when started as root: smtp-sink must start as root to take -u;
# the instance (rqmail-start, rqmail-queue) runs as the owner of $run, i.e. nobody.
exec python3 "$here/remote_sink.py" "$run"
