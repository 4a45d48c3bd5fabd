#!/bin/bash
# POP3 benchmark: RETR of every message of a 10,000-message Maildir in one session, session
# start-up (connect, STLS, login, STAT, QUIT) per second with 1 and 8 clients, and the memory
# of an idle logged-in session, for rqmail-tcpserver + rqmail-login + rqmail-pop3d and, in
# the same run when it is installed, for Dovecot's POP3 on the same Maildirs and certificate.
#
#   bench/pop3.sh
#
# Environment (all optional):
#   MESSAGES=10000      messages in the big Maildir (RETR-all)
#   SIZE=4096           bytes per message on disk (LF line ends)
#   SESSION_MSGS=100    messages in each of the 8 small Maildirs the session clients use
#   CLIENTS=1,8         parallel clients for the session rate
#   SESSION_SECS=8      seconds per session-rate measurement
#   MEM_SESSIONS=8      idle sessions held open for the memory figure
#   DOVECOT=/usr/sbin/dovecot   Dovecot's binary; missing: Dovecot is skipped
#   BENCH_DIR           the scratch instance (default: target/bench-pop3 in the repo); made
#                       afresh on every run
# See bench/README.md for what is measured and how.
set -eu

die() {
	echo "pop3: $*" >&2
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
command -v openssl >/dev/null || die "openssl is needed (the certificate)"
command -v cc >/dev/null || die "a C compiler (cc) is needed for the fake checkpassword"

run=${BENCH_DIR:-$repo/target/bench-pop3}
if [ -e "$run" ]; then
	[ -e "$run/.rqmail-bench" ] || die "$run exists and is not a benchmark instance; remove it or set BENCH_DIR"
	run=$(cd "$run" && pwd -P)
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in
		"$run"/bin/*) die "${p#/proc/} ($(readlink "$p/exe")) still runs from $run; stop it first" ;;
		esac
	done
	rm -rf "$run"
fi

# The quick start builds the release binaries and makes the instance (as nobody when root),
# with control/servercert.pem and control/tcp.pop3.cdb (loopback: POP3_PLAINTEXT).
echo "pop3: building and setting up $run" >&2
"$repo/install/quickstart.sh" --setup-only --dir "$run" --base-port "${BASE_PORT:-22000}" \
	--domain bench.test --user bench >"${run%/}.setup.log" 2>&1 ||
	{ cat "${run%/}.setup.log" >&2; die "quickstart failed"; }
mv "${run%/}.setup.log" "$run/setup.log"
: >"$run/.rqmail-bench"
[ -s "$run/control/servercert.pem" ] || die "the quick start made no control/servercert.pem"

# The driver stays root when started as root (Dovecot's master must start as root); the
# rqmail servers, the Maildirs and Dovecot's mail processes belong to the owner of $run.
exec python3 "$here/pop3_bench.py" "$run"
