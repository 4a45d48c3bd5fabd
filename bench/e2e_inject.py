#!/usr/bin/env python3
"""End-to-end injection benchmark for one rqmail instance (run by bench/e2e-inject.sh).

    e2e_inject.py INSTANCE_DIR BENCH_TOOLS_DIR

INSTANCE_DIR is an instance made by install/quickstart.sh --setup-only (not running); this
program starts it, runs every (size, parallelism) case, stops it, then measures the disk with
BENCH_TOOLS_DIR/fsync-limit/run.sh and prints the comparison. It must run as the instance's
user (the wrapper takes care of that when started as root).

Environment: N (messages per case, 2000), PARALLEL (1,8,32), SIZES (4096), FSYNC_RUNS (5),
FSYNC_SECS (3), FSYNC_CHURN (fsync-limit's -c DEPTH, off by default), DISK_FIRST (0: measure
the disk after rqmail, 1: before), SETTLE (seconds of quiet before each measurement, 2),
TIMEOUT (seconds without progress before giving up, 60).
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_list(name, default):
    return [int(x) for x in re.split(r"[,\s]+", os.environ.get(name, default).strip()) if x]


def env_num(name, default, kind=int):
    return kind(os.environ.get(name, default))


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def settings(home):
    out = {}
    with open(os.path.join(home, "quickstart.settings")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v
    return out


# ------------------------------------------------------------------------- process CPU

def proc_stat(pid):
    """(comm, ppid, own CPU ticks, reaped children's CPU ticks) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text[text.rindex(")") + 2:].split()
    # fields 3.. of proc(5): state ppid ... utime(14) stime(15) cutime(16) cstime(17)
    return comm, int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[1] == pid:
                out.append(int(name))
    return sorted(out)


def instance_cpu(pids):
    """Seconds of CPU per long-running process, its own plus its reaped children's."""
    out = {}
    for pid in pids:
        st = proc_stat(pid)
        if st:
            out[f"{st[0]}[{pid}]"] = (st[2] + st[3]) / CLK_TCK
    return out


# ------------------------------------------------------------------------- files

def count(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


def queue_count(queue, d):
    return sum(count(os.path.join(queue, d, s)) for s in os.listdir(os.path.join(queue, d)))


def empty_dir(path):
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))


def message(size, rcpt, seq):
    head = f"To: {rcpt}\nSubject: bench message {seq}\n\n".encode()
    line = (b"abcdefghijklmnopqrstuvwxyz" * 3)[:75] + b"\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


# ------------------------------------------------------------------------- one case

class Sampler(threading.Thread):
    """Every 50 ms: the todo backlog (max kept) and the number of delivered messages."""

    def __init__(self, todo, new):
        super().__init__(daemon=True)
        self.todo, self.new = todo, new
        self.max_todo = 0
        self.delivered = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.max_todo = max(self.max_todo, count(self.todo))
            self.delivered = count(self.new)
            self.samples += 1
            self.stop.wait(0.05)


def run_case(home, pids, n, parallel, size, rcpt, timeout):
    inject = os.path.join(home, "bin", "rqmail-inject")
    queue = os.path.join(home, "queue")
    maildir = os.path.join(home, "home", rcpt.split("@")[0], "Maildir")
    new = os.path.join(maildir, "new")
    for sub in ("new", "cur", "tmp"):
        empty_dir(os.path.join(maildir, sub))
    os.sync()
    time.sleep(env_num("SETTLE", "2", float))

    msgs = [message(size, rcpt, i) for i in range(n)]
    next_index = iter(range(n))
    lock = threading.Lock()
    failures = []

    def worker():
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            p = subprocess.Popen([inject, rcpt], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, cwd=home)
            _, err = p.communicate(msgs[i])
            if p.returncode != 0:
                with lock:
                    failures.append((p.returncode, err.decode(errors="replace").strip()))

    cpu0 = instance_cpu(pids)
    me0 = os.times()
    sampler = Sampler(os.path.join(queue, "todo"), new)
    sampler.start()
    t0 = time.time_ns()
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_injected = time.time_ns()
    expected = n - len(failures)
    last, last_change = -1, time.monotonic()
    while True:
        got = count(new)
        if got >= expected:
            break
        if got != last:
            last, last_change = got, time.monotonic()
        elif time.monotonic() - last_change > timeout:
            sampler.stop.set()
            raise SystemExit(f"e2e-inject: only {got} of {expected} messages delivered after "
                             f"{timeout} s without progress; see {home}/send.log")
        time.sleep(0.01)
    # The moment the last message appeared: its link into new/ (and the unlink from tmp/)
    # set the file's ctime.
    t_delivered = max(os.stat(os.path.join(new, f)).st_ctime_ns for f in os.listdir(new))
    # Let the queue drain (clean removes the files) so its work is in the CPU figure.
    drain_deadline = time.monotonic() + timeout
    while (queue_count(queue, "mess") or count(os.path.join(queue, "todo"))) \
            and time.monotonic() < drain_deadline:
        time.sleep(0.02)
    sampler.stop.set()
    sampler.join()
    me1 = os.times()
    cpu1 = instance_cpu(pids)
    per_proc = {k: cpu1[k] - cpu0.get(k, 0) for k in cpu1}
    return {
        "n": n, "parallel": parallel, "size": size, "failures": failures,
        "inject_s": (t_injected - t0) / 1e9,
        "deliver_s": (max(t_delivered, t0) - t0) / 1e9,
        "delivered": count(new),
        "instance_cpu": sum(per_proc.values()),
        "per_proc": per_proc,
        "inject_cpu": (me1.children_user + me1.children_system)
        - (me0.children_user + me0.children_system),
        "driver_cpu": (me1.user + me1.system) - (me0.user + me0.system),
        "max_todo": sampler.max_todo,
        "samples": sampler.samples,
        "left_in_queue": queue_count(queue, "mess"),
    }


# ------------------------------------------------------------------------- the disk

def disk_limits(tools, workdir, parallel, size):
    """{P: (qmail-queue files/s, maildir files/s)}, medians from fsync-limit."""
    runs = env_num("FSYNC_RUNS", "5")
    secs = env_num("FSYNC_SECS", "3", float)
    cmd = [os.path.join(tools, "fsync-limit", "run.sh"), "-d", workdir, "-r", str(runs),
           "-t", str(secs), "-s", str(size), "-j", ",".join(map(str, parallel)),
           "qmail-queue", "maildir"]
    churn = os.environ.get("FSYNC_CHURN", "")
    if churn:
        cmd[1:1] = ["-c", churn]
    log("e2e-inject: disk reference:", " ".join(cmd))
    env = dict(os.environ, TMPDIR=workdir)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    res = {}
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] != "RESULT":
            log("   ", line)
        if f[0] == "RESULT":
            res.setdefault(int(f[2]), {})[f[1]] = float(f[3])
    return {p: (v["qmail-queue"], v["maildir"]) for p, v in res.items()}


# ------------------------------------------------------------------------- main

def main():
    home, tools = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    n = env_num("N", "2000")
    parallel = env_list("PARALLEL", "1,8,32")
    sizes = env_list("SIZES", "4096")
    timeout = env_num("TIMEOUT", "60", float)
    disk_first = os.environ.get("DISK_FIRST", "0") == "1"
    st = settings(home)
    rcpt = f"{st['user']}@{st['domain']}"
    scratch = os.path.join(home, "disk")
    os.makedirs(scratch, exist_ok=True)

    disk = {}
    if disk_first:
        for size in sizes:
            disk[size] = disk_limits(tools, scratch, parallel, size)

    logf = open(os.path.join(home, "send.log"), "ab")
    start = subprocess.Popen([os.path.join(home, "bin", "rqmail-start")], cwd=home,
                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    deadline = time.monotonic() + 10
    while b"status: local" not in open(os.path.join(home, "send.log"), "rb").read():
        if start.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"e2e-inject: rqmail-start did not come up; see {home}/send.log")
        time.sleep(0.05)
    pids = [start.pid] + children(start.pid)
    log("e2e-inject: instance processes:",
        ", ".join(f"{proc_stat(p)[0]}[{p}]" for p in pids))

    results = []
    try:
        for size in sizes:
            for p in parallel:
                log(f"e2e-inject: {n} messages of {size} bytes, {p} parallel injectors ...")
                r = run_case(home, pids, n, p, size, rcpt, timeout)
                results.append(r)
                log(f"    injected in {r['inject_s']:.2f} s, delivered in {r['deliver_s']:.2f} s"
                    f" ({n / r['deliver_s']:.0f} msg/s), max todo {r['max_todo']},"
                    f" failures {len(r['failures'])}")
                for code, err in r["failures"][:5]:
                    log(f"    injection failed with {code}: {err}")
    finally:
        start.send_signal(signal.SIGTERM)
        try:
            start.wait(30)
        except subprocess.TimeoutExpired:
            start.kill()
            start.wait()

    if not disk_first:
        for size in sizes:
            disk[size] = disk_limits(tools, scratch, parallel, size)

    print()
    print(f"rqmail end to end: rqmail-inject x P in parallel -> Maildir, {n} messages per row")
    churn = os.environ.get("FSYNC_CHURN", "")
    print(f"disk limit: 1/(1/qmail-queue + 1/maildir) from fsync-limit at the same P, in the"
          f" same run, {'before' if disk_first else 'after'} rqmail"
          f"{', with churn -c ' + churn if churn else ''}; CPU: rqmail-send+lspawn+clean+rspawn and their children (instance),"
          f" rqmail-inject+rqmail-queue (inject)")
    print()
    hdr = (f"{'size':>6} {'P':>3} {'injected/s':>10} {'delivered/s':>11} {'disk limit/s':>12}"
           f" {'ratio':>6} {'CPU ms/msg':>10} {'inject ms/msg':>13} {'max todo':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        q, m = disk[r["size"]][r["parallel"]]
        limit = 1 / (1 / q + 1 / m)
        rate = r["n"] / r["deliver_s"]
        print(f"{r['size']:>6} {r['parallel']:>3} {r['n'] / r['inject_s']:>10.0f} {rate:>11.0f}"
              f" {limit:>12.0f} {rate / limit:>6.2f} {r['instance_cpu'] * 1e3 / r['n']:>10.2f}"
              f" {r['inject_cpu'] * 1e3 / r['n']:>13.2f} {r['max_todo']:>8}")
    print()
    print("details:")
    for r in results:
        q, m = disk[r["size"]][r["parallel"]]
        procs = ", ".join(f"{k} {v * 1e3 / r['n']:.2f}" for k, v in r["per_proc"].items())
        print(f"  size {r['size']} P {r['parallel']}: disk qmail-queue {q:.0f}/s maildir {m:.0f}/s;"
              f" CPU ms/msg: {procs}; driver {r['driver_cpu'] * 1e3 / r['n']:.2f};"
              f" failures {len(r['failures'])}; todo samples {r['samples']};"
              f" left in queue {r['left_in_queue']}")


if __name__ == "__main__":
    main()
