#!/bin/bash
# IMAP benchmark: rqmail-imapd beside Dovecot's imap on the same 100,000-message Maildir, in
# the same run: the first SELECT on a Maildir the server has never seen (its index is built)
# and a SELECT in a new session, FETCH 1:* (FLAGS UID RFC822.SIZE), FETCH 1:1000 of four
# header fields, SEARCH HEADER SUBJECT, SEARCH BODY and NOOP, and the server's resident
# memory.
# Each server is a child process speaking IMAP on a socketpair, pre-authenticated (PREAUTH):
# no network, no login, no daemon.
#
#   bench/imap.sh
#   MESSAGES=2000 bench/imap.sh                          # a quick run
#   RQMAIL_IMAPD=/path/to/rqmail-imapd bench/imap.sh     # no build; that binary
#
# Environment (all optional):
#   MESSAGES=100000     messages in the Maildir (2-4 KiB each)
#   REPEAT=3            warm SELECT sessions, and times each command runs in one session
#   RUNS=1              fresh copies of the Maildir per server (figures: medians of the runs)
#   NEEDLES=8           messages with "needle" in the Subject (and as many in the body)
#   SEARCH_BODY=1       0 leaves out SEARCH BODY
#   WIRE_SIZE=0         1 also puts ,W=SIZE-WITH-CRLF into the file names
#   TIMEOUT=900         seconds one command may take before the run fails
#   RQMAIL_IMAPD        the binary; unset: cargo build --release -p rqmail-imapd (into
#                       $CARGO_TARGET_DIR, default target/ in the repository) and use that
#   DOVECOT_IMAP=/usr/lib/dovecot/imap   Dovecot's imap (Debian: dovecot-imapd); missing:
#                       Dovecot is skipped
#   BENCH_DIR           the scratch directory (default: target/bench-imap in the repo); made
#                       afresh on every run
# See bench/README.md for what is measured and how.
set -eu

die() {
	echo "imap: $*" >&2
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

if [ -n "${RQMAIL_IMAPD:-}" ]; then
	imapd=$RQMAIL_IMAPD
else
	echo "imap: cargo build --release -p rqmail-imapd" >&2
	(cd "$repo" && cargo build --quiet --release -p rqmail-imapd) || die "the build failed"
	imapd=${CARGO_TARGET_DIR:-$repo/target}/release/rqmail-imapd
fi
[ -x "$imapd" ] || die "no rqmail-imapd at $imapd"

run=${BENCH_DIR:-$repo/target/bench-imap}
if [ -e "$run" ]; then
	[ -e "$run/.rqmail-bench" ] || die "$run exists and is not a benchmark directory; remove it or set BENCH_DIR"
	run=$(cd "$run" && pwd -P)
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$run"/*) die "${p#/proc/} ($(readlink "$p/exe")) still runs in $run; stop it first" ;;
		esac
	done
	rm -rf "$run"
fi
mkdir -p "$run/bin"
run=$(cd "$run" && pwd -P)
: >"$run/.rqmail-bench"
# A copy the servers' user can run, and that does not change if the tree is rebuilt meanwhile.
cp "$imapd" "$run/bin/rqmail-imapd"
chmod 755 "$run" "$run/bin" "$run/bin/rqmail-imapd"
if [ "$(id -u)" = 0 ]; then
	# rqmail-imapd refuses root, and Dovecot's imap as root wants a mail_uid: as root, the
	# servers run as nobody, who owns the Maildirs.
	chown nobody:"$(id -gn nobody)" "$run"
fi

exec python3 "$here/imap.py" "$run" "$run/bin/rqmail-imapd"
