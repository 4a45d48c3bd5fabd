#!/usr/bin/env python3
"""IMAP benchmark: rqmail-imapd beside Dovecot's imap on the same Maildir (run by bench/imap.sh).

    imap.py RUN_DIR RQMAIL_IMAPD

RUN_DIR is a fresh scratch directory (made by imap.sh). This program
  - writes one Maildir, RUN_DIR/template/Maildir, with MESSAGES messages straight into cur/
    (2-4 KiB each, varied From, To, Subject and Date, Dovecot-style names
    TIME.Pn.bench.test,S=SIZE:2,FLAGS, about two thirds \\Seen, a few \\Flagged or
    \\Answered, mtimes one second apart in the past); NEEDLES of them carry "needle" in their
    Subject and NEEDLES others in their body;
  - for each server and each of RUNS runs, copies it (cp -a) to a directory of its own, so
    no server sees another's index files, and runs the server as a child process with fd 0
    and 1 on one end of a socketpair: rqmail-imapd MAILDIR (greets * PREAUTH), and Dovecot's
    imap binary with a minimal config (-c) that names the Maildir (greets * PREAUTH too);
    no network, no login, no daemon;
  - per run: a first session that SELECTs INBOX on the fresh copy (cold: no index yet),
    then REPEAT sessions that only SELECT (warm), then one session that SELECTs and runs
    each of FETCH 1:* (FLAGS UID RFC822.SIZE), FETCH 1:1000 (BODY.PEEK[HEADER.FIELDS (FROM
    TO SUBJECT DATE)]), SEARCH HEADER SUBJECT "needle", SEARCH BODY "needle" and NOOP
    REPEAT times (the first time apart: Dovecot caches what it had to read); VmRSS, VmHWM
    and RssAnon of the server from /proc/PID/status after SELECT (idle) and after the work;
    the server's CPU (utime+stime) per command.

Timings are from sending the command to the tagged OK, with the client reading and
splitting the whole reply (literals included); what the replies say is checked afterwards
(message count, the sum of RFC822.SIZE against the CRLF sizes written, the number of
header fields returned, the search results against the needles written).

Environment: MESSAGES (100000), REPEAT (3), RUNS (1), NEEDLES (8), SEARCH_BODY (1),
WIRE_SIZE (0; 1 also writes ,W=CRLF-SIZE into the names), TIMEOUT (900 s per command),
DOVECOT_IMAP (/usr/lib/dovecot/imap; missing: Dovecot is skipped), SEED (1).
"""

import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "bench.test"
HEADER_FIELDS = "FROM TO SUBJECT DATE"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def env_num(name, default, kind=int):
    return kind(os.environ.get(name, default))


# ------------------------------------------------------------------------- the Maildir

WORDS = """account after again agenda answer april army autumn balance basket battery bicycle
blanket border bottle branch bridge budget button cabinet camera candle canvas carbon carpet
castle cattle ceiling cellar chapter cherry chimney circle climate clock cloud coffee collar
colour copper corner cotton council country cousin credit crystal culture curtain cushion
danger debate decade degree desert desk detail diamond dinner doctor dollar dragon drawer
engine estate evening expert fabric factor family feather fence figure finger forest fortune
garden garlic ginger glass glove harbour harvest helmet hollow honey horizon hospital island
jacket jungle kettle kitten ladder lantern lemon letter library liquid lizard lumber magnet
market meadow member method mirror monkey morning motion mountain muscle napkin nation
nickel noodle number object ocean office orange oxygen paddle palace parcel pencil pepper
person pigeon planet pocket powder puzzle rabbit radio record ribbon river rocket saddle
salmon season shadow signal silver singer sister socket spider spirit spring summer sunset
system table temple thunder ticket timber tomato travel tunnel turtle valley velvet village
violin wallet walnut weather window winter wizard yellow""".split()
NAMES = """Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert
Sybil Trent Victor Walter Yvonne Zoe Aaron Bella Chen Dmitri Elena Farid Gita Hiro Ines""".split()
SURNAMES = """Smith Jones Brown Garcia Miller Davis Wilson Moore Taylor Anderson Thomas Martin
Lee Walker Hall Young King Wright Lopez Hill Scott Green Adams Baker Nelson Carter""".split()
DOMAINS = ["example.com", "example.net", "example.org", "lists.example.com", "mail.example.net",
           "corp.example", "shop.example", "news.example.org", "uni.example.edu", "dev.example"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
SUBJECT_NEEDLE = "needle"
BODY_NEEDLE = "needle"


def rfc5322_date(t):
    g = time.gmtime(t)
    return (f"{DAYS[g.tm_wday]}, {g.tm_mday} {MONTHS[g.tm_mon - 1]} {g.tm_year}"
            f" {g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} +0000")


def needle_positions(n, k, offset):
    """k message numbers (0-based) spread over n, shifted by offset so the two sets differ."""
    k = min(k, max(n // 4, 1))
    step = n // k
    return {(i * step + offset * step // 2 + step // 4) % n for i in range(k)}


def make_message(rng, i, t, subject_needle, body_needle, lines):
    sender = f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}"
    addr = f"{sender.split()[0].lower()}.{rng.randrange(1000)}@{rng.choice(DOMAINS)}"
    words = rng.sample(WORDS, rng.randrange(3, 8))
    subject = " ".join(words).capitalize()
    if rng.random() < 0.3:
        subject = "Re: " + subject
    if subject_needle:
        subject = f"{subject} (the {SUBJECT_NEEDLE} in the haystack)"
    head = (f"Return-Path: <{addr}>\n"
            f"Delivered-To: bench@{HOST}\n"
            f"Received: from mx{i % 7}.{addr.split('@')[1]} (mx{i % 7}.{addr.split('@')[1]}"
            f" [192.0.2.{i % 250 + 1}])\n\tby {HOST} with ESMTPS; {rfc5322_date(t)}\n"
            f"From: {sender} <{addr}>\n"
            f"To: Bench User <bench@{HOST}>\n"
            f"Subject: {subject}\n"
            f"Date: {rfc5322_date(t - rng.randrange(5, 600))}\n"
            f"Message-ID: <{t}.{i}.{rng.randrange(1 << 30):x}@{addr.split('@')[1]}>\n"
            f"MIME-Version: 1.0\n"
            f"Content-Type: text/plain; charset=us-ascii\n\n")
    target = rng.randrange(2048, 4097)
    body = []
    size = len(head)
    if body_needle:
        line = f"Somewhere in here is the {BODY_NEEDLE} you were looking for.\n"
        body.append(line)
        size += len(line)
    while size < target:
        line = rng.choice(lines)
        body.append(line)
        size += len(line)
    if body_needle:
        rng.shuffle(body)
    return (head + "".join(body)).encode()


def make_maildir(md, n, needles, wire_in_name, ids, seed):
    """Writes n messages into md/cur. Returns what the servers should report."""
    rng = random.Random(seed)
    lines = []
    for _ in range(4000):
        words = []
        while sum(len(w) + 1 for w in words) < rng.randrange(40, 76):
            words.append(rng.choice(WORDS))
        lines.append(" ".join(words).capitalize() + ".\n")
    subj = needle_positions(n, needles, 0)
    body = needle_positions(n, needles, 1) - subj
    for d in (md, *(os.path.join(md, s) for s in ("cur", "new", "tmp"))):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700)
        if ids:
            os.chown(d, *ids)
    base = int(time.time()) - n - 3600
    total = wire_total = 0
    cur = os.path.join(md, "cur")
    for i in range(n):
        t = base + i
        data = make_message(rng, i, t, i in subj, i in body, lines)
        wire = len(data) + data.count(b"\n")
        total += len(data)
        wire_total += wire
        flags = "S" if i % 3 else ""
        if i % 50 == 7:
            flags = "FS"
        elif i % 20 == 3:
            flags = "RS"
        w = f",W={wire}" if wire_in_name else ""
        path = os.path.join(cur, f"{t}.P{i + 1}.{HOST},S={len(data)}{w}:2,{flags}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        if ids:
            os.fchown(fd, *ids)
        os.close(fd)
        os.utime(path, (t, t))
    return {"messages": n, "bytes": total, "wire_bytes": wire_total,
            "subject_matches": len(subj), "body_matches": len(body)}


def index_bytes(md):
    """Bytes of what the server added to its copy: every file outside cur/, new/ and tmp/."""
    total = 0
    for root, dirs, files in os.walk(md):
        if root == md:
            dirs[:] = [d for d in dirs if d not in ("cur", "new", "tmp")]
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


# ------------------------------------------------------------------------- the client

class Failed(Exception):
    """A command did not end in a tagged OK (or the server went away)."""


LITERAL = re.compile(rb"\{(\d+)\+?\}$")


class Session:
    """One server process with fds 0 and 1 on a socketpair, and a minimal IMAP client."""

    def __init__(self, cmd, env, cwd, logfile, as_owner, timeout):
        ours, theirs = socket.socketpair()
        self.t0 = time.monotonic()
        self.logf = open(logfile, "ab")
        self.proc = subprocess.Popen(cmd, stdin=theirs, stdout=theirs, stderr=self.logf,
                                     env=env, cwd=cwd, close_fds=True, **as_owner)
        theirs.close()
        ours.settimeout(timeout)
        self.s = ours
        self.buf = bytearray()
        self.n = 0
        greeting = self.line()
        self.startup = time.monotonic() - self.t0
        if not greeting.startswith(b"* PREAUTH"):
            self.close()
            raise Failed(f"greeting: {greeting[:200]!r}")

    def fill(self):
        d = self.s.recv(1 << 18)
        if not d:
            raise Failed("the server closed the connection")
        self.buf += d

    def line(self):
        start = 0
        while (i := self.buf.find(b"\r\n", start)) < 0:
            start = max(0, len(self.buf) - 1)
            self.fill()
        out = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return out

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def cpu(self):
        """The server's CPU seconds so far (utime + stime)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            s = f.read()
        rest = s[s.rindex(")") + 2:].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK

    def status(self):
        """VmRSS, VmHWM, RssAnon and RssFile in KiB (RssFile: mapped files such as
        Dovecot's index, which the page cache holds anyway)."""
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        return out

    def command(self, text):
        """Sends a command and reads the reply up to the tagged completion. Returns the
        untagged lines (each with its literals as a list), the seconds it took, the server's
        CPU seconds and the client's."""
        self.n += 1
        tag = b"b%d" % self.n
        cpu0 = self.cpu()
        c0 = time.process_time()
        t0 = time.monotonic()
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged = []
        while True:
            line = self.line()
            literals = []
            while line.endswith(b"}") and (m := LITERAL.search(line)):
                literals.append(self.take(int(m.group(1))))
                line += b"\0" + self.line()  # the rest of the response after the literal
            if line.startswith(tag + b" "):
                break
            untagged.append((line, literals))
        secs = time.monotonic() - t0
        client = time.process_time() - c0
        server = self.cpu() - cpu0
        if not line.startswith(tag + b" OK"):
            raise Failed(f"{text}: {line[:300]!r}")
        return untagged, secs, server, client

    def logout(self):
        """LOGOUT and the time until the process has exited (index writes at close)."""
        t0 = time.monotonic()
        try:
            self.command("LOGOUT")
        except (Failed, OSError):
            pass
        self.s.close()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()
        return time.monotonic() - t0

    def close(self):
        self.s.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.logf.close()


# ------------------------------------------------------------------------- servers

class Rqmail:
    label = "rqmail"

    def __init__(self, binary):
        self.binary = binary
        self.version = "rqmail-imapd"

    def session(self, md, scratch, as_owner, timeout):
        env = {"PATH": "/usr/bin:/bin", "USER": "bench", "HOME": scratch}
        return Session([self.binary, md], env, scratch, os.path.join(scratch, "imapd.log"),
                       as_owner, timeout)


DOVECOT_CONF = """# Dovecot's imap run directly by bench/imap.sh: pre-authenticated on fds 0 and 1, no
# daemon; run so, it logs to stderr. Everything not set here is Dovecot's default (indexes
# in the Maildir, mail_fsync = optimized, no full-text search).
base_dir = {scratch}/run
state_dir = {scratch}/state
mail_location = maildir:{md}
"""


class Dovecot:
    label = "dovecot"

    def __init__(self, binary):
        self.binary = binary
        v = ""
        if os.path.exists("/usr/sbin/dovecot"):
            r = subprocess.run(["/usr/sbin/dovecot", "--version"], capture_output=True, text=True)
            v = r.stdout.strip() if r.returncode == 0 else ""
        self.version = f"dovecot {v.split()[0]}" if v else "dovecot"

    def session(self, md, scratch, as_owner, timeout):
        conf = os.path.join(scratch, "dovecot.conf")
        if not os.path.exists(conf):
            with open(conf, "w") as f:
                f.write(DOVECOT_CONF.format(scratch=scratch, md=md))
        env = {"PATH": "/usr/bin:/bin", "USER": "bench", "HOME": scratch}
        return Session([self.binary, "-c", conf], env, scratch,
                       os.path.join(scratch, "dovecot.stderr"), as_owner, timeout)


# ------------------------------------------------------------------------- measuring

def check_select(untagged, expect):
    n = next((int(l.split()[1]) for l, _ in untagged if l.endswith(b" EXISTS")), None)
    return None if n == expect else f"SELECT said {n} EXISTS, expected {expect}"


SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")


def check_sizes(untagged, facts):
    fetches = [l for l, _ in untagged if b" FETCH " in l]
    total = sum(int(m.group(1)) for l in fetches if (m := SIZE_RE.search(l)))
    notes = []
    if len(fetches) != facts["messages"]:
        notes.append(f"{len(fetches)} FETCH responses for {facts['messages']} messages")
    if total != facts["wire_bytes"]:
        notes.append(f"RFC822.SIZE sums to {total}, the messages hold {facts['wire_bytes']}"
                     f" with CRLF")
    return "; ".join(notes) or None


def check_headers(untagged, expect):
    fetches = [(l, lits) for l, lits in untagged if b" FETCH " in l]
    fields = sum(sum(len(re.findall(rb"(?mi)^(from|to|subject|date):", x)) for x in lits)
                 for _, lits in fetches)
    notes = []
    if len(fetches) != expect:
        notes.append(f"{len(fetches)} FETCH responses for {expect} messages")
    if fields != 4 * expect:
        notes.append(f"{fields} header fields returned, expected {4 * expect}")
    return "; ".join(notes) or None


def check_search(untagged, expect):
    hits = [int(x) for l, _ in untagged if l.startswith(b"* SEARCH")
            for x in l.split()[2:]]
    return None if len(hits) == expect else f"{len(hits)} matches, expected {expect}"


def timed(stats, key, sess, text, check, repeat):
    """Runs a command repeat times; keeps the first and the median of the others."""
    times, cpus, clients, notes = [], [], [], []
    for _ in range(repeat):
        try:
            untagged, secs, server, client = sess.command(text)
        except Failed as e:
            stats.setdefault("failures", []).append(f"{key}: {e}")
            log(f"      {key}: FAILED: {e}")
            return
        times.append(secs)
        cpus.append(server)
        clients.append(client)
        note = check(untagged)
        if note and note not in notes:
            notes.append(note)
    stats[key] = {"first": times[0], "again": statistics.median(times[1:]) if repeat > 1 else None,
                  "cpu_first": cpus[0], "cpu_again": statistics.median(cpus[1:]) if repeat > 1 else None,
                  "client": statistics.median(clients), "notes": notes}
    again = f", again {stats[key]['again']:.3f} s" if repeat > 1 else ""
    log(f"      {key}: {times[0]:.3f} s{again} (server CPU {cpus[0]:.2f} s)"
        + (f"  CHECK: {'; '.join(notes)}" if notes else ""))


def run_server(server, md, scratch, as_owner, facts, repeat, search_body, timeout):
    stats = {"failures": []}
    n = facts["messages"]
    k = min(1000, n)

    def open_session():
        return server.session(md, scratch, as_owner, timeout)

    def select(sess):
        untagged, secs, cpu, _ = sess.command("SELECT INBOX")
        return secs, cpu, check_select(untagged, n)

    # Cold: the first SELECT the server ever sees on this copy.
    os.sync()
    try:
        sess = open_session()
    except Failed as e:
        stats["failures"].append(f"start: {e}")
        return stats
    stats["startup"] = [sess.startup]
    try:
        secs, cpu, note = select(sess)
        time.sleep(0.2)
        stats["cold"] = {"secs": secs, "cpu": cpu, "mem": sess.status(), "note": note}
        log(f"      cold SELECT: {secs:.3f} s (server CPU {cpu:.2f} s), {stats['cold']['mem']}"
            + (f"  CHECK: {note}" if note else ""))
    except Failed as e:
        stats["failures"].append(f"cold SELECT: {e}")
        log(f"      cold SELECT: FAILED: {e}")
    stats["cold_logout"] = sess.logout()
    stats["index_after_cold"] = index_bytes(md)

    # Warm: SELECT alone in new sessions.
    warm, warm_cpu = [], []
    for _ in range(repeat):
        sess = open_session()
        stats["startup"].append(sess.startup)
        try:
            secs, cpu, note = select(sess)
            warm.append(secs)
            warm_cpu.append(cpu)
            if note:
                stats.setdefault("warm_note", note)
        except Failed as e:
            stats["failures"].append(f"warm SELECT: {e}")
        sess.logout()
    if warm:
        stats["warm"] = {"secs": statistics.median(warm), "cpu": statistics.median(warm_cpu)}
        log(f"      warm SELECT: {stats['warm']['secs']:.3f} s (median of {len(warm)})")

    # The work, in one more session.
    sess = open_session()
    try:
        secs, cpu, note = select(sess)
        time.sleep(0.2)
        stats["idle"] = sess.status()
        log(f"      idle after SELECT: {stats['idle']}")
        timed(stats, "fetch_sizes", sess, "FETCH 1:* (FLAGS UID RFC822.SIZE)",
              lambda u: check_sizes(u, facts), repeat)
        timed(stats, "fetch_headers", sess,
              f"FETCH 1:{k} (BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})])",
              lambda u: check_headers(u, k), repeat)
        timed(stats, "search_subject", sess, f'SEARCH HEADER SUBJECT "{SUBJECT_NEEDLE}"',
              lambda u: check_search(u, facts["subject_matches"]), repeat)
        if search_body:
            timed(stats, "search_body", sess, f'SEARCH BODY "{BODY_NEEDLE}"',
                  lambda u: check_search(u, facts["body_matches"]), repeat)
        # What a client's poll costs (many send NOOP every few minutes, or before each
        # UID command): the server looks for new and expunged messages.
        timed(stats, "noop", sess, "NOOP", lambda u: None, repeat)
        time.sleep(0.2)
        stats["after"] = sess.status()
        log(f"      after the work: {stats['after']}")
    except Failed as e:
        stats["failures"].append(f"work session: {e}")
        log(f"      FAILED: {e}")
    stats["logout"] = sess.logout()
    stats["index"] = index_bytes(md)
    return stats


def median_of(runs, *path):
    vals = []
    for r in runs:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
            if v is None:
                break
        if isinstance(v, (int, float)):
            vals.append(v)
    return statistics.median(vals) if vals else None


# ------------------------------------------------------------------------- main

def main():
    run_dir = os.path.abspath(sys.argv[1])
    imapd = os.path.abspath(sys.argv[2])
    n = env_num("MESSAGES", "100000")
    repeat = max(1, env_num("REPEAT", "3"))
    runs = max(1, env_num("RUNS", "1"))
    needles = env_num("NEEDLES", "8")
    search_body = env_num("SEARCH_BODY", "1") != 0
    wire_in_name = env_num("WIRE_SIZE", "0") != 0
    timeout = env_num("TIMEOUT", "900", float)
    seed = env_num("SEED", "1")
    dovecot_bin = os.environ.get("DOVECOT_IMAP", "/usr/lib/dovecot/imap")

    st = os.stat(run_dir)
    if os.getuid() == 0:
        # rqmail-imapd refuses to run as root, and Dovecot's imap run by root needs a
        # mail_uid to drop to: both run as the owner of the run directory (nobody).
        ids = (st.st_uid, st.st_gid)
        as_owner = {"user": st.st_uid, "group": st.st_gid, "extra_groups": []}
    else:
        ids, as_owner = None, {}

    servers = [Rqmail(imapd)]
    dovecot_note = None
    if os.access(dovecot_bin, os.X_OK):
        servers.append(Dovecot(dovecot_bin))
    else:
        dovecot_note = (f"Dovecot not measured: {dovecot_bin} not found"
                        f" (apt-get install dovecot-imapd)")

    template = os.path.join(run_dir, "template", "Maildir")
    os.makedirs(os.path.dirname(template))
    if ids:
        os.chown(os.path.dirname(template), *ids)
    log(f"imap: writing {n} messages into {template} ...")
    t0 = time.monotonic()
    facts = make_maildir(template, n, needles, wire_in_name, ids, seed)
    os.sync()
    log(f"    {time.monotonic() - t0:.1f} s; {facts['bytes'] / 1e6:.1f} MB"
        f" ({facts['wire_bytes'] / 1e6:.1f} MB with CRLF)")

    results = {s.label: [] for s in servers}
    for r in range(runs):
        # Alternate the order from run to run, so neither always goes first.
        order = servers if r % 2 == 0 else servers[::-1]
        for server in order:
            scratch = os.path.join(run_dir, f"{server.label}-{r + 1}")
            os.makedirs(scratch)
            os.chmod(scratch, 0o755)
            if ids:
                os.chown(scratch, *ids)
            md = os.path.join(scratch, "Maildir")
            log(f"imap: run {r + 1}/{runs}, {server.version}: copying the Maildir to {md} ...")
            subprocess.run(["cp", "-a", template, md], check=True)
            stats = run_server(server, md, scratch, as_owner, facts, repeat, search_body,
                               timeout)
            results[server.label].append(stats)
            # The copy is 4 KiB a message on disk: keep only the index files of the last run.
            if r + 1 < runs:
                for sub in ("cur", "new", "tmp"):
                    shutil.rmtree(os.path.join(md, sub), ignore_errors=True)

    report(servers, results, facts, repeat, runs, search_body, wire_in_name, dovecot_note)


def report(servers, results, facts, repeat, runs, search_body, wire_in_name, dovecot_note):
    n = facts["messages"]
    k = min(1000, n)
    labels = [s.label for s in servers]
    rows = [
        ("start-up to greeting, s", ("startup_med",), 3),
        ("SELECT INBOX cold (no index), s", ("cold", "secs"), 3),
        ("SELECT INBOX warm (new session), s", ("warm", "secs"), 3),
        ("FETCH 1:* (FLAGS UID RFC822.SIZE), s", ("fetch_sizes", "first"), 3),
        ("  the same again, s", ("fetch_sizes", "again"), 3),
        (f"FETCH 1:{k} BODY.PEEK[HEADER.FIELDS], s", ("fetch_headers", "first"), 3),
        ("  the same again, s", ("fetch_headers", "again"), 3),
        ('SEARCH HEADER SUBJECT "needle", s', ("search_subject", "first"), 3),
        ("  the same again, s", ("search_subject", "again"), 3),
    ]
    if search_body:
        rows += [('SEARCH BODY "needle", s', ("search_body", "first"), 3),
                 ("  the same again, s", ("search_body", "again"), 3)]
    rows += [
        ("NOOP, s", ("noop", "first"), 3),
        ("  the same again, s", ("noop", "again"), 3),
        ("VmRSS after cold SELECT, KiB", ("cold", "mem", "VmRSS"), 0),
        ("VmRSS idle after warm SELECT, KiB", ("idle", "VmRSS"), 0),
        ("  of which anonymous (RssAnon), KiB", ("idle", "RssAnon"), 0),
        ("VmRSS after the commands above, KiB", ("after", "VmRSS"), 0),
        ("  of which anonymous (RssAnon), KiB", ("after", "RssAnon"), 0),
        ("VmHWM (peak RSS) of that session, KiB", ("after", "VmHWM"), 0),
        ("index files in the Maildir, KiB", ("index_kib",), 0),
    ]
    for label in labels:
        for s in results[label]:
            if s.get("startup"):
                s["startup_med"] = statistics.median(s["startup"])
            if "index" in s:
                s["index_kib"] = s["index"] / 1024
    print()
    print(f"IMAP, each server a child process on a socketpair, pre-authenticated: {n} messages"
          f" in cur/ ({facts['bytes'] / 1e6:.1f} MB, {facts['wire_bytes'] / 1e6:.1f} MB with"
          f" CRLF; sizes in the names as ,S={'' if not wire_in_name else ' and ,W='}), a fresh"
          f" copy per server; warm figures are medians of {repeat} (SELECT: new sessions;"
          f" the commands: in one session, the first time apart)"
          + (f"; medians of {runs} runs" if runs > 1 else "") + ".")
    print()
    names = [next(s.version for s in servers if s.label == label) for label in labels]
    hdr = f"{'':<40}" + "".join(f" {name:>16}" for name in names)
    if len(labels) == 2:
        hdr += f" {'rqmail/dovecot':>15}"
    print(hdr)
    print("-" * len(hdr))
    for title, path, prec in rows:
        vals = [median_of(results[label], *path) for label in labels]
        line = f"{title:<40}" + "".join(
            f" {v:>16.{prec}f}" if v is not None else f" {'-':>16}" for v in vals)
        if len(vals) == 2:
            a, b = vals
            line += f" {a / b:>15.2f}" if a is not None and b else f" {'-':>15}"
        print(line)
    if dovecot_note:
        print()
        print(dovecot_note)
    print()
    print("details (per run):")
    for label, name in zip(labels, names):
        for i, s in enumerate(results[label], 1):
            parts = []
            if "cold" in s:
                parts.append(f"cold SELECT server CPU {s['cold']['cpu']:.2f} s, LOGOUT to exit"
                             f" {s['cold_logout']:.3f} s, index after it"
                             f" {s['index_after_cold'] / 1024:.0f} KiB")
            if "warm" in s:
                parts.append(f"warm SELECT server CPU {s['warm']['cpu']:.2f} s")
            for key in ("fetch_sizes", "fetch_headers", "search_subject", "search_body",
                        "noop"):
                v = s.get(key)
                if v:
                    again = (f", again {v['cpu_again']:.2f}" if v["cpu_again"] is not None
                             else "")
                    parts.append(f"{key} server CPU {v['cpu_first']:.2f} s{again}, client"
                                 f" CPU {v['client']:.2f} s")
            if "logout" in s:
                parts.append(f"last LOGOUT to exit {s['logout']:.3f} s")
            print(f"  {name} run {i}: " + "; ".join(parts))
            notes = [s[k]["note"] for k in ("cold",) if s.get(k, {}).get("note")]
            notes += [s["warm_note"]] if s.get("warm_note") else []
            notes += [f"{k}: {x}" for k in ("fetch_sizes", "fetch_headers", "search_subject",
                                            "search_body") for x in s.get(k, {}).get("notes", [])]
            for x in notes:
                print(f"    CHECK {x}")
            for x in s.get("failures", []):
                print(f"    FAILED {x}")


if __name__ == "__main__":
    main()
