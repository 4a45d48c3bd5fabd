#!/usr/bin/env python3
"""POP3 benchmark for rqmail, beside Dovecot in the same run (run by bench/pop3.sh).

    pop3_bench.py INSTANCE_DIR

INSTANCE_DIR is an instance made by install/quickstart.sh --setup-only (with
control/servercert.pem and control/tcp.pop3.cdb). This program
  - makes the Maildirs: home/big/Maildir with MESSAGES messages, home/u1..u8/Maildir with
    SESSION_MSGS each, written straight into cur/ under rqmail-style unique names;
  - builds two fake checkpasswords that accept big and u1..u8 with the password "bench" and
    exec their arguments in the user's home: a static C one (the cost of the real
    rqmail-checkpassword is a small static program's) and a Python one (like the one of
    tests/e2e/login.rs), to show what a script costs per login;
  - serves rqmail-login pop3 CHECKPASSWORD rqmail-pop3d Maildir under rqmail-tcpserver on
    two loopback ports (one per checkpassword), with control/tcp.pop3.cdb (loopback may log
    in without TLS: POP3_PLAINTEXT);
  - when Dovecot is installed, runs a private Dovecot (its own config, base_dir, log, and
    the same certificate) on another loopback port, serving the same Maildirs;
  - measures for each: one warm-up session per user (Dovecot builds its indexes there; the
    first session on the big Maildir is timed as "cold start"), then RETR of every message
    of the big Maildir in one session (STLS and plaintext), sessions per second (connect,
    [CAPA, STLS,] USER, PASS, STAT, QUIT) with each number of CLIENTS for SESSION_SECS
    seconds, and the memory of MEM_SESSIONS idle sessions after STAT (RSS of the new
    processes and growth of the server tree's PSS, from /proc/PID/smaps_rollup).

Environment: MESSAGES (10000), SIZE (4096), SESSION_MSGS (100), CLIENTS (1,8), SESSION_SECS
(8), MEM_SESSIONS (8), DOVECOT (/usr/sbin/dovecot).
"""

import multiprocessing
import os
import poplib
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PASSWORD = "bench"
SMALL_USERS = [f"u{i}" for i in range(1, 9)]


def env_list(name, default):
    return [int(x) for x in re.split(r"[,\s]+", os.environ.get(name, default).strip()) if x]


def env_num(name, default, kind=int):
    return kind(os.environ.get(name, default))


def log(*args):
    print(*args, file=sys.stderr, flush=True)


_TLS = None


def tls_context():
    """One client context per process, reused (TLS 1.2+, no certificate check: the
    certificate is self-signed; loading the system CAs per session would cost the client
    more than the whole server side of a session)."""
    global _TLS
    if _TLS is None:
        _TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _TLS.check_hostname = False
        _TLS.verify_mode = ssl.CERT_NONE
    return _TLS


# ------------------------------------------------------------------------- processes

def proc_table():
    """pid -> (ppid, comm, utime+stime+cutime+cstime ticks, rss pages)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        rest = s[s.rindex(")") + 2:].split()
        table[int(name)] = (int(rest[1]), comm, sum(int(x) for x in rest[11:15]), int(rest[21]))
    return table


def tree(root, table):
    children = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root] if root in table else []
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(root):
    """CPU seconds of a server's process tree, reaped children included."""
    t = proc_table()
    return sum(t[p][2] for p in tree(root, t)) / CLK_TCK


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop(proc, name):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        log(f"pop3: {name} did not stop on TERM; killing it")
        proc.kill()
        proc.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, what, logfile):
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"pop3: {what} did not come up; see {logfile}")
            time.sleep(0.05)


# ------------------------------------------------------------------------- the Maildirs

def message(size, user, seq):
    head = (f"Return-Path: <sender@bench.test>\nDelivered-To: {user}@bench.test\n"
            f"From: sender@bench.test\nTo: {user}@bench.test\n"
            f"Subject: bench message {seq}\nMessage-ID: <{seq}.{user}@bench.test>\n\n").encode()
    line = (b"abcdefghijklmnopqrstuvwxyz" * 3)[:75] + b"\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


def make_maildir(home, user, n, size, ids):
    """home/USER/Maildir with n messages in cur/, mtimes one second apart in the past (the
    delivery order), names as rqmail-local makes them (no ,W= size hint). Returns the bytes
    the messages take on disk."""
    top = os.path.join(home, "home", user)
    md = os.path.join(top, "Maildir")
    for d in (top, md, *(os.path.join(md, s) for s in ("cur", "new", "tmp"))):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700 if d != top else 0o755)
        if ids:
            os.chown(d, *ids)
    base = int(time.time()) - n - 10
    total = 0
    cur = os.path.join(md, "cur")
    for i in range(n):
        t = base + i
        name = f"{t}.M{i % 1000000}P{4242}Q{i + 1}.bench.test:2,"
        path = os.path.join(cur, name)
        data = message(size, user, i)
        total += len(data)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        if ids:
            os.fchown(fd, *ids)
        os.close(fd)
        os.utime(path, (t, t))
    return total


# ------------------------------------------------------------------------- checkpasswords

FAKE_C = r"""
/* A fake checkpassword for the POP3 benchmark: accepts the users "big" and "u1".."u8" with
   the password "bench", enters HOMES/USER and execs argv[1..]. Exit 1: refused, 2: misuse. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
	static char buf[513], home[4096];
	size_t len = 0;
	ssize_t n;
	if (argc < 2) return 2;
	while (len < 512 && (n = read(3, buf + len, 512 - len)) > 0) len += (size_t)n;
	close(3);
	size_t ul = strnlen(buf, len);
	if (ul == len) return 2;
	const char *user = buf, *pass = buf + ul + 1;
	if (strnlen(pass, len - ul - 1) == len - ul - 1) return 2;
	int ok = strcmp(user, "big") == 0 ||
		(user[0] == 'u' && user[1] >= '1' && user[1] <= '8' && user[2] == 0);
	if (!ok || strcmp(pass, "bench") != 0) return 1;
	if (strlen(HOMES) + 1 + ul >= sizeof home) return 111;
	strcpy(home, HOMES); strcat(home, "/"); strcat(home, user);
	if (chdir(home) != 0) return 111;
	setenv("USER", user, 1);
	setenv("HOME", home, 1);
	execv(argv[1], argv + 1);
	return 111;
}
"""

FAKE_PY = r"""#!/usr/bin/python3
# A fake checkpassword for the POP3 benchmark, like tests/e2e/login.rs's: accepts big and
# u1..u8 with the password "bench", enters the user's home and execs its arguments.
import os, sys
data = b""
while True:
    chunk = os.read(3, 1024)
    if not chunk:
        break
    data += chunk
os.close(3)
fields = data.split(b"\0")
users = [b"big"] + [b"u%d" % i for i in range(1, 9)]
if len(fields) < 2 or fields[0] not in users or fields[1] != b"bench":
    sys.exit(1)
user = fields[0].decode()
home = os.path.join(HOMES, user)
os.chdir(home)
os.environ["USER"] = user
os.environ["HOME"] = home
os.execv(sys.argv[1], sys.argv[1:])
"""


def make_checkpasswords(home):
    homes = os.path.join(home, "home")
    binc = os.path.join(home, "bin", "bench-checkpassword")
    src = os.path.join(home, "bench-checkpassword.c")
    with open(src, "w") as f:
        f.write(FAKE_C)
    cmd = ["cc", "-O2", "-static", f'-DHOMES="{homes}"', "-o", binc, src]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        cmd.remove("-static")  # no static libc installed: dynamic then
        subprocess.run(cmd, check=True)
    binpy = os.path.join(home, "bin", "bench-checkpassword.py")
    with open(binpy, "w") as f:
        f.write(FAKE_PY.replace("HOMES", repr(homes)))
    os.chmod(binc, 0o755)
    os.chmod(binpy, 0o755)
    return binc, binpy


# ------------------------------------------------------------------------- servers

class Rqmail:
    def __init__(self, home, checkpassword, as_owner, label):
        self.label = label
        self.logfile = os.path.join(home, f"pop3-{label}.log")
        cmd = [os.path.join(home, "bin", "rqmail-tcpserver"), "-1", "-R", "-H",
               "-l", "bench.test", "-x", os.path.join(home, "control", "tcp.pop3.cdb"),
               "-c", "100", "-b", "64", "127.0.0.1", "0",
               os.path.join(home, "bin", "rqmail-login"), "pop3", checkpassword,
               os.path.join(home, "bin", "rqmail-pop3d"), "Maildir"]
        log("pop3: " + " ".join(cmd))
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(cmd, cwd=home, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.logf,
                                     env={"PATH": "/usr/bin:/bin"}, **as_owner)
        port = self.proc.stdout.readline().strip()
        if not port.isdigit():
            stop(self.proc, "rqmail-tcpserver")
            raise SystemExit(f"pop3: rqmail-tcpserver printed no port; see {self.logfile}")
        self.proc.stdout.close()
        self.port = int(port)
        self.root = self.proc.pid

    def stop(self):
        stop(self.proc, f"rqmail-tcpserver ({self.label})")


DOVECOT_CONF = """# Dovecot for bench/pop3.sh: POP3 only, on loopback, private paths.
protocols = pop3
listen = 127.0.0.1
base_dir = {scratch}/run
state_dir = {scratch}/state
log_path = {scratch}/dovecot.log
info_log_path = {scratch}/dovecot.log
ssl = yes
ssl_cert = <{scratch}/cert.pem
ssl_key = <{scratch}/key.pem
{ssl_dh}
auth_mechanisms = plain
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
# rqmail-pop3d changes nothing for messages retrieved but not deleted; without this Dovecot
# would rename every retrieved file to add the S flag at QUIT (and change what rqmail sees).
pop3_no_flag_updates = yes
first_valid_uid = 1
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={homes}/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


class Dovecot:
    def __init__(self, binary, home, ids):
        self.label = "dovecot"
        scratch = os.path.join(home, "dovecot")
        os.makedirs(scratch, exist_ok=True)
        os.chmod(scratch, 0o755)
        # The certificate and key of control/servercert.pem, apart.
        pem = open(os.path.join(home, "control", "servercert.pem")).read()
        full = re.findall(r"(-----BEGIN ([A-Z ]+)-----.*?-----END \2-----\n?)", pem, re.S)
        cert = "".join(b for b, kind in full if "CERTIFICATE" in kind)
        key = "".join(b for b, kind in full if "PRIVATE KEY" in kind)
        if not cert or not key:
            raise SystemExit(f"pop3: no certificate and key in control/servercert.pem")
        with open(os.path.join(scratch, "cert.pem"), "w") as f:
            f.write(cert)
        fd = os.open(os.path.join(scratch, "key.pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, key.encode())
        os.close(fd)
        dh = "/usr/share/dovecot/dh.pem"
        self.port = free_port()
        conf = os.path.join(scratch, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(DOVECOT_CONF.format(
                scratch=scratch, ssl_dh=f"ssl_dh = <{dh}" if os.path.exists(dh) else "",
                password=PASSWORD, uid=ids[0], gid=ids[1], homes=os.path.join(home, "home"),
                port=self.port))
        self.logfile = os.path.join(scratch, "dovecot.log")
        cmd = [binary, "-F", "-c", conf]
        log("pop3: " + " ".join(cmd))
        self.out = open(os.path.join(scratch, "dovecot.out"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=self.out)
        wait_listening(self.port, self.proc, "dovecot", self.logfile)
        self.root = self.proc.pid
        v = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
        self.version = v.split()[0] if v else "?"

    def stop(self):
        stop(self.proc, "dovecot")


# ------------------------------------------------------------------------- clients

class Raw:
    """A minimal POP3 client for bulk RETR: poplib reads a message line by line in Python,
    which would make the client the bottleneck; this one reads large chunks."""

    def __init__(self, port, tls):
        self.buf = bytearray()
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s = s
        self.expect_ok(self.line())
        if tls:
            self.cmd(b"STLS")
            self.s = tls_context().wrap_socket(s)

    def fill(self):
        d = self.s.recv(1 << 18)
        if not d:
            raise ConnectionError("connection closed by the server")
        self.buf += d

    def line(self):
        while (i := self.buf.find(b"\r\n")) < 0:
            self.fill()
        out = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return out

    @staticmethod
    def expect_ok(line):
        if not line.startswith(b"+OK"):
            raise ConnectionError(f"server said {line[:200]!r}")
        return line

    def cmd(self, text):
        self.s.sendall(text + b"\r\n")
        return self.expect_ok(self.line())

    def multiline(self):
        """The body of a multi-line reply, up to its terminating dot line; its length."""
        if self.buf.startswith(b".\r\n"):
            del self.buf[:3]
            return 0
        start = 0
        while (i := self.buf.find(b"\r\n.\r\n", start)) < 0:
            start = max(0, len(self.buf) - 4)
            self.fill()
        del self.buf[:i + 5]
        return i + 2

    def login(self, user):
        self.cmd(b"USER " + user.encode())
        self.cmd(b"PASS " + PASSWORD.encode())

    def stat(self):
        f = self.cmd(b"STAT").split()
        return int(f[1]), int(f[2])


def retr_all(port, tls, user="big"):
    """One session: connect, [STLS,] login, STAT, RETR 1..n, QUIT."""
    c0 = os.times()
    t0 = time.monotonic()
    c = Raw(port, tls)
    c.login(user)
    n, octets = c.stat()
    t_stat = time.monotonic()
    got = 0
    for i in range(1, n + 1):
        c.s.sendall(b"RETR %d\r\n" % i)
        c.expect_ok(c.line())
        got += c.multiline()
    t_retr = time.monotonic()
    c.cmd(b"QUIT")
    c.s.close()
    c1 = os.times()
    return {"n": n, "octets": octets, "bytes": got, "startup_s": t_stat - t0,
            "retr_s": t_retr - t_stat, "client_cpu": (c1.user + c1.system) - (c0.user + c0.system)}


def one_session(port, tls, user):
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    if tls:
        p.stls(tls_context())
    p.user(user)
    p.pass_(PASSWORD)
    p.stat()
    p.quit()


def session_worker(port, tls, user, secs, start_at, out):
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + secs
    ok = err = 0
    lat = []
    last_err = None
    while time.time() < deadline:
        t0 = time.monotonic()
        try:
            one_session(port, tls, user)
            ok += 1
            lat.append(time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 - counted and reported
            err += 1
            last_err = f"{type(e).__name__}: {e}"
    out.put((ok, err, lat, last_err))


def session_rate(server, tls, clients, secs):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=session_worker,
                         args=(server.port, tls, SMALL_USERS[i % len(SMALL_USERS)], secs,
                               start_at, q)) for i in range(clients)]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.005)
    cpu0 = tree_cpu(server.root)
    c0 = os.times()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    time.sleep(0.3)  # the last sessions' processes are reaped
    cpu1 = tree_cpu(server.root)
    c1 = os.times()
    ok = sum(r[0] for r in results)
    lat = [x for r in results for x in r[2]]
    return {
        "ok": ok, "err": sum(r[1] for r in results),
        "last_err": next((r[3] for r in results if r[3]), None),
        "rate": ok / secs, "lat_ms": statistics.median(lat) * 1e3 if lat else None,
        "server_cpu": cpu1 - cpu0,
        "client_cpu": (c1.children_user + c1.children_system)
        - (c0.children_user + c0.children_system),
    }


def memory(server, tls, users):
    """Idle logged-in sessions (after STAT), one per user: RSS of the new processes and
    PSS growth of the server's tree, per session, and RSS by process name."""
    t = proc_table()
    before = set(tree(server.root, t))
    pss0 = sum(pss_kib(p) for p in before)
    clients = []
    for u in users:
        c = Raw(server.port, tls)
        c.login(u)
        c.stat()
        clients.append(c)
    time.sleep(1)
    t = proc_table()
    after = tree(server.root, t)
    new = [p for p in after if p not in before]
    pss1 = sum(pss_kib(p) for p in after)
    by_comm = {}
    for p in new:
        by_comm.setdefault(t[p][1], []).append((t[p][3] * PAGE // 1024, pss_kib(p)))
    k = len(users)
    out = {
        "sessions": k, "procs": len(new),
        "rss": sum(t[p][3] for p in new) * PAGE / 1024 / k,
        "pss_new": sum(pss_kib(p) for p in new) / k,
        "pss_growth": (pss1 - pss0) / k,
        "by_comm": {c: (len(v), statistics.median(x[0] for x in v),
                        statistics.median(x[1] for x in v)) for c, v in by_comm.items()},
    }
    for c in clients:
        try:
            c.cmd(b"QUIT")
        except OSError:
            pass
        c.s.close()
    time.sleep(0.3)
    return out


# ------------------------------------------------------------------------- main

def measure(server, tls_variants, clients, secs, mem_users, stats):
    log(f"pop3: {server.label}: warm-up, one session per user (cold start on big timed) ...")
    t0 = time.monotonic()
    c = Raw(server.port, True)
    c.login("big")
    c.stat()
    cold = time.monotonic() - t0
    c.cmd(b"QUIT")
    c.s.close()
    for u in SMALL_USERS:
        one_session(server.port, True, u)
    stats["cold_s"] = cold
    log(f"    first session on big: connect..STAT {cold:.2f} s")
    for tls in tls_variants:
        name = "stls" if tls else "plain"
        time.sleep(0.5)
        cpu0 = tree_cpu(server.root)
        r = retr_all(server.port, tls)
        time.sleep(0.3)
        r["server_cpu"] = tree_cpu(server.root) - cpu0
        stats[f"retr_{name}"] = r
        log(f"    RETR-all ({name}): {r['n']} messages, {r['bytes'] / 1e6:.1f} MB in"
            f" {r['retr_s']:.2f} s ({r['bytes'] / 1e6 / r['retr_s']:.1f} MB/s); connect..STAT"
            f" {r['startup_s']:.3f} s; server CPU {r['server_cpu']:.2f} s, client CPU"
            f" {r['client_cpu']:.2f} s")
    for tls in tls_variants:
        name = "stls" if tls else "plain"
        for k in clients:
            time.sleep(0.5)
            s = session_rate(server, tls, k, secs)
            stats[f"sess_{name}_{k}"] = s
            log(f"    sessions ({name}, {k} clients): {s['rate']:.1f}/s, median"
                f" {s['lat_ms']:.1f} ms, errors {s['err']}"
                f"{' (' + s['last_err'] + ')' if s['last_err'] else ''}; server CPU"
                f" {s['server_cpu'] * 1e3 / max(s['ok'], 1):.2f} ms/session, client"
                f" {s['client_cpu'] * 1e3 / max(s['ok'], 1):.2f} ms/session")
    if mem_users:
        stats["mem"] = memory(server, True, mem_users)
        m = stats["mem"]
        log(f"    memory: {m['sessions']} idle sessions: RSS {m['rss']:.0f} KiB/session,"
            f" PSS growth {m['pss_growth']:.0f} KiB/session; {m['by_comm']}")
        stats["mem_big"] = memory(server, True, ["big"])


def main():
    home = os.path.abspath(sys.argv[1])
    messages = env_num("MESSAGES", "10000")
    size = env_num("SIZE", "4096")
    session_msgs = env_num("SESSION_MSGS", "100")
    clients = env_list("CLIENTS", "1,8")
    secs = env_num("SESSION_SECS", "8", float)
    mem_n = env_num("MEM_SESSIONS", "8")
    dovecot_bin = os.environ.get("DOVECOT", "/usr/sbin/dovecot")

    st = os.stat(home)
    if os.getuid() == 0:
        ids = (st.st_uid, st.st_gid)
        as_owner = {"user": st.st_uid, "group": st.st_gid, "extra_groups": []}
    else:
        ids, as_owner = None, {}
    uid, gid = (ids if ids else (os.getuid(), os.getgid()))

    log(f"pop3: making the Maildirs: big ({messages} x {size} bytes), u1..u8"
        f" ({session_msgs} each) ...")
    t0 = time.monotonic()
    big_bytes = make_maildir(home, "big", messages, size, ids)
    for u in SMALL_USERS:
        make_maildir(home, u, session_msgs, size, ids)
    os.sync()
    log(f"    {time.monotonic() - t0:.1f} s, big holds {big_bytes / 1e6:.1f} MB")
    binc, binpy = make_checkpasswords(home)
    mem_users = SMALL_USERS[:max(0, min(mem_n, len(SMALL_USERS)))]

    results = []
    # rqmail with the C checkpassword: everything; with the Python one: the session rates.
    for label, cp, variants, with_mem in (("rqmail", binc, (True, False), True),
                                         ("rqmail+pycheckpw", binpy, (True,), False)):
        server = Rqmail(home, cp, as_owner, label)
        stats = {"label": label}
        try:
            wait_listening(server.port, server.proc, label, server.logfile)
            measure(server, variants, clients, secs, mem_users if with_mem else [], stats)
        finally:
            server.stop()
        results.append(stats)

    dovecot_note = None
    if os.path.exists(dovecot_bin) and os.getuid() == 0:
        server = Dovecot(dovecot_bin, home, (uid, gid))
        stats = {"label": f"dovecot {server.version}"}
        try:
            measure(server, (True, False), clients, secs, mem_users, stats)
        finally:
            server.stop()
        results.append(stats)
    elif not os.path.exists(dovecot_bin):
        dovecot_note = f"Dovecot not measured: {dovecot_bin} not found (apt-get install dovecot-pop3d)"
    else:
        dovecot_note = "Dovecot not measured: its master must start as root"

    # ---------------------------------------------------------------- the report
    f = lambda v, w, p: f"{v:>{w}.{p}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
    print()
    print(f"POP3 on loopback: RETR-all = one session retrieving all {messages} messages of a"
          f" Maildir ({big_bytes / 1e6:.1f} MB on disk, {size} bytes each, LF) after STLS;"
          f" start-up = connect, STLS, USER, PASS, STAT on that Maildir; sessions/s = connect,"
          f" CAPA, STLS, USER, PASS, STAT, QUIT (poplib) on {session_msgs}-message Maildirs,"
          f" each client its own user, for {secs:.0f} s; memory = {len(mem_users)} idle sessions"
          f" after STAT (STLS): RSS of the new processes and growth of the server tree's PSS,"
          f" per session. rqmail: rqmail-tcpserver + rqmail-login + a static C fake"
          f" checkpassword + rqmail-pop3d; +pycheckpw: the same with a Python fake"
          f" checkpassword. Dovecot: static passdb/userdb, same certificate, same Maildirs.")
    print()
    cols = "".join(f" {'sess/s ' + str(k):>10}" for k in clients)
    hdr = (f"{'server':<18} {'RETR-all s':>10} {'MB/s':>6} {'start-up s':>10} {'cold s':>7}"
           f"{cols} {'ms CPU/sess':>11} {'RSS KiB':>8} {'PSS KiB':>8}")
    print(hdr)
    print("-" * len(hdr))
    for s in results:
        r = s.get("retr_stls")
        mb = r["bytes"] / 1e6 / r["retr_s"] if r else None
        rates = "".join(f" {f(s.get(f'sess_stls_{k}', {}).get('rate'), 10, 1)}" for k in clients)
        last = s.get(f"sess_stls_{clients[-1]}")
        cpu = last["server_cpu"] * 1e3 / last["ok"] if last and last["ok"] else None
        m = s.get("mem")
        print(f"{s['label']:<18} {f(r['retr_s'] if r else None, 10, 2)} {f(mb, 6, 1)}"
              f" {f(r['startup_s'] if r else None, 10, 3)} {f(s.get('cold_s'), 7, 2)}{rates}"
              f" {f(cpu, 11, 2)} {f(m['rss'] if m else None, 8, 0)}"
              f" {f(m['pss_growth'] if m else None, 8, 0)}")
    print()
    print("without TLS (USER/PASS in the clear; loopback has POP3_PLAINTEXT for rqmail,"
          " disable_plaintext_auth = no for Dovecot):")
    hdr2 = f"{'server':<18} {'RETR-all s':>10} {'MB/s':>6} {'start-up s':>10}{cols} {'ms CPU/sess':>11}"
    print(hdr2)
    print("-" * len(hdr2))
    for s in results:
        r = s.get("retr_plain")
        if not r and not s.get(f"sess_plain_{clients[0]}"):
            continue
        mb = r["bytes"] / 1e6 / r["retr_s"] if r else None
        rates = "".join(f" {f(s.get(f'sess_plain_{k}', {}).get('rate'), 10, 1)}" for k in clients)
        last = s.get(f"sess_plain_{clients[-1]}")
        cpu = last["server_cpu"] * 1e3 / last["ok"] if last and last["ok"] else None
        print(f"{s['label']:<18} {f(r['retr_s'] if r else None, 10, 2)} {f(mb, 6, 1)}"
              f" {f(r['startup_s'] if r else None, 10, 3)}{rates} {f(cpu, 11, 2)}")
    if dovecot_note:
        print()
        print(dovecot_note)
    print()
    print("details:")
    for s in results:
        for key in sorted(k for k in s if k.startswith(("retr_", "sess_"))):
            v = s[key]
            if key.startswith("retr_"):
                print(f"  {s['label']} {key}: {v['n']} messages, STAT said {v['octets']} octets,"
                      f" received {v['bytes']} bytes; server CPU {v['server_cpu']:.2f} s,"
                      f" client CPU {v['client_cpu']:.2f} s")
            else:
                print(f"  {s['label']} {key}: {v['ok']} sessions, {v['err']} errors"
                      f"{' (' + v['last_err'] + ')' if v['last_err'] else ''}, median"
                      f" {f(v['lat_ms'], 0, 1)} ms; CPU ms/session: server"
                      f" {v['server_cpu'] * 1e3 / max(v['ok'], 1):.2f}, client"
                      f" {v['client_cpu'] * 1e3 / max(v['ok'], 1):.2f}")
        for key in ("mem", "mem_big"):
            m = s.get(key)
            if m:
                comm = ", ".join(f"{c} x{n} RSS {r} PSS {p}" for c, (n, r, p)
                                 in sorted(m["by_comm"].items()))
                print(f"  {s['label']} {key} ({m['sessions']} sessions, {m['procs']} new"
                      f" processes): RSS {m['rss']:.0f} KiB/session, PSS of the new processes"
                      f" {m['pss_new']:.0f}, PSS growth of the tree {m['pss_growth']:.0f}"
                      f" KiB/session; per process (KiB, medians): {comm}")


if __name__ == "__main__":
    main()
