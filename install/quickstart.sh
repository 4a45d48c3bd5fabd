#!/bin/bash
# rqmail quick start: builds the release binaries and runs a complete rqmail instance in one
# directory, in the foreground, until interrupted (Ctrl-C stops it cleanly): the queue
# (rqmail-start), SMTP on loopback (rqmail-tcpserver + rqmail-smtpd) at base+25,
# base+587 (submission) and base+465 (implicit TLS), and POP3 on loopback
# (rqmail-tcpserver + rqmail-login + rqmail-pop3d) at base+110 (STLS) and base+995
# (implicit TLS), and IMAP on loopback (rqmail-tcpserver + rqmail-login imap +
# rqmail-imapd) at base+143 (STARTTLS) and base+993 (implicit TLS), for the test user: a
# virtual user of the mail domain (rqmail-vusers), whose password rqmail-checkpassword
# checks for POP3, IMAP and SMTP AUTH (required on the submission ports).
#
#   install/quickstart.sh [--dir DIR] [--base-port N] [--domain D] [--user NAME]
#                         [--password PW] [--bindir DIR] [--setup-only]
#
# Run again on the same directory, it copies the freshly built binaries into DIR/bin and
# reuses everything else that is there: control files, users/assign entries, the queue and
# the mail are never overwritten, so whatever the admin edited stays as it is.
#
# Run as root, the instance still runs as one unprivileged user (nobody): DIR is given to
# nobody and everything after the build runs as nobody, through setpriv (util-linux).
set -eu

usage() {
	cat <<'EOF'
usage: install/quickstart.sh [--dir DIR] [--base-port N] [--domain D] [--user NAME]
                             [--password PW] [--bindir DIR] [--setup-only]
  --dir DIR        the instance directory (default ./run)
  --base-port N    services listen on N+25 (SMTP), N+587 and N+465 (submission),
                   N+110 and N+995 (POP3), N+143 and N+993 (IMAP); default 10000
  --domain D       the mail domain (control/me, a virtual domain of the account vmail);
                   default example.test
  --user NAME      the test user, a virtual user NAME@D with a Maildir in
                   DIR/vmail/D/NAME; default test
  --password PW    the test user's password (POP3, IMAP, SMTP AUTH); default test
  --bindir DIR     take the binaries from DIR (e.g. target/debug) instead of building
                   the release binaries
  --setup-only     create or update the instance, print how to use it, do not start it
A second run on the same DIR reuses its settings unless they are given again.
EOF
}

die() {
	echo "quickstart: $*" >&2
	exit 100
}

# ---------------------------------------------------------------------------- options
dir=./run
base_port='' domain='' user='' password='' setup_only=0 bindir=''
while [ $# -gt 0 ]; do
	case $1 in
	--dir) [ $# -ge 2 ] || die "--dir needs a value"; dir=$2; shift 2 ;;
	--dir=*) dir=${1#*=}; shift ;;
	--base-port) [ $# -ge 2 ] || die "--base-port needs a value"; base_port=$2; shift 2 ;;
	--base-port=*) base_port=${1#*=}; shift ;;
	--domain) [ $# -ge 2 ] || die "--domain needs a value"; domain=$2; shift 2 ;;
	--domain=*) domain=${1#*=}; shift ;;
	--user) [ $# -ge 2 ] || die "--user needs a value"; user=$2; shift 2 ;;
	--user=*) user=${1#*=}; shift ;;
	--password) [ $# -ge 2 ] || die "--password needs a value"; password=$2; shift 2 ;;
	--password=*) password=${1#*=}; shift ;;
	--bindir) [ $# -ge 2 ] || die "--bindir needs a value"; bindir=$2; shift 2 ;;
	--bindir=*) bindir=${1#*=}; shift ;;
	--setup-only) setup_only=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 100 ;;
	esac
done

[ -n "$dir" ] || die "--dir must not be empty"
case $dir in
*:* | *$'\n'*) die "--dir must not contain ':' or a newline (users/assign could not hold it)" ;;
esac

# The settings of an earlier run on the same directory are the defaults of this one.
saved="$dir/quickstart.settings"
saved_value() {
	[ -f "$saved" ] || return 0
	sed -n "s/^$1=//p" "$saved" | head -n 1
}
[ -n "$base_port" ] || base_port=$(saved_value base_port)
[ -n "$domain" ] || domain=$(saved_value domain)
[ -n "$user" ] || user=$(saved_value user)
: "${password:=${_RQMAIL_QUICKSTART_PASSWORD:-}}"
unset _RQMAIL_QUICKSTART_PASSWORD
: "${base_port:=10000}" "${domain:=example.test}" "${user:=test}" "${password:=test}"

case $base_port in
'' | *[!0-9]*) die "--base-port must be a number, not '$base_port'" ;;
esac
if [ ${#base_port} -gt 5 ] || [ $((10#$base_port + 995)) -gt 65535 ]; then
	die "--base-port $base_port is too large: the highest port, base+995, must be below 65536"
fi
base_port=$((10#$base_port))
domain=${domain,,}
if ! [[ $domain =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || [[ $domain == *..* ]]; then
	die "--domain '$domain' is not a domain name"
fi
if ! [[ $user =~ ^[a-z_][a-z0-9_.]*$ ]] || [ ${#user} -ge 32 ]; then
	die "--user '$user' must be lower case letters, digits, '_' or '.' (no '-': it separates extensions)"
fi
case $password in
*$'\n'*) die "--password must not contain a newline" ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")

# ---------------------------------------------------------------------------- stage 1: build
# Stage 1 runs as whoever called the script; stage 2 (everything in DIR) runs as the user
# the instance belongs to. They are the same process unless the caller is root.
if [ "${_RQMAIL_QUICKSTART_STAGE:-}" != instance ]; then
	if [ -n "$bindir" ]; then
		[ -d "$bindir" ] || die "--bindir $bindir is not a directory"
		_RQMAIL_QUICKSTART_TARGET=$(cd "$bindir" && pwd -P)
	else
		echo "quickstart: building the release binaries in $repo"
		(cd "$repo" && cargo build --release --workspace)
		target=${CARGO_TARGET_DIR:-$repo/target}
		case $target in /*) ;; *) target=$repo/$target ;; esac
		_RQMAIL_QUICKSTART_TARGET=$target/release
	fi
	export _RQMAIL_QUICKSTART_TARGET
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	if [ "$(id -u)" = 0 ]; then
		run_uid=$(id -u nobody) || die "no account 'nobody' to run the instance as"
		run_gid=$(id -g nobody)
		owner=$(stat -c %u "$dir")
		if [ "$owner" != "$run_uid" ]; then
			if [ -z "$(ls -A "$dir")" ]; then
				chown "$run_uid:$run_gid" "$dir"
			else
				die "$dir belongs to uid $owner, but run as root the instance runs as nobody;" \
					"use an empty or new --dir, or chown -R nobody: $dir"
			fi
		fi
		setpriv --reuid="$run_uid" --regid="$run_gid" --clear-groups -- test -w "$dir" -a -x "$dir" ||
			die "nobody cannot enter $dir (a parent directory is closed to others, like /root);" \
				"choose a --dir elsewhere, e.g. /tmp/rqmail or /srv/rqmail"
		# The password goes through the environment, not the command line (ps shows that).
		export _RQMAIL_QUICKSTART_STAGE=instance _RQMAIL_QUICKSTART_ROOT=1
		export _RQMAIL_QUICKSTART_PASSWORD="$password"
		again=(--dir "$dir" --base-port "$base_port" --domain "$domain" --user "$user")
		[ "$setup_only" = 0 ] || again+=(--setup-only)
		[ -z "$bindir" ] || again+=(--bindir "$_RQMAIL_QUICKSTART_TARGET")
		exec setpriv --reuid="$run_uid" --regid="$run_gid" --clear-groups -- \
			/bin/bash "$here/quickstart.sh" "${again[@]}"
	fi
fi

# ---------------------------------------------------------------------------- stage 2: instance
umask 022
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
case $dir in
*:* | *$'\n'*) die "$dir must not contain ':' or a newline (users/assign could not hold it)" ;;
esac
release=${_RQMAIL_QUICKSTART_TARGET:?}
uid=$(id -u)
gid=$(id -g)
changed=()

# Writes a file only if it does not exist yet: what is there may be the admin's.
create_file() { # path mode content
	if [ ! -e "$1" ]; then
		printf '%s' "$3" >"$1.quickstart-tmp"
		chmod "$2" "$1.quickstart-tmp"
		mv -f "$1.quickstart-tmp" "$1"
		changed+=("${1#"$dir"/}")
	fi
}

# The binaries: every program of the workspace (install/programs.sh), copied (never symlinked:
# a program finds its home as the parent of the directory holding it) and renamed into
# place, so a running instance keeps its old files and the next start uses the new ones.
mapfile -t programs < <("$here/programs.sh")
[ ${#programs[@]} -gt 0 ] || die "install/programs.sh found no programs"
mkdir -p "$dir/bin"
chmod 755 "$dir" "$dir/bin"
for p in "${programs[@]}"; do
	[ -x "$release/$p" ] || die "$release/$p was not built"
	cp "$release/$p" "$dir/bin/.$p.new"
	chmod 755 "$dir/bin/.$p.new"
	mv -f "$dir/bin/.$p.new" "$dir/bin/$p"
done

# The settings this directory was last set up with.
printf 'base_port=%s\ndomain=%s\nuser=%s\n' "$base_port" "$domain" "$user" >"$dir/.quickstart.settings.new"
mv -f "$dir/.quickstart.settings.new" "$dir/quickstart.settings"

# Control files.
mkdir -p "$dir/control"
create_file "$dir/control/me" 644 "$domain"$'\n'
# The mail domain is a virtual domain of the account vmail (users/assign below), so it is
# not in locals; localhost is.
create_file "$dir/control/locals" 644 localhost$'\n'
create_file "$dir/control/rcpthosts" 644 "$domain"$'\n'localhost$'\n'
create_file "$dir/control/virtualdomains" 644 "$domain:vmail"$'\n'
create_file "$dir/control/defaultdelivery" 644 $'./Maildir/\n'
me=$(head -n 1 "$dir/control/me")

# The SMTP servers' rules, compiled into tcp.smtp.cdb whenever the text is newer.
# Loopback clients may relay on base+25; the submission ports require AUTH, as in a real
# install, which checks the test user's password through rqmail-checkpassword.
rules=$dir/control/tcp.smtp
create_file "$rules" 644 '# tcp.smtp of the quick start: who may connect to the SMTP servers, in tcprules
# format (see control/README). Loopback may relay; the submission ports (base+587,
# base+465) require AUTH whatever these rules say. Compiled into tcp.smtp.cdb when the
# quick start runs.
127.:allow,RELAYCLIENT=""
::1:allow,RELAYCLIENT=""
:allow
'
# The POP3 servers' rules: the quick start listens on loopback only, and loopback may
# log in without TLS (POP3_PLAINTEXT=""), so on base+110 without STLS too.
create_file "$dir/control/tcp.pop3" 644 '# tcp.pop3 of the quick start: who may connect to the POP3 servers, in tcprules
# format (see control/README). Loopback may log in without TLS (POP3_PLAINTEXT=""):
# elsewhere passwords are taken only after STLS or on the implicit TLS port.
# Compiled into tcp.pop3.cdb when the quick start runs.
127.:allow,POP3_PLAINTEXT=""
::1:allow,POP3_PLAINTEXT=""
:allow
'
# The IMAP servers' rules: likewise, loopback may log in without TLS (IMAP_PLAINTEXT="").
create_file "$dir/control/tcp.imap" 644 '# tcp.imap of the quick start: who may connect to the IMAP servers, in tcprules
# format (see control/README). Loopback may log in without TLS (IMAP_PLAINTEXT=""):
# elsewhere passwords are taken only after STARTTLS or on the implicit TLS port.
# Compiled into tcp.imap.cdb when the quick start runs.
127.:allow,IMAP_PLAINTEXT=""
::1:allow,IMAP_PLAINTEXT=""
:allow
'
for rules in "$dir/control/tcp.smtp" "$dir/control/tcp.pop3" "$dir/control/tcp.imap"; do
	if [ ! -e "$rules.cdb" ] || [ "$rules" -nt "$rules.cdb" ]; then
		"$dir/bin/rqmail-tcprules" "$rules.cdb" "$rules.tmp" <"$rules" ||
			die "$rules has an error (above): fix it and run again"
	fi
done

# The TLS certificate for STARTTLS and implicit TLS: self-signed for control/me.
cert=$dir/control/servercert.pem
tls_note=''
if [ ! -e "$cert" ]; then
	if command -v openssl >/dev/null 2>&1; then
		tmp=$(mktemp -d "$dir/control/.servercert.XXXXXX")
		if ! openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$me" \
			-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/errors"; then
			cat "$tmp/errors" >&2
			rm -rf "$tmp"
			die "openssl could not make a certificate"
		fi
		cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/servercert.pem"
		chmod 600 "$tmp/servercert.pem"
		mv -f "$tmp/servercert.pem" "$cert"
		rm -rf "$tmp"
		changed+=(control/servercert.pem)
	else
		tls_note=" (no openssl, so no certificate: no STARTTLS, no implicit TLS)"
	fi
fi

# The queue, laid out as rqmail_qfiles::Queue::create makes it (the split count is
# rqmail_control::SPLIT, qmail's conf-split): only missing parts are made.
# On ext4 the queue's directories are spread over the block groups (the T attribute on a
# parent, see install.sh): best effort, nothing else depends on it.
q=$dir/queue
[ -d "$q" ] || changed+=(queue/)
[ -d "$q" ] || { mkdir -m 750 "$q" && chattr +T "$q" 2>/dev/null || :; }
for d in mess info local remote; do
	[ -d "$q/$d" ] || { mkdir -m 750 "$q/$d" && chattr +T "$q/$d" 2>/dev/null || :; }
	for ((i = 0; i < 23; i++)); do
		[ -d "$q/$d/$i" ] || mkdir -m 750 "$q/$d/$i"
	done
done
for d in pid intd todo bounce lock; do
	[ -d "$q/$d" ] || mkdir -m 750 "$q/$d"
done
[ -p "$q/lock/trigger" ] || mkfifo -m 622 "$q/lock/trigger"
chmod 622 "$q/lock/trigger"
[ -e "$q/lock/sendmutex" ] || : >"$q/lock/sendmutex"

# The account vmail, which the mail domain is handed to (control/virtualdomains): an entry
# in users/assign for the instance's own uid, and a home whose .qmail-default hands every
# address of the domain to rqmail-vdeliver.
vmail=$dir/vmail
mkdir -p "$vmail"
chmod 711 "$vmail"
create_file "$vmail/.qmail-default" 644 "|$dir/bin/rqmail-vdeliver"$'\n'
mkdir -p "$dir/users"
assign=$dir/users/assign
entry="=vmail:vmail:$uid:$gid:$vmail:::"$'\n'"+vmail-:vmail:$uid:$gid:$vmail:-::"$'\n'
if [ ! -e "$assign" ]; then
	create_file "$assign" 644 "$entry."$'\n'
elif ! grep -q "^=vmail:" "$assign"; then
	# Add the account's entries before the closing "." line, leaving the others as they are.
	awk -v entry="$entry" '!done && $0 == "." { printf "%s", entry; done = 1 } { print }
		END { if (!done) printf "%s.\n", entry }' "$assign" >"$assign.quickstart-tmp"
	mv -f "$assign.quickstart-tmp" "$assign"
	changed+=("users/assign (+vmail)")
fi
if [ ! -e "$dir/users/cdb" ] || [ "$assign" -nt "$dir/users/cdb" ]; then
	"$dir/bin/rqmail-newu"
fi

# The test user: a virtual user of the domain, with its password (hashed by rqmail-vusers
# into users/virtual/DOMAIN, where the account cannot read it) and its Maildir in
# vmail/DOMAIN/USER; postmaster@DOMAIN is an alias for it. An existing user keeps its
# password: change it with rqmail-vusers DOMAIN passwd USER.
if ! "$dir/bin/rqmail-vusers" "$domain" list 2>/dev/null | grep -qx "user $user quota [0-9]*"; then
	printf '%s\n' "$password" | "$dir/bin/rqmail-vusers" "$domain" add "$user" ||
		die "rqmail-vusers could not add $user@$domain (above)"
	changed+=("virtual user $user@$domain")
fi
if ! "$dir/bin/rqmail-vusers" "$domain" list | grep -q "^alias postmaster "; then
	"$dir/bin/rqmail-vusers" "$domain" alias postmaster "$user" ||
		die "rqmail-vusers could not alias postmaster@$domain (above)"
fi
maildir=$vmail/$domain/$user/Maildir
login=$user@$domain
layout_note=''
if grep -qxi "$domain" "$dir/control/locals"; then
	layout_note="
  note:              $domain is in control/locals (an instance made by an older quick
                     start): mail for it goes to users/assign's users, not to $login;
                     remove $domain from control/locals to use the virtual user"
fi

# Mail for postmaster, root and MAILER-DAEMON at localhost (bounces, double bounces) goes
# to the test user.
mkdir -p "$dir/alias"
chmod 755 "$dir/alias"
for a in postmaster root mailer-daemon; do
	create_file "$dir/alias/.qmail-$a" 644 "&$login"$'\n'
done
checkpassword=$dir/bin/rqmail-checkpassword

# ---------------------------------------------------------------------------- what to do now
if [ "${_RQMAIL_QUICKSTART_ROOT:-}" = 1 ]; then
	as="setpriv --reuid=$uid --regid=$gid --clear-groups "
	who="nobody (uid $uid), since this script was started as root"
	send_note=" (as nobody: rqmail-queue refuses a queue it does not own)"
else
	as='' send_note=''
	who="$(id -un 2>/dev/null || echo "uid $uid")"
fi
p=$base_port
# The examples show the password where it needs no quoting in a URL, a shell word and a
# Python string.
shown_password=PASSWORD hint=''
if [[ $password =~ ^[A-Za-z0-9._~-]+$ ]]; then
	shown_password=$password
else
	hint=" (with the password in place of PASSWORD)"
fi
smtp_example="import smtplib; smtplib.SMTP(\"127.0.0.1\", $((p + 25))).sendmail(\"someone@$me\", [\"$login\"], \"Subject: hello\\r\\n\\r\\nhi\\r\\n\")"
submission_example="import smtplib, ssl; s = smtplib.SMTP(\"127.0.0.1\", $((p + 587))); s.starttls(context=ssl._create_unverified_context()); s.login(\"$login\", \"$shown_password\"); s.sendmail(\"$login\", [\"$login\"], \"Subject: hello\\r\\n\\r\\nhi\\r\\n\"); s.quit()"
imap_example="import imaplib, ssl; m = imaplib.IMAP4_SSL(\"127.0.0.1\", $((p + 993)), ssl_context=ssl._create_unverified_context()); m.login(\"$login\", \"$shown_password\"); m.select(\"INBOX\"); print(m.fetch(\"1\", \"(BODY[])\")[1][0][1].decode()); m.logout()"
pop3_example="import poplib, ssl; p = poplib.POP3_SSL(\"127.0.0.1\", $((p + 995)), context=ssl._create_unverified_context()); p.user(\"$login\"); p.pass_(\"$shown_password\"); print(p.stat()); print(p.retr(1)[1])"
cat <<EOF

rqmail instance in $dir, running as $who
  created this run:  ${changed[*]:-nothing (everything was already there; binaries updated)}
  mail domain:       $me (control/me; a virtual domain of the account vmail in
                     control/virtualdomains; locals: $(paste -sd ' ' "$dir/control/locals"))
  test user:         $login, password '$password' (rqmail-vusers $domain ...);
                     POP3, IMAP and SMTP AUTH check it through rqmail-checkpassword$layout_note

Mail for $login lands in
  $maildir/new/

Send a message over SMTP (loopback may relay on $((p + 25))):
  swaks --server 127.0.0.1 --port $((p + 25)) --from someone@$me --to $login
  python3 -c '$smtp_example'
or submit it with AUTH as $login$hint:
  swaks --server 127.0.0.1 --port $((p + 587)) -tls --auth-user $login --auth-password $shown_password --from $login --to $login
  swaks --server 127.0.0.1 --port $((p + 465)) --tls-on-connect --auth-user $login --auth-password $shown_password --from $login --to $login
  python3 -c '$submission_example'
or from the command line$send_note:
  echo hi | ${as}$dir/bin/sendmail $login
  printf 'Subject: hello\n\nhi\n' | ${as}$dir/bin/sendmail -f someone@$me $login
  printf 'To: $login\nSubject: hello\n\nhi\n' | ${as}$dir/bin/rqmail-inject
Read it:
  ls $maildir/new
  cat $maildir/new/*
or over POP3, as $login$hint (-k and the unverified context because the
certificate is self-signed):
  curl -k --user $login:$shown_password pop3s://127.0.0.1:$((p + 995))/      (the list)
  curl -k --user $login:$shown_password pop3s://127.0.0.1:$((p + 995))/1     (message 1)
  curl --user $login:$shown_password pop3://127.0.0.1:$((p + 110))/1         (no TLS: loopback may)
  python3 -c '$pop3_example'
or over IMAP, as $login$hint (-k and the unverified context for the same reason):
  curl -k --user $login:$shown_password 'imaps://127.0.0.1:$((p + 993))/INBOX;UID=1'      (message UID 1)
  curl -k --user $login:$shown_password 'imaps://127.0.0.1:$((p + 993))/INBOX/;MAILINDEX=1'  (message 1)
  curl -k --user $login:$shown_password imaps://127.0.0.1:$((p + 993))/INBOX -X 'UID SEARCH ALL'  (the UIDs)
  curl -k --user $login:$shown_password imaps://127.0.0.1:$((p + 993))/     (the folders)
  curl --user $login:$shown_password 'imap://127.0.0.1:$((p + 143))/INBOX;UID=1'        (no TLS: loopback may)
  python3 -c '$imap_example'
See the queue:
  ${as}$dir/bin/rqmail-qstat
  ${as}$dir/bin/rqmail-qread
Configure: edit $dir/control/*. Manage the domain's users (add, passwd, quota, alias,
forward, remove, list; see README.md, "Virtual domains"):
  ${as}$dir/bin/rqmail-vusers $domain list

Ports (loopback, base $p)$tls_note:
  SMTP        $((p + 25)) (STARTTLS)
  submission  $((p + 587)) (STARTTLS), $((p + 465)) (implicit TLS)     AUTH required
  POP3        $((p + 110)) (STLS), $((p + 995)) (implicit TLS)
  IMAP        $((p + 143)) (STARTTLS), $((p + 993)) (implicit TLS)
EOF

if [ "$setup_only" = 1 ]; then
	start_again=""
	[ -z "$bindir" ] || start_again=" --bindir $release"
	echo
	echo "Start it with: $here/quickstart.sh --dir $dir$start_again"
	exit 0
fi

echo
echo "Starting rqmail (rqmail-start and the SMTP, POP3 and IMAP servers log below). Stop it with Ctrl-C."
echo
# Every program runs in the background; Ctrl-C reaches only this shell (a background job of
# a script ignores SIGINT), which turns it into a TERM for each: rqmail-send finishes the
# deliveries in flight, rqmail-tcpserver stops accepting and waits for its sessions.
pids=() names=()
stopping=0 failed=0
stop_all() {
	stopping=1
	[ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || :
}
trap stop_all INT TERM HUP
ready=$(mktemp -d "$dir/.quickstart-run.XXXXXX")
trap 'rm -rf "$ready"' EXIT

"$dir/bin/rqmail-start" &
pids+=($!) names+=(rqmail-start)

limit=$(sed 's/[^0-9].*//;q' "$dir/control/concurrencyincoming" 2>/dev/null || :)
[ "${limit:-0}" -gt 0 ] 2>/dev/null || limit=40

# tcp_server NAME PORT RULES [VAR=VALUE...] -- PROGRAM [ARG...]: rqmail-tcpserver on
# 127.0.0.1:PORT with control/RULES.cdb, running PROGRAM per connection as the services
# do, with a clean environment; waits until it listens (-1 prints the port then).
tcp_server() {
	local name=$1 port=$2 rules=$3 i
	local vars=()
	shift 3
	while [ "$1" != -- ]; do
		vars+=("$1")
		shift
	done
	shift
	[ "$stopping" = 0 ] || return 0
	env - PATH=/usr/bin:/bin "${vars[@]}" "$dir/bin/rqmail-tcpserver" -1 -v -R -H -l "$me" \
		-x "$dir/control/$rules.cdb" -c "$limit" -i 10 127.0.0.1 "$port" "$@" \
		>"$ready/$name" &
	pids+=($!) names+=("$name")
	for ((i = 0; i < 100; i++)); do
		[ "$stopping" = 0 ] || return 0 # interrupted meanwhile
		if [ -s "$ready/$name" ]; then
			echo "quickstart: $name listening on 127.0.0.1:$port"
			return 0
		fi
		kill -0 "$!" 2>/dev/null || break
		sleep 0.1 || : # Ctrl-C kills it too; set -e must not end the script then
	done
	[ "$stopping" = 0 ] || return 0
	echo "quickstart: $name could not listen on 127.0.0.1:$port (in use? see above)" >&2
	failed=1
	stop_all
}
# smtp_server NAME PORT [VAR=VALUE...]: rqmail-smtpd, with AUTH through
# rqmail-checkpassword (the virtual user's password).
smtp_server() {
	local name=$1 port=$2
	shift 2
	tcp_server "$name" "$port" tcp.smtp "$@" -- \
		"$dir/bin/rqmail-smtpd" "$me" "$dir/bin/rqmail-checkpassword" /bin/true
}
# pop3_server NAME PORT [-s]: rqmail-login (not root here, so it changes no uid) with
# rqmail-checkpassword, which runs rqmail-pop3d on the virtual user's Maildir.
pop3_server() {
	local name=$1 port=$2
	shift 2
	tcp_server "$name" "$port" tcp.pop3 -- "$dir/bin/rqmail-login" pop3 "$@" \
		"$checkpassword" "$dir/bin/rqmail-pop3d" Maildir
}
# imap_server NAME PORT [-s]: the same for IMAP: rqmail-login imap, then rqmail-imapd,
# which answers the login command itself.
imap_server() {
	local name=$1 port=$2
	shift 2
	tcp_server "$name" "$port" tcp.imap -- "$dir/bin/rqmail-login" imap "$@" \
		"$checkpassword" "$dir/bin/rqmail-imapd" Maildir
}
smtp_server smtp $((p + 25))
smtp_server submission $((p + 587)) 'SMTPAUTH=!'
if [ -e "$cert" ]; then
	smtp_server smtps $((p + 465)) 'SMTPAUTH=!' SMTPS=1
else
	echo "quickstart: no $cert, so no server on $((p + 465))"
fi
pop3_server pop3 $((p + 110))
if [ -e "$cert" ]; then
	pop3_server pop3s $((p + 995)) -s
else
	echo "quickstart: no $cert, so no server on $((p + 995))"
fi
imap_server imap $((p + 143))
if [ -e "$cert" ]; then
	imap_server imaps $((p + 993)) -s
else
	echo "quickstart: no $cert, so no server on $((p + 993))"
fi

set +e
while :; do
	alive=0
	for i in "${!pids[@]}"; do
		if kill -0 "${pids[$i]}" 2>/dev/null; then
			alive=$((alive + 1))
		elif [ "$stopping" = 0 ]; then
			echo "quickstart: ${names[$i]} stopped unexpectedly; stopping the others" >&2
			failed=1
			stop_all
		fi
	done
	[ "$alive" -gt 0 ] || break
	# Returns when a program exits or a signal arrives (the trap runs first).
	wait -n
done
if [ "$failed" = 1 ]; then
	echo "quickstart: stopped after a failure" >&2
	exit 111
fi
echo "quickstart: rqmail stopped"
exit 0
