#!/bin/bash
# install.sh: installs rqmail into one directory (default /var/rqmail) with qmail's
# accounts, owners and modes, and never touches a file the admin has edited.
#
# usage: install/install.sh [--prefix DIR] [--hostname NAME] [--bindir DIR]
#                           [--no-accounts-check] [--sendmail-link] [--daemontools]
#
# Run it as root. Running it again upgrades the binaries, repairs the owners and modes of
# the queue directories, and keeps every control file, users/assign and ~alias file.
# It installs (never enables) a systemd unit per service: rqmail (the queue), the SMTP
# services rqmail-smtpd (port 25), rqmail-submission (587) and rqmail-smtps (465), and
# the POP3 services rqmail-pop3d (port 110) and rqmail-pop3s (995), and the IMAP
# services rqmail-imapd (port 143) and rqmail-imaps (993).
set -eu
umask 022 # files and directories get exactly the modes set below

usage() {
    cat <<EOF
usage: $0 [options]
  --prefix DIR          install into DIR (default /var/rqmail); absolute path
  --hostname NAME       this host's name for control/me, locals, rcpthosts
                        (default: hostname -f, else hostname)
  --bindir DIR          take the binaries from DIR (default: the repository's
                        target/release, built with cargo if missing)
  --no-accounts-check   do not create or compare the rqmail accounts and groups
                        (managed elsewhere, e.g. LDAP); they must exist
  --sendmail-link       point /usr/sbin/sendmail and /usr/lib/sendmail at rqmail's
  --daemontools         install daemontools run scripts in PREFIX/service/NAME for
                        rqmail, rqmail-smtpd, rqmail-submission, rqmail-smtps,
                        rqmail-pop3d, rqmail-pop3s, rqmail-imapd and rqmail-imaps
EOF
}

say() { echo "install.sh: $*"; }
warn() { echo "install.sh: warning: $*" >&2; }
die() {
    echo "install.sh: fatal: $*" >&2
    exit 111
}

# --- Options ------------------------------------------------------------------------

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=/var/rqmail
host=
bindir=
accounts_check=yes
sendmail_link=no
daemontools=no

while [ $# -gt 0 ]; do
    case $1 in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift ;;
    --prefix=*) prefix=${1#*=} ;;
    --hostname) [ $# -ge 2 ] || die "--hostname needs a name"; host=$2; shift ;;
    --hostname=*) host=${1#*=} ;;
    --bindir) [ $# -ge 2 ] || die "--bindir needs a directory"; bindir=$2; shift ;;
    --bindir=*) bindir=${1#*=} ;;
    --no-accounts-check) accounts_check=no ;;
    --sendmail-link) sendmail_link=yes ;;
    --daemontools) daemontools=yes ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

[ "$(id -u)" = 0 ] || die "must be run as root: it creates accounts and sets owners"

# The prefix ends up in run scripts, the systemd unit and sed expressions: keep it to
# characters that need no quoting anywhere.
case $prefix in
/*) ;;
*) die "--prefix must be an absolute path: $prefix" ;;
esac
case $prefix in
*[!A-Za-z0-9._/+-]*) die "--prefix may only hold letters, digits and . _ / + -: $prefix" ;;
esac
while [ "$prefix" != / ] && [ "${prefix%/}" != "$prefix" ]; do prefix=${prefix%/}; done
[ "$prefix" != / ] || die "--prefix may not be /"

# --- Names (crates/privs/src/lib.rs) and what each binary is installed as --------------

GROUP=rqmail     # rqmailq, rqmails, rqmailr
NOFILES=rqnofiles # rqmaild, rqmaill, alias, rqmailp: accounts that own no queue files
SHADOW=shadow    # may read /etc/shadow (Debian's group for unix_chkpwd)

# Every program of the workspace is installed (install/programs.sh lists them from
# bin/*/Cargo.toml, as the quick start does), as root:rqmail 0755 unless this table says
# otherwise. name  owner[:group]  mode: the modes of qmail's hier.c; the group is rqmail
# unless given. rqmail-queue is the only setuid program; the root-only programs are unreadable
# by others; daemons are 0711. rqmail-checkpassword is setgid shadow, as Debian's
# unix_chkpwd is, so that rqmail-smtpd (rqmaild) can have it check a system password;
# it gives the group up as soon as it has read the hash. rqmail-login is started as
# root by rqmail-tcpserver (the POP3 and IMAP services): it drops its network-facing
# half to rqmaild itself, and runs rqmail-checkpassword, which becomes the user and runs
# rqmail-pop3d or rqmail-imapd.
BINARIES="
rqmail-queue       rqmailq 4711
rqmail-lspawn      root    0700
rqmail-start       root    0700
rqmail-newu        root    0700
rqmail-send        root    0711
rqmail-clean       root    0711
rqmail-rspawn      root    0711
rqmail-remote      root    0711
rqmail-local       root    0711
rqmail-inject      root    0755
sendmail           root    0755
rqmail-qread       root    0755
rqmail-qstat       root    0755
rqmail-maildirmake root    0755
rqmail-tcpserver   root    0755
rqmail-tcprules    root    0755
rqmail-smtpd       root    0755
rqmail-login       root    0755
rqmail-pop3d       root    0755
rqmail-imapd       root    0755
rqmail-vusers      rqmailp:$NOFILES 4711
rqmail-vdeliver    root    0755
rqmail-checkpassword root:$SHADOW 2755
"

# --- The binaries ---------------------------------------------------------------------

PROGRAMS=$("$repo/install/programs.sh") || die "install/programs.sh failed"
[ -n "$PROGRAMS" ] || die "install/programs.sh found no programs in $repo/bin"
# A name in the table that no package builds is a mistake in this script.
for name in $(echo "$BINARIES" | awk 'NF { print $1 }'); do
    echo "$PROGRAMS" | grep -qx "$name" || die "BINARIES names $name, which bin/ does not build"
done
# Every program with its owner and mode: the table's, else root 0755.
INSTALL_LIST=$(for name in $PROGRAMS; do
    line=$(echo "$BINARIES" | awk -v n="$name" '$1 == n')
    [ -n "$line" ] || line="$name root 0755"
    echo "$line"
done)

missing_binaries() {
    echo "$INSTALL_LIST" | while read -r name _ _; do
        [ -z "$name" ] || [ -x "$1/$name" ] || echo "$name"
    done
}

if [ -z "$bindir" ]; then
    bindir=$repo/target/release
    if [ -n "$(missing_binaries "$bindir")" ]; then
        command -v cargo >/dev/null ||
            die "no binaries in $bindir and no cargo in PATH: run 'cargo build --release --workspace' first"
        # As root, this leaves root-owned files in target/: better build first as yourself.
        say "building the release binaries (cargo build --release --workspace)"
        cargo build --release --workspace --manifest-path "$repo/Cargo.toml"
    fi
fi
missing=$(missing_binaries "$bindir")
[ -z "$missing" ] || die "missing in $bindir: $(echo "$missing" | tr '\n' ' ')"

# --- Accounts -------------------------------------------------------------------------

nologin=/usr/sbin/nologin
[ -x $nologin ] || nologin=/sbin/nologin
[ -x $nologin ] || nologin=/bin/false

ensure_group() {
    if getent group "$1" >/dev/null; then return; fi
    groupadd --system "$1"
    say "created group $1"
}

# ensure_account NAME GROUP HOME: a system account that cannot log in.
ensure_account() {
    local name=$1 group=$2 home=$3 entry
    if ! entry=$(getent passwd "$name"); then
        useradd --system --gid "$group" --home-dir "$home" --no-create-home \
            --shell "$nologin" --comment "rqmail" "$name"
        say "created account $name (group $group, home $home)"
        return
    fi
    # An existing account is kept as it is (it may be a qmail install's), but say what
    # differs: rqmail-start uses group $GROUP whatever the primary group is, while the
    # alias account's home is where mail for unknown addresses goes.
    local gid home_now want_gid
    gid=$(echo "$entry" | cut -d: -f4)
    home_now=$(echo "$entry" | cut -d: -f6)
    want_gid=$(getent group "$group" | cut -d: -f3)
    [ "$gid" = "$want_gid" ] || warn "account $name exists with primary gid $gid, not group $group"
    [ "$home_now" = "$home" ] || warn "account $name exists with home $home_now, not $home"
}

if [ $accounts_check = yes ]; then
    ensure_group $GROUP
    ensure_group $NOFILES
    ensure_group $SHADOW
    ensure_account rqmaild $NOFILES "$prefix"
    ensure_account rqmaill $NOFILES "$prefix"
    ensure_account alias $NOFILES "$prefix/alias"
    ensure_account rqmailq $GROUP "$prefix"
    ensure_account rqmails $GROUP "$prefix"
    ensure_account rqmailr $GROUP "$prefix"
    ensure_account rqmailp $NOFILES "$prefix"
else
    # Managed elsewhere, but they must resolve, or chown would fail half-way through.
    for name in $GROUP $NOFILES $SHADOW; do
        getent group "$name" >/dev/null || die "no group $name: create it first (--no-accounts-check)"
    done
    for name in rqmaild rqmaill alias rqmailq rqmails rqmailr rqmailp; do
        getent passwd "$name" >/dev/null || die "no account $name: create it first (--no-accounts-check)"
    done
fi

# --- Directories ----------------------------------------------------------------------

# no_symlink PATH: stops if PATH is a symbolic link. The queue and ~alias belong to
# less trusted accounts; a link planted there must not make root chown or chmod (which
# follow links) something elsewhere, such as /etc/shadow.
no_symlink() {
    [ ! -L "$1" ] || die "$1 is a symbolic link; remove it and run again"
}

# dir PATH OWNER GROUP MODE [quiet]: creates PATH if missing, then sets its owner and
# mode (also on a second run, which repairs them). The extra leading 0 makes chmod clear
# set-gid bits a parent directory may have passed down.
dir() {
    no_symlink "$1"
    if [ ! -d "$1" ]; then
        mkdir "$1"
        [ $# -gt 4 ] || say "created $1"
    fi
    chown -h "$2:$3" "$1"
    chmod "0$4" "$1"
}

mkdir -p "$(dirname "$prefix")"
dir "$prefix" root $GROUP 0755
dir "$prefix/bin" root $GROUP 0755
dir "$prefix/control" root $GROUP 0755
dir "$prefix/users" root $GROUP 0755
# users/virtual: each virtual domain's user table with its password hashes
# (users/virtual/DOMAIN/passwd and passwd.cdb), written by rqmail-vusers as rqmailp.
# Set-gid shadow, so new files get group shadow and rqmail-checkpassword, run by rqmaild
# with group shadow, can read passwd.cdb; the domains' accounts cannot.
dir "$prefix/users/virtual" rqmailp $SHADOW 2750
# users/loginfailures: rqmail-checkpassword's table of recent failed logins per account,
# shared by all its runs (as root under rqmail-login, with group shadow under rqmail-smtpd).
no_symlink "$prefix/users/loginfailures"
[ -f "$prefix/users/loginfailures" ] || : >"$prefix/users/loginfailures"
chown root:$SHADOW "$prefix/users/loginfailures"
chmod 0660 "$prefix/users/loginfailures"

# The queue: owners and modes of spec/queue.md §1. rqmail-queue (rqmailq) writes pid,
# mess, intd, todo; rqmail-send (rqmails) writes info, local, remote, bounce; both only
# read what the other writes, through group rqmail.
#
# On ext4 the T attribute (chattr(1): "top of directory hierarchy") on queue/ and on the
# split directories makes the file system put each of their subdirectories in a block group
# of its own, and new files go to their directory's group. Without it every queue file
# comes from one group, and a file system without a journal skips the inodes freed there in
# the last seconds to minutes on each create: with a busy queue, creating a file then cost
# 0.3-0.5 ms of CPU instead of 0.02 (bench/README.md). It only matters for directories
# made after it is set, i.e. a new queue; elsewhere chattr fails and nothing changes.
topdir() {
    chattr +T "$1" 2>/dev/null || :
}
q=$prefix/queue
[ -d "$q" ] || { dir "$q" rqmailq $GROUP 0750 && topdir "$q"; }
dir "$q" rqmailq $GROUP 0750
dir "$q/pid" rqmailq $GROUP 0700
dir "$q/intd" rqmailq $GROUP 0700
dir "$q/todo" rqmailq $GROUP 0750
dir "$q/bounce" rqmails $GROUP 0700
dir "$q/lock" rqmailq $GROUP 0750
split=23 # rqmail_control::SPLIT
for spec in "mess rqmailq 0750" "info rqmails 0700" "local rqmails 0700" "remote rqmails 0700"; do
    read -r name owner mode <<<"$spec"
    [ -d "$q/$name/$((split - 1))" ] || say "created $q/$name/0 ... $((split - 1))"
    [ -d "$q/$name" ] || { dir "$q/$name" "$owner" $GROUP "$mode" quiet && topdir "$q/$name"; }
    dir "$q/$name" "$owner" $GROUP "$mode" quiet
    i=0
    while [ $i -lt $split ]; do
        dir "$q/$name/$i" "$owner" $GROUP "$mode" quiet
        i=$((i + 1))
    done
done

for f in trigger sendmutex tcpto; do no_symlink "$q/lock/$f"; done
# lock/trigger: the FIFO any rqmail-queue writes a byte into to wake rqmail-send.
if [ -e "$q/lock/trigger" ] && [ ! -p "$q/lock/trigger" ]; then
    die "$q/lock/trigger exists and is not a FIFO"
fi
if [ ! -p "$q/lock/trigger" ]; then
    mkfifo "$q/lock/trigger"
    say "created $q/lock/trigger"
fi
chown rqmails:$GROUP "$q/lock/trigger"
chmod 0622 "$q/lock/trigger"
# lock/sendmutex: rqmail-send flocks it so that only one runs.
[ -f "$q/lock/sendmutex" ] || : >"$q/lock/sendmutex"
chown rqmails:$GROUP "$q/lock/sendmutex"
chmod 0600 "$q/lock/sendmutex"
# lock/tcpto: remote delivery's table of hosts that timed out, 1024 bytes as qmail's.
[ -f "$q/lock/tcpto" ] || head -c 1024 /dev/zero >"$q/lock/tcpto"
chown rqmailr:$GROUP "$q/lock/tcpto"
chmod 0644 "$q/lock/tcpto"

# ~alias: set-gid like qmail's, holding the system aliases. An empty .qmail file means
# "the default delivery", i.e. alias/Maildir; put a real person's address in them.
dir "$prefix/alias" alias $GROUP 2755
if [ ! -e "$prefix/alias/Maildir" ]; then
    for sub in "" /tmp /new /cur; do
        install -d -o alias -g $GROUP -m 0700 "$prefix/alias/Maildir$sub"
    done
    say "created $prefix/alias/Maildir"
fi
for name in postmaster mailer-daemon root; do
    f=$prefix/alias/.qmail-$name
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then
        install -o alias -g $GROUP -m 0644 /dev/null "$f"
        say "created $f (empty: mail goes to $prefix/alias/Maildir)"
    fi
done

# --- Binaries -------------------------------------------------------------------------

# Each binary is copied to a temporary name and renamed into place, so a running program
# keeps its old file and a program started meanwhile sees either the old or the new one.
echo "$INSTALL_LIST" | while read -r name owner mode; do
    [ -n "$name" ] || continue
    group=$GROUP
    case $owner in
    *:*) group=${owner#*:}; owner=${owner%%:*} ;;
    esac
    dest=$prefix/bin/$name
    if [ -f "$dest" ] && cmp -s "$bindir/$name" "$dest"; then
        # Unchanged: only repair owner and mode (chown first: it clears set-uid).
        chown "$owner:$group" "$dest"
        chmod "$mode" "$dest"
        continue
    fi
    tmp=$prefix/bin/.$name.new
    rm -f "$tmp"
    install -m "$mode" -o "$owner" -g "$group" "$bindir/$name" "$tmp"
    mv -f "$tmp" "$dest"
    say "installed $dest ($owner:$group, mode $mode)"
done

# rqmail-checkpassword reads hashes through group shadow; say so if that cannot work.
if [ -f /etc/shadow ]; then
    if [ "$(stat -c %G /etc/shadow)" != $SHADOW ] || [ -z "$(find /etc/shadow -perm -g=r)" ]; then
        warn "/etc/shadow is not readable by group $SHADOW: SMTP AUTH with system passwords will fail"
    fi
fi

# rqmail-queue finds its queue through the path it was run from (/proc/self/exe). If
# users may hard-link files they do not own, one could link the set-uid binary into a
# directory of their own and point it at a queue tree they made.
if [ "$(cat /proc/sys/fs/protected_hardlinks 2>/dev/null || echo 1)" = 0 ]; then
    warn "fs.protected_hardlinks is 0: set it to 1 (sysctl) so that users cannot hard-link $prefix/bin/rqmail-queue elsewhere"
fi

# --- Control files --------------------------------------------------------------------

# control_file NAME TEXT: writes control/NAME only if it does not exist.
control_file() {
    local f=$prefix/control/$1
    if [ -e "$f" ] || [ -L "$f" ]; then
        return
    fi
    printf '%s\n' "$2" >"$f.new"
    chown root:$GROUP "$f.new"
    chmod 0644 "$f.new"
    mv -f "$f.new" "$f"
    say "wrote $f: $(printf '%s' "$2" | tr '\n' ' ')"
}

# The host name: --hostname, else an existing control/me, else the system's name.
me_now=
[ ! -f "$prefix/control/me" ] || me_now=$(head -n 1 "$prefix/control/me")
if [ -n "$host" ] && [ -n "$me_now" ] && [ "$host" != "$me_now" ]; then
    warn "control/me already says $me_now; kept (edit it to change the host name)"
fi
if [ ! -e "$prefix/control/me" ] || [ ! -e "$prefix/control/locals" ] ||
    [ ! -e "$prefix/control/rcpthosts" ]; then
    [ -n "$host" ] || host=$me_now
    if [ -z "$host" ]; then
        host=$(hostname -f 2>/dev/null) || host=
        [ -n "$host" ] || host=$(hostname)
    fi
    case $host in
    "" | *[!A-Za-z0-9.-]*) die "bad host name '$host': give one with --hostname" ;;
    esac
    case $host in
    *.*) ;;
    *) warn "host name $host is not fully qualified; edit $prefix/control/me" ;;
    esac
    domains=$host
    [ "$host" = localhost ] || domains=$(printf '%s\nlocalhost' "$host")
    control_file me "$host"
    control_file locals "$domains"
    control_file rcpthosts "$domains"
fi
control_file defaultdelivery "./Maildir/"

# The samples: files holding the defaults, comment-only lists, NAME.sample files and
# the README. An admin's file of the same name always wins.
for sample in "$repo"/control/*; do
    [ -f "$sample" ] || continue
    f=$prefix/control/$(basename "$sample")
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then
        install -m 0644 -o root -g $GROUP "$sample" "$f"
        say "copied $f"
    fi
done

if [ -f "$prefix/users/assign" ]; then
    "$prefix/bin/rqmail-newu"
    say "compiled $prefix/users/assign into $prefix/users/cdb"
fi

# Virtual domains set up by an older rqmail kept their password tables in the domain's
# account's home, readable by that account: rqmail-vusers moves each to users/virtual.
if [ -f "$prefix/control/virtualdomains" ]; then
    sed -n 's/^\([A-Za-z0-9.-]*\):..*/\1/p' "$prefix/control/virtualdomains" | while read -r domain; do
        [ -n "$domain" ] && [ ! -e "$prefix/users/virtual/$domain/passwd" ] || continue
        # Exit 100 for a domain without a table: not one of rqmail-vdeliver's.
        code=0
        "$prefix/bin/rqmail-vusers" "$domain" compile </dev/null 2>"$prefix/users/.vusers.err" || code=$?
        [ $code = 0 ] || [ $code = 100 ] ||
            warn "rqmail-vusers $domain compile: $(cat "$prefix/users/.vusers.err"); its users may not log in"
        rm -f "$prefix/users/.vusers.err"
    done
fi

# The services' rules, control/tcp.smtp (SMTP: loopback may relay, everyone else may send
# mail for rcpthosts), control/tcp.pop3 (POP3: loopback may log in without TLS) and
# control/tcp.imap (IMAP: likewise), all copied from the samples above when missing,
# compiled into tcp.smtp.cdb, tcp.pop3.cdb and tcp.imap.cdb, which rqmail-tcpserver reads
# for every connection; recompiled when the text is newer.
for spec in "tcp.smtp SMTP" "tcp.pop3 POP3" "tcp.imap IMAP"; do
    read -r name what <<<"$spec"
    rules=$prefix/control/$name
    if [ -f "$rules" ] && { [ ! -e "$rules.cdb" ] || [ "$rules" -nt "$rules.cdb" ]; }; then
        if "$prefix/bin/rqmail-tcprules" "$rules.cdb" "$rules.tmp" <"$rules"; then
            chown root:$GROUP "$rules.cdb"
            chmod 0644 "$rules.cdb"
            say "compiled $rules into $rules.cdb"
        else
            warn "$rules has an error (above); $rules.cdb left as it was: fix it and run again"
        fi
    fi
    [ -e "$rules.cdb" ] ||
        warn "no $rules.cdb: the $what services drop every connection until it exists"
done

# control/servercert.pem: the certificate chain and private key STARTTLS, SMTPS, STLS,
# POP3S and IMAPS use. Made self-signed for control/me when missing; rqmaild alone may read it (it
# runs rqmail-smtpd and the front of rqmail-login).
cert=$prefix/control/servercert.pem
me=$(head -n 1 "$prefix/control/me")
if [ ! -e "$cert" ] && [ ! -L "$cert" ]; then
    if command -v openssl >/dev/null; then
        tmpdir=$(mktemp -d "$prefix/control/.servercert.XXXXXX") # mode 0700: the key
        if openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$me" \
            -keyout "$tmpdir/key.pem" -out "$tmpdir/cert.pem" 2>"$tmpdir/errors"; then
            cat "$tmpdir/cert.pem" "$tmpdir/key.pem" >"$tmpdir/servercert.pem"
            chown rqmaild:$NOFILES "$tmpdir/servercert.pem"
            chmod 0400 "$tmpdir/servercert.pem"
            mv -f "$tmpdir/servercert.pem" "$cert"
            say "generated a self-signed certificate for $me in $cert (owner rqmaild, mode 0400);"
            say "  replace it with a real certificate chain followed by its key, keeping owner and mode"
        else
            warn "openssl could not make a certificate: $(tr '\n' ' ' <"$tmpdir/errors")"
        fi
        rm -rf "$tmpdir"
    else
        warn "no openssl: no $cert made, so STARTTLS and STLS are not offered and ports 465, 995 and 993 cannot work"
    fi
elif command -v setpriv >/dev/null &&
    ! setpriv --reuid="$(id -u rqmaild)" --regid="$(id -g rqmaild)" --clear-groups \
        test -r "$cert"; then
    warn "rqmaild cannot read $cert: STARTTLS, SMTPS, STLS, POP3S and IMAPS will fail (chown rqmaild $cert)"
fi

# --- Service files --------------------------------------------------------------------

# shipped FILE: the shipped file with /var/rqmail replaced by the prefix.
shipped() {
    sed "s|/var/rqmail|$prefix|g" "$1"
}

# install_text DEST MODE SOURCE: installs the prefix-substituted SOURCE at DEST unless
# DEST exists; an existing different DEST is the admin's and is kept.
install_text() {
    local dest=$1 mode=$2 src=$3
    if [ -e "$dest" ]; then
        shipped "$src" | cmp -s - "$dest" ||
            warn "$dest differs from the shipped $src; kept as it is"
        return
    fi
    shipped "$src" >"$dest.new"
    chmod "$mode" "$dest.new"
    mv -f "$dest.new" "$dest"
    say "installed $dest"
}

# One service per program: the queue, SMTP on ports 25, 587 and 465, POP3 on 110 and 995,
# IMAP on 143 and 993.
SERVICES="rqmail rqmail-smtpd rqmail-submission rqmail-smtps rqmail-pop3d rqmail-pop3s
rqmail-imapd rqmail-imaps"

systemd=no
if [ -d /run/systemd/system ]; then
    systemd=yes
    for service in $SERVICES; do
        install_text "/etc/systemd/system/$service.service" 0644 \
            "$repo/install/systemd/$service.service"
    done
fi

if [ $daemontools = yes ]; then
    dir "$prefix/service" root $GROUP 0755
    for service in $SERVICES; do
        sv=$prefix/service/$service
        dir "$sv" root $GROUP 0755
        dir "$sv/log" root $GROUP 0755
        dir "$sv/log/main" rqmaill $NOFILES 0755
        install_text "$sv/run" 0755 "$repo/install/daemontools/$service/run"
        install_text "$sv/log/run" 0755 "$repo/install/daemontools/$service/log/run"
    done
fi

# --- sendmail -------------------------------------------------------------------------

if [ $sendmail_link = yes ]; then
    for link in /usr/sbin/sendmail /usr/lib/sendmail; do
        [ -d "$(dirname "$link")" ] || continue
        if [ -L "$link" ] && [ "$(readlink "$link")" = "$prefix/bin/sendmail" ]; then
            continue
        fi
        if [ -e "$link" ] || [ -L "$link" ]; then
            warn "$link exists (another MTA's?); left alone"
            continue
        fi
        ln -s "$prefix/bin/sendmail" "$link"
        say "linked $link -> $prefix/bin/sendmail"
    done
fi

# --- How to start it ------------------------------------------------------------------

cat <<EOF

rqmail is installed in $prefix (mail for $(head -n 1 "$prefix/control/me")).
Next:
  * put a real person's address (e.g. &you@example.com) in these files in
    $prefix/alias: .qmail-postmaster, .qmail-mailer-daemon, .qmail-root
  * optionally map addresses to users in $prefix/users/assign and run
    $prefix/bin/rqmail-newu (without it, each passwd account gets its own mail)
  * SMTP: who may relay is in $prefix/control/tcp.smtp (loopback only, to begin
    with; recompile it with rqmail-tcprules, see the file); $prefix/control/servercert.pem
    is the TLS certificate (self-signed unless you replaced it). Stop any other MTA
    listening on port 25 first.
  * POP3: system accounts read ~/Maildir with their passwords, inside TLS (STLS on 110,
    or 995); $prefix/control/tcp.pop3 lets loopback log in without TLS. Stop any other
    POP3 server on ports 110 and 995 first.
  * IMAP: likewise over IMAP (STARTTLS on 143, or 993); $prefix/control/tcp.imap lets
    loopback log in without TLS. Stop any other IMAP server on ports 143 and 993 first.

Start the queue (rqmail-start must get a clean environment; it logs to stderr), the
SMTP services (rqmail-smtpd: port 25; rqmail-submission: 587, AUTH required;
rqmail-smtps: 465, TLS, AUTH required), the POP3 services (rqmail-pop3d: port 110,
STLS; rqmail-pop3s: 995, TLS) and the IMAP services (rqmail-imapd: port 143, STARTTLS;
rqmail-imaps: 993, TLS):
EOF
if [ $systemd = yes ]; then
    cat <<EOF
  systemd:     systemctl daemon-reload
               systemctl enable --now rqmail.service
               systemctl enable --now rqmail-smtpd.service rqmail-submission.service rqmail-smtps.service
               systemctl enable --now rqmail-pop3d.service rqmail-pop3s.service
               systemctl enable --now rqmail-imapd.service rqmail-imaps.service
               (logs: journalctl -u rqmail -u rqmail-smtpd ...)
EOF
fi
if [ $daemontools = yes ]; then
    cat <<EOF
  daemontools: ln -s $prefix/service/rqmail $prefix/service/rqmail-smtpd \\
                 $prefix/service/rqmail-submission $prefix/service/rqmail-smtps \\
                 $prefix/service/rqmail-pop3d $prefix/service/rqmail-pop3s \\
                 $prefix/service/rqmail-imapd $prefix/service/rqmail-imaps \\
                 /etc/service/   (or /service/)
               (logs in $prefix/service/NAME/log/main)
EOF
else
    cat <<EOF
  daemontools: run this script again with --daemontools, then
               ln -s $prefix/service/rqmail $prefix/service/rqmail-smtpd ... /etc/service/
EOF
fi
cat <<EOF
  by hand:     env - PATH=/usr/bin:/bin $prefix/bin/rqmail-start
               (the SMTP, POP3 and IMAP command lines are in $prefix/service/*/run with --daemontools)
Stop rqmail with SIGTERM to rqmail-send: it finishes the deliveries in progress first.
SIGTERM to rqmail-tcpserver stops accepting; it exits when its sessions have ended.
EOF
