#!/usr/bin/env python3
"""Crash soak: N messages over SMTP into a quick-start instance while a random rqmail
process (smtpd, queue, send, lspawn and its children, clean, rspawn, tcpserver, start) is
killed with SIGKILL every KILL_MS milliseconds on average; a supervisor loop restarts
rqmail-start and rqmail-tcpserver as daemontools would. Then the killing stops, the queue
gets DRAIN seconds, and it prints how many messages got their 250 (accepted), how many of
those never arrived and are not queued either (lost: must be 0), how many are still queued
(late), how many arrived more than once (duplicated), and how long the last accepted one
took to arrive after the killing stopped.

Run by bench/crash-soak.sh, which builds the instance with install/quickstart.sh.
Environment: DIR (the instance), PORT, N, KILL_MS, DRAIN, CLIENTS, SEED, RUN_AS (uid:gid
to run the instance as, when root).
"""
import os
import random
import signal
import smtplib
import subprocess
import sys
import threading
import time

DIR = os.environ["DIR"]
PORT = int(os.environ.get("PORT", "12025"))
N = int(os.environ.get("N", "2000"))
KILL_MS = float(os.environ.get("KILL_MS", "50"))
DRAIN = float(os.environ.get("DRAIN", "120"))
CLIENTS = int(os.environ.get("CLIENTS", "4"))
RUN_AS = os.environ.get("RUN_AS", "")
random.seed(int(os.environ.get("SEED", "1")))

BIN = os.path.join(DIR, "bin")
DOMAIN = open(os.path.join(DIR, "control", "me")).read().split()[0]
USER = "test"
MAILDIR = os.path.join(DIR, "vmail", DOMAIN, USER, "Maildir")


def as_instance(cmd):
    if RUN_AS:
        uid, gid = RUN_AS.split(":")
        return ["setpriv", "--reuid=" + uid, "--regid=" + gid, "--clear-groups", "--"] + cmd
    return cmd


ENV = {"PATH": "/usr/bin:/bin"}
LOG = open(os.path.join(DIR, "crash-soak.log"), "ab")
SERVICES = {
    "rqmail-start": [os.path.join(BIN, "rqmail-start")],
    "rqmail-tcpserver": [
        os.path.join(BIN, "rqmail-tcpserver"), "-q", "-R", "-H", "-l", DOMAIN,
        "-x", os.path.join(DIR, "control", "tcp.smtp.cdb"), "-c", "40",
        "127.0.0.1", str(PORT), os.path.join(BIN, "rqmail-smtpd"), DOMAIN,
    ],
}
running = {}
restarts = {name: 0 for name in SERVICES}
stop = threading.Event()


def supervise():
    """Starts each service again when it has exited, as supervise(8) does, once a second
    at most per service."""
    last = {}
    while not stop.is_set():
        for name, cmd in SERVICES.items():
            proc = running.get(name)
            if proc is not None and proc.poll() is None:
                continue
            if time.time() - last.get(name, 0) < 1:
                continue
            if proc is not None:
                restarts[name] += 1
            last[name] = time.time()
            running[name] = subprocess.Popen(
                as_instance(cmd), cwd=DIR, env=ENV, stdin=subprocess.DEVNULL,
                stdout=LOG, stderr=LOG)
        time.sleep(0.05)


def instance_pids():
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % entry)
        except OSError:
            continue
        if exe.startswith(BIN + "/"):
            pids.append((int(entry), os.path.basename(exe)))
    return pids


kills = {}


def killer():
    while not stop.is_set():
        time.sleep(random.expovariate(1000.0 / KILL_MS))
        pids = instance_pids()
        if not pids:
            continue
        pid, name = random.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
            kills[name] = kills.get(name, 0) + 1
        except OSError:
            pass


accepted = set()
refused = [0]
lock = threading.Lock()
next_seq = [0]


def client():
    while True:
        with lock:
            seq = next_seq[0]
            if seq >= N:
                return
            next_seq[0] += 1
        message = ("Subject: crash soak\r\nX-Seq: %d\r\n\r\nmessage %d\r\nend of message\r\n"
                   % (seq, seq)).encode()
        # As a sending MTA would, try again until a 250 (a server being restarted refuses
        # connections for a moment); a try cut off after DATA may still have queued it.
        for attempt in range(100):
            try:
                s = smtplib.SMTP("127.0.0.1", PORT, timeout=20)
                s.sendmail("someone@" + DOMAIN, [USER + "@" + DOMAIN], message)
                try:
                    s.quit()
                except (OSError, smtplib.SMTPException):
                    pass
                with lock:
                    accepted.add(seq)
                break
            except (OSError, smtplib.SMTPException):
                with lock:
                    refused[0] += 1
                time.sleep(0.05)


def seqs_in(paths):
    seen = {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        for line in data.split(b"\n"):
            if line.startswith(b"X-Seq: "):
                seq = int(line[7:].strip())
                seen[seq] = seen.get(seq, 0) + 1
                break
    return seen


def delivered():
    paths = []
    for sub in ("new", "cur"):
        d = os.path.join(MAILDIR, sub)
        paths += [os.path.join(d, f) for f in os.listdir(d)]
    return seqs_in(paths)


def queued():
    paths = []
    mess = os.path.join(DIR, "queue", "mess")
    for split in os.listdir(mess):
        d = os.path.join(mess, split)
        paths += [os.path.join(d, f) for f in os.listdir(d)]
    return set(seqs_in(paths))


def main():
    sup = threading.Thread(target=supervise, daemon=True)
    sup.start()
    time.sleep(2)
    kill = threading.Thread(target=killer, daemon=True)
    kill.start()
    started = time.time()
    clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    sending = time.time() - started
    stop.set()
    kill.join()
    sup.join()
    # The killing is over: the supervisor's last round runs once more, then the drain.
    stop.clear()
    sup = threading.Thread(target=supervise, daemon=True)
    sup.start()
    calm = time.time()
    arrived_at = None
    while time.time() - calm < DRAIN:
        got = delivered()
        if accepted <= set(got):
            arrived_at = time.time() - calm
            break
        time.sleep(0.5)
    got = delivered()
    in_queue = queued()
    missing = accepted - set(got)
    late = missing & in_queue
    lost = missing - in_queue
    duplicated = sum(c - 1 for s, c in got.items() if c > 1)
    stop.set()
    sup.join()
    for proc in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in running.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print("messages sent:        %d in %.1f s (%d clients)" % (N, sending, CLIENTS))
    print("kills:                %d (%s), every %.0f ms on average"
          % (sum(kills.values()), ", ".join("%s %d" % kv for kv in sorted(kills.items())),
             KILL_MS))
    print("supervisor restarts:  %s" % ", ".join("%s %d" % kv for kv in sorted(restarts.items())))
    print("accepted (250):       %d of %d (tries refused or cut off: %d)"
          % (len(accepted), N, refused[0]))
    print("lost:                 %d" % len(lost))
    print("late (queued after %.0f s): %d" % (DRAIN, len(late)))
    print("duplicated:           %d" % duplicated)
    if arrived_at is not None:
        print("all accepted arrived  %.1f s after the killing stopped" % arrived_at)
    else:
        print("not all accepted arrived within %.0f s" % DRAIN)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
