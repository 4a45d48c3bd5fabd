#!/bin/bash
# rqmail quick start: builds the release binaries and runs a complete rqmail instance in one
# directory, in the foreground, until interrupted (Ctrl-C stops it cleanly): the queue
# (rqmail-start), SMTP on loopback (rqmail-tcpserver + rqmail-smtpd) at base+25,
# base+587 (submission) and base+465 (implicit TLS), and POP3 on loopback
# (rqmail-tcpserver + rqmail-login + rqmail-pop3d) at base+110 (STLS) and base+995
# (implicit TLS), and IMAP on loopback (rqmail-tcpserver + rqmail-login imap +
# rqmail-imapd) at base+143 (STARTTLS) and base+993 (implicit TLS), for the test user.
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
  --domain D       the mail domain (control/me, control/locals); default example.test
  --user NAME      the test user, with a Maildir in DIR/home/NAME; default test
  --password PW    the test user's password (for the login services); default test
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

# The binaries: every executable of the workspace's bin/ packages, copied (never symlinked:
# a program finds its home as the parent of the directory holding it) and renamed into
# place, so a running instance keeps its old files and the next start uses the new ones.
programs=()
for manifest in "$repo"/bin/*/Cargo.toml; do
	names=$(awk '
		/^\[\[bin\]\]/ { inbin = 1; pkg = 0; next }
		/^\[package\]/ { pkg = 1; inbin = 0; next }
		/^\[/ { pkg = 0; inbin = 0; next }
		(pkg || inbin) && /^name[ \t]*=/ {
			gsub(/^name[ \t]*=[ \t]*"|".*$/, ""); if (inbin) bins = bins " " $0; else p = $0
		}
		END { print (bins != "" ? bins : p) }' "$manifest")
	for name in $names; do programs+=("$name"); done
done
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
create_file "$dir/control/locals" 644 "$domain"$'\n'localhost$'\n'
create_file "$dir/control/rcpthosts" 644 "$domain"$'\n'localhost$'\n'
create_file "$dir/control/defaultdelivery" 644 $'./Maildir/\n'
me=$(head -n 1 "$dir/control/me")

# The SMTP servers' rules, compiled into tcp.smtp.cdb whenever the text is newer. A real
# install requires AUTH on the submission ports, and AUTH checks system passwords, which
# a single-user instance cannot read (rqmail-checkpassword is not setgid shadow here): so
# loopback clients may relay, and may submit without AUTH (SMTPAUTH="").
rules=$dir/control/tcp.smtp
create_file "$rules" 644 '# tcp.smtp of the quick start: who may connect to the SMTP servers, in tcprules
# format (see control/README). Loopback may relay, and may submit on the submission
# ports without AUTH (SMTPAUTH=""): AUTH checks system passwords, which a single-user
# instance cannot read. Compiled into tcp.smtp.cdb when the quick start runs.
127.:allow,RELAYCLIENT="",SMTPAUTH=""
::1:allow,RELAYCLIENT="",SMTPAUTH=""
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

# The test user: a home with a Maildir, and an entry in users/assign.
home=$dir/home/$user
maildir=$home/Maildir
mkdir -p "$dir/home"
if [ ! -d "$home" ]; then
	mkdir -m 755 "$home"
	changed+=("home/$user/")
fi
if [ ! -d "$maildir" ]; then
	"$dir/bin/rqmail-maildirmake" "$maildir"
	changed+=("home/$user/Maildir/")
fi

# Mail for postmaster, root and MAILER-DAEMON (bounces, double bounces) goes to the test user.
mkdir -p "$dir/alias"
chmod 755 "$dir/alias"
for a in postmaster root mailer-daemon; do
	create_file "$dir/alias/.qmail-$a" 644 "&$user@$domain"$'\n'
done

mkdir -p "$dir/users"
assign=$dir/users/assign
entry="=$user:$user:$uid:$gid:$home:::"$'\n'"+$user-:$user:$uid:$gid:$home:-::"$'\n'
if [ ! -e "$assign" ]; then
	create_file "$assign" 644 "$entry."$'\n'
elif ! grep -q "^=$user:" "$assign"; then
	# Add the user's entries before the closing "." line, leaving the others as they are.
	awk -v entry="$entry" '!done && $0 == "." { printf "%s", entry; done = 1 } { print }
		END { if (!done) printf "%s.\n", entry }' "$assign" >"$assign.quickstart-tmp"
	mv -f "$assign.quickstart-tmp" "$assign"
	changed+=("users/assign (+$user)")
fi
if [ ! -e "$dir/users/cdb" ] || [ "$assign" -nt "$dir/users/cdb" ]; then
	"$dir/bin/rqmail-newu"
fi

# The password, for the login services: a SHA-512 crypt hash, one "name:hash" line per
# user, readable by the instance's user only.
pw=$dir/users/password
if command -v openssl >/dev/null 2>&1; then
	if ! { [ -e "$pw" ] && grep -q "^$user:" "$pw"; }; then
		hash=$(printf '%s\n' "$password" | openssl passwd -6 -stdin)
		(umask 077 && printf '%s:%s\n' "$user" "$hash" >>"$pw")
		changed+=("users/password (+$user)")
	fi
fi

# The POP3 and IMAP logins' checkpassword. rqmail-checkpassword checks system accounts, and the
# test user is not one; until rqmail has virtual users (a later issue), this stand-in
# checks the users in users/password. It is one of the quick start's programs, like the
# binaries: written again on every run. Its interpreter is an absolute path, since the
# servers run with PATH=/usr/bin:/bin.
python=''
for candidate in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || :)"; do
	if [ -n "$candidate" ] && [ -x "$candidate" ]; then
		python=$candidate
		break
	fi
done
checkpassword=$dir/bin/quickstart-checkpassword
if [ -n "$python" ]; then
	[ -e "$checkpassword" ] || changed+=(bin/quickstart-checkpassword)
	{
		printf '#!%s\n' "$python"
		cat <<'EOF'
# quickstart-checkpassword PROG [ARG...]: the quick start's stand-in for
# rqmail-checkpassword, until rqmail has virtual users (a later issue). The quick start's
# test user is no system account, so rqmail-checkpassword cannot check its password.
#
# djb's checkpassword interface: reads "user\0password\0timestamp\0" (at most 512 bytes)
# on fd 3, looks the user up in DIR/users/password ("name:crypt-hash" lines; DIR is the
# parent of this script's directory), and on a match sets USER and HOME to
# DIR/home/NAME, enters that directory and execs PROG ARG... (rqmail-pop3d Maildir or
# rqmail-imapd Maildir).
# Exit codes: 1 refused (unknown user, wrong password), 2 misuse, 111 a temporary
# problem. It changes no uid: the whole instance runs as one user. Written by
# install/quickstart.sh on every run, so edits here are lost.
import hmac, os, re, subprocess, sys


def fail(code, why):
    print("quickstart-checkpassword: " + why, file=sys.stderr)
    sys.exit(code)


def crypt_hash(password, setting):
    """password hashed with the salt of setting, as crypt(3) does: with Python's crypt
    module where there still is one (it is gone in 3.13), else with openssl passwd
    (which knows $1$, $5$ and $6$ without rounds=)."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
        return crypt.crypt(password.decode("utf-8", "surrogateescape"), setting) or ""
    except ImportError:
        pass
    m = re.fullmatch(r"\$([156])\$([^$]{1,16})\$[./0-9A-Za-z]+", setting)
    if m is None:
        fail(111, "no crypt module, and openssl passwd cannot check this kind of hash")
    if b"\n" in password:
        return ""
    try:
        out = subprocess.run(
            ["openssl", "passwd", "-" + m.group(1), "-salt", m.group(2), "-stdin"],
            input=password + b"\n", capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        fail(111, "openssl passwd failed: %s" % e)
    return out.stdout.decode("ascii", "replace").strip()


if len(sys.argv) < 2:
    fail(2, "usage: quickstart-checkpassword PROG [ARG...]")
data = b""
try:
    while len(data) <= 512:
        chunk = os.read(3, 513 - len(data))
        if not chunk:
            break
        data += chunk
    os.close(3)
except OSError as e:
    fail(2, "unable to read fd 3: %s" % e)
fields = data.split(b"\0")
if len(data) > 512 or len(fields) < 3:
    fail(2, "fd 3 does not hold user\\0password\\0timestamp\\0 in 512 bytes")
user, password = fields[0], fields[1]
name = user.decode("ascii", "replace")
# Only names the quick start can have made: no '/', no "..", so the home stays in DIR.
if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
    fail(1, "login refused: no such user")
top = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0])))
stored = None
try:
    with open(os.path.join(top, "users", "password"), "rb") as f:
        for line in f:
            n, _, h = line.rstrip(b"\r\n").partition(b":")
            if n == user and h:
                stored = h.decode("ascii", "replace")
                break
except OSError as e:
    fail(111, "unable to read users/password: %s" % e)
if stored is None:
    fail(1, "login refused for %s: no such user" % name)
if not hmac.compare_digest(crypt_hash(password, stored).encode(), stored.encode()):
    fail(1, "login refused for %s: wrong password" % name)
home = os.path.join(top, "home", name)
try:
    os.chdir(home)
except OSError as e:
    fail(111, "unable to enter %s: %s" % (home, e))
os.environ["USER"] = name
os.environ["HOME"] = home
try:
    os.execv(sys.argv[1], sys.argv[1:])
except OSError as e:
    fail(111, "unable to run %s: %s" % (sys.argv[1], e))
EOF
	} >"$checkpassword.quickstart-tmp"
	chmod 755 "$checkpassword.quickstart-tmp"
	mv -f "$checkpassword.quickstart-tmp" "$checkpassword"
fi
if [ ! -e "$pw" ]; then
	password_note="no openssl, so no users/password: POP3 and IMAP logins fail"
elif [ -z "$python" ]; then
	password_note="no python3, so no POP3 or IMAP: bin/quickstart-checkpassword is a Python script"
else
	password_note="for POP3 and IMAP: its hash is in $pw, checked by bin/quickstart-checkpassword"
fi

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
smtp_example="import smtplib; smtplib.SMTP(\"127.0.0.1\", $((p + 25))).sendmail(\"someone@$me\", [\"$user@$me\"], \"Subject: hello\\r\\n\\r\\nhi\\r\\n\")"
# POP3 and IMAP are served when their checkpassword can work; the examples show the password where
# it needs no quoting in a URL, a shell word and a Python string.
pop3=0
[ -z "$python" ] || [ ! -e "$pw" ] || pop3=1
pop3_note='' shown_password=PASSWORD
if [ -z "$python" ]; then
	pop3_note='not served: no python3 for bin/quickstart-checkpassword'
elif [ ! -e "$pw" ]; then
	pop3_note='not served: no openssl, so no users/password'
fi
pop3_hint=''
if [[ $password =~ ^[A-Za-z0-9._~-]+$ ]]; then
	shown_password=$password
else
	pop3_hint=", with the password in place of PASSWORD"
fi
[ -z "$pop3_note" ] || pop3_hint="$pop3_hint, $pop3_note"
imap_example="import imaplib, ssl; m = imaplib.IMAP4_SSL(\"127.0.0.1\", $((p + 993)), ssl_context=ssl._create_unverified_context()); m.login(\"$user\", \"$shown_password\"); m.select(\"INBOX\"); print(m.fetch(\"1\", \"(BODY[])\")[1][0][1].decode()); m.logout()"
pop3_example="import poplib, ssl; p = poplib.POP3_SSL(\"127.0.0.1\", $((p + 995)), context=ssl._create_unverified_context()); p.user(\"$user\"); p.pass_(\"$shown_password\"); print(p.stat()); print(p.retr(1)[1])"
cat <<EOF

rqmail instance in $dir, running as $who
  created this run:  ${changed[*]:-nothing (everything was already there; binaries updated)}
  mail domain:       $me (control/me; locals: $(paste -sd ' ' "$dir/control/locals"))
  test user:         $user, password '$password' ($password_note)
  SMTP AUTH:         checks system accounts, whose passwords a single-user instance cannot
                     read; loopback clients may relay and submit without it (control/tcp.smtp)

Mail for $user@$me lands in
  $maildir/new/

Send a message over SMTP (loopback may relay):
  swaks --server 127.0.0.1 --port $((p + 25)) --from someone@$me --to $user@$me
  python3 -c '$smtp_example'
  swaks --server 127.0.0.1 --port $((p + 587)) -tls --to $user@$me       (submission, STARTTLS)
  swaks --server 127.0.0.1 --port $((p + 465)) --tls-on-connect --to $user@$me   (implicit TLS)
or from the command line$send_note:
  echo hi | ${as}$dir/bin/sendmail $user@$me
  printf 'Subject: hello\n\nhi\n' | ${as}$dir/bin/sendmail -f someone@$me $user@$me
  printf 'To: $user@$me\nSubject: hello\n\nhi\n' | ${as}$dir/bin/rqmail-inject
Read it:
  ls $maildir/new
  cat $maildir/new/*
or over POP3, as $user$pop3_hint (a message shows there a second after
its delivery; -k and the unverified context because the certificate is self-signed):
  curl -k pop3s://$user:$shown_password@127.0.0.1:$((p + 995))/      (the list)
  curl -k pop3s://$user:$shown_password@127.0.0.1:$((p + 995))/1     (message 1)
  curl pop3://$user:$shown_password@127.0.0.1:$((p + 110))/1         (no TLS: loopback may)
  python3 -c '$pop3_example'
or over IMAP, as $user$pop3_hint (-k and the unverified context for the same reason):
  curl -k 'imaps://$user:$shown_password@127.0.0.1:$((p + 993))/INBOX;UID=1'      (message UID 1)
  curl -k 'imaps://$user:$shown_password@127.0.0.1:$((p + 993))/INBOX/;MAILINDEX=1'  (message 1)
  curl -k imaps://$user:$shown_password@127.0.0.1:$((p + 993))/INBOX -X 'UID SEARCH ALL'  (the UIDs)
  curl -k imaps://$user:$shown_password@127.0.0.1:$((p + 993))/     (the folders)
  curl 'imap://$user:$shown_password@127.0.0.1:$((p + 143))/INBOX;UID=1'        (no TLS: loopback may)
  python3 -c '$imap_example'
See the queue:
  ${as}$dir/bin/rqmail-qstat
  ${as}$dir/bin/rqmail-qread
Configure: edit $dir/control/*, $dir/users/assign (then ${as}$dir/bin/rqmail-newu),
  dot-qmail files in $home.

Ports (loopback, base $p)$tls_note:
  SMTP        $((p + 25)) (STARTTLS)
  submission  $((p + 587)) (STARTTLS), $((p + 465)) (implicit TLS)
  POP3        $((p + 110)) (STLS), $((p + 995)) (implicit TLS)      ${pop3_note:-for $user (control/tcp.pop3)}
  IMAP        $((p + 143)) (STARTTLS), $((p + 993)) (implicit TLS)   ${pop3_note:-for $user (control/tcp.imap)}
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
# rqmail-checkpassword (system accounts).
smtp_server() {
	local name=$1 port=$2
	shift 2
	tcp_server "$name" "$port" tcp.smtp "$@" -- \
		"$dir/bin/rqmail-smtpd" "$me" "$dir/bin/rqmail-checkpassword" /bin/true
}
# pop3_server NAME PORT [-s]: rqmail-login (not root here, so it changes no uid) with the
# quick start's checkpassword, which runs rqmail-pop3d on the user's Maildir.
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
if [ "$pop3" = 1 ]; then
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
else
	echo "quickstart: POP3 and IMAP $pop3_note"
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
