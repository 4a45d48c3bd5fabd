#!/usr/bin/env python3
"""Remote delivery benchmark for one rqmail instance (run by bench/remote-sink.sh).

    remote_sink.py INSTANCE_DIR

INSTANCE_DIR is an instance made by install/quickstart.sh --setup-only (not running). This
program starts Postfix's smtp-sink on a loopback port, routes every remote domain there
(control/smtproutes `:127.0.0.1:PORT`), and for each concurrency C:
  1. measures smtp-source -s C -m N -l SIZE against the sink (protocol-only ceiling);
  2. with rqmail stopped, writes control/concurrencyremote C and fills the queue with N
     messages (rqmail-queue directly, INJECTORS in parallel, one remote recipient each);
  3. starts rqmail-start and times from its start to the queue being empty, reading the
     sink's counters (-c) for what it received; then takes the CPU time of the instance
     (rqmail-send, lspawn, rspawn, clean, and their reaped children: every rqmail-remote)
     from /proc/PID/stat and stops it.
Started as root, smtp-sink runs with -u nobody and the instance as the owner of
INSTANCE_DIR; otherwise everything runs as the caller.

Environment: N (2000), CONCURRENCY (1,20,100), SIZE (4096), INJECTORS (8), SMTP_SINK,
SMTP_SOURCE, SINK_PORT (0: a free port), SETTLE (2), TIMEOUT (120).
"""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
FROM = "bench@bench.test"
RCPT = "user@sink.test"


def env_list(name, default):
    return [int(x) for x in re.split(r"[,\s]+", os.environ.get(name, default).strip()) if x]


def env_num(name, default, kind=int):
    return kind(os.environ.get(name, default))


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- processes

def proc_stat(pid):
    """(comm, ppid, own CPU ticks, reaped children's CPU ticks) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text[text.rindex(")") + 2:].split()
    return comm, int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def descendants(root):
    """root and every process below it."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                parent[int(name)] = st[1]
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def cpu_of(pids):
    """{comm[pid]: seconds}, own plus reaped children's CPU of each process."""
    out = {}
    for pid in pids:
        st = proc_stat(pid)
        if st:
            out[f"{st[0]}[{pid}]"] = (st[2] + st[3]) / CLK_TCK
    return out


def machine_ticks():
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    return sum(vals[:8]) - vals[3] - vals[4]


def stop(proc, name):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        log(f"remote-sink: {name} did not stop on TERM; killing it")
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------- the sink

class Sink:
    """smtp-sink -c on 127.0.0.1:port; its counters ("sess=N quit=N mesg=N", one record
    per event, separated by CR) go to a file."""

    def __init__(self, home, port, owner):
        self.out_path = os.path.join(home, "sink.out")
        self.out = open(self.out_path, "wb")
        cmd = [os.environ["SMTP_SINK"], "-c"]
        if os.getuid() == 0:
            cmd += ["-u", owner]
        cmd += [f"127.0.0.1:{port}", "256"]
        log("remote-sink: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT)
        self.port = port
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"remote-sink: smtp-sink did not come up; see {self.out_path}")
                time.sleep(0.05)
        time.sleep(0.2)  # the probe connection's session end is counted

    def counts(self):
        """(sessions, messages) so far, from the last complete record."""
        with open(self.out_path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 400))
            tail = f.read()
        for rec in reversed(re.split(rb"[\r\n]", tail)):
            m = re.fullmatch(rb"sess=(\d+) quit=(\d+) mesg=(\d+)", rec.strip())
            if m:
                return int(m.group(1)), int(m.group(3))
        return 0, 0

    def cpu(self):
        st = proc_stat(self.proc.pid)
        return (st[2] + st[3]) / CLK_TCK if st else 0.0


# ------------------------------------------------------------------------- the queue

def count(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


def queue_count(queue, d):
    return sum(count(os.path.join(queue, d, s)) for s in os.listdir(os.path.join(queue, d)))


def queue_size(queue):
    return queue_count(queue, "mess") + count(os.path.join(queue, "todo"))


def message(size, seq):
    head = (f"From: {FROM}\nTo: {RCPT}\nSubject: bench message {seq}\n"
            f"Message-ID: <{seq}.{time.time_ns()}@bench.test>\n\n").encode()
    line = (b"abcdefghijklmnopqrstuvwxyz" * 3)[:75] + b"\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


def fill_queue(home, n, size, injectors, as_owner):
    """n messages into the queue through rqmail-queue (message on fd 0, envelope on fd 1),
    injectors at a time; returns the seconds it took."""
    queue_bin = os.path.join(home, "bin", "rqmail-queue")
    envelope = f"F{FROM}\0T{RCPT}\0\0".encode()
    msgs = [message(size, i) for i in range(n)]
    it = iter(range(n))
    lock = threading.Lock()
    failures = []

    def worker():
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            r, w = os.pipe()
            os.write(w, envelope)
            os.close(w)
            p = subprocess.Popen([queue_bin], stdin=subprocess.PIPE, stdout=r,
                                 stderr=subprocess.PIPE, cwd=home, **as_owner)
            os.close(r)
            _, err = p.communicate(msgs[i])
            if p.returncode != 0:
                with lock:
                    failures.append((p.returncode, err.decode(errors="replace").strip()))

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(injectors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"remote-sink: {len(failures)} rqmail-queue runs failed, e.g. "
                         f"{failures[0]}")
    return time.monotonic() - t0


# ------------------------------------------------------------------------- the cases

def write_control(home, name, text, owner_ids):
    path = os.path.join(home, "control", name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.chmod(path + ".tmp", 0o644)
    if owner_ids:
        os.chown(path + ".tmp", *owner_ids)
    os.rename(path + ".tmp", path)


def smtp_source_case(sink, conc, n, size):
    """smtp-source -s conc -m n -l size against the sink: msg/s and CPU per message."""
    ses0, msg0 = sink.counts()
    sink_cpu0 = sink.cpu()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m0 = machine_ticks()
    cmd = [os.environ["SMTP_SOURCE"], "-s", str(conc), "-m", str(n), "-l", str(size),
           "-f", FROM, "-t", RCPT, f"inet:127.0.0.1:{sink.port}"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m1 = machine_ticks()
    if p.returncode != 0:
        raise SystemExit(f"remote-sink: smtp-source failed ({p.returncode}): {p.stderr[-500:]}")
    time.sleep(0.3)
    ses1, msg1 = sink.counts()
    return {
        "rate": n / elapsed, "secs": elapsed, "received": msg1 - msg0, "sessions": ses1 - ses0,
        "gen_cpu": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        "sink_cpu": sink.cpu() - sink_cpu0, "machine_cpu": (m1 - m0) / CLK_TCK,
    }


def rqmail_case(home, sink, conc, n, size, injectors, as_owner, owner_ids, timeout):
    queue = os.path.join(home, "queue")
    if queue_size(queue):
        raise SystemExit(f"remote-sink: the queue is not empty before the case ({queue})")
    write_control(home, "concurrencyremote", f"{conc}\n", owner_ids)
    fill_s = fill_queue(home, n, size, injectors, as_owner)
    queued = count(os.path.join(queue, "todo"))
    os.sync()
    time.sleep(env_num("SETTLE", "2", float))

    ses0, msg0 = sink.counts()
    sink_cpu0 = sink.cpu()
    log_path = os.path.join(home, "send.log")
    log_start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    logf = open(log_path, "ab")
    m0 = machine_ticks()
    t0 = time.monotonic()
    start = subprocess.Popen([os.path.join(home, "bin", "rqmail-start")], cwd=home,
                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, **as_owner)
    t_first = t_all = None
    last_progress, last_state = time.monotonic(), None
    try:
        while True:
            now = time.monotonic()
            _, got = sink.counts()
            got -= msg0
            if got >= 1 and t_first is None:
                t_first = now
            if got >= n and t_all is None:
                t_all = now
            left = queue_size(queue)
            if left == 0:
                t_drained = now
                break
            if (got, left) != last_state:
                last_state, last_progress = (got, left), now
            elif now - last_progress > timeout:
                raise SystemExit(f"remote-sink: no progress for {timeout} s ({got} received,"
                                 f" {left} left in the queue); see {log_path}")
            if start.poll() is not None:
                raise SystemExit(f"remote-sink: rqmail-start exited; see {log_path}")
            time.sleep(0.01)
        # Everything is out of the queue: the instance's CPU, before stopping it (stopping
        # reaps lspawn, rspawn and clean into rqmail-send's cutime, which would count twice).
        pids = descendants(start.pid)
        per_proc = cpu_of(pids)
        m1 = machine_ticks()
    finally:
        stop(start, "rqmail-start")
        logf.close()
    if t_all is None:
        deadline = time.monotonic() + 2
        while sink.counts()[1] - msg0 < n and time.monotonic() < deadline:
            time.sleep(0.05)
    ses1, msg1 = sink.counts()
    with open(log_path, "rb") as f:
        f.seek(log_start)
        text = f.read().decode(errors="replace")
    outcomes = {k: len(re.findall(rf"^delivery \d+: {k}:", text, re.M))
                for k in ("success", "deferral", "failure")}
    first_fail = re.search(r"^delivery \d+: (deferral|failure): .*$", text, re.M)
    return {
        "conc": conc, "fill_s": fill_s, "queued": queued,
        "secs": t_drained - t0, "rate": n / (t_drained - t0),
        "sink_rate": n / (t_all - t0) if t_all else None,
        "first_s": (t_first - t0) if t_first else None,
        "received": msg1 - msg0, "sessions": ses1 - ses0,
        "per_proc": per_proc, "cpu": sum(per_proc.values()),
        "sink_cpu": sink.cpu() - sink_cpu0, "machine_cpu": (m1 - m0) / CLK_TCK,
        "outcomes": outcomes, "first_fail": first_fail.group(0) if first_fail else None,
    }


# ------------------------------------------------------------------------- main

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    home = os.path.abspath(sys.argv[1])
    n = env_num("N", "2000")
    size = env_num("SIZE", "4096")
    conc = env_list("CONCURRENCY", "1,20,100")
    injectors = env_num("INJECTORS", "8")
    timeout = env_num("TIMEOUT", "120", float)
    port = env_num("SINK_PORT", "0") or free_port()

    st = os.stat(home)
    if os.getuid() == 0:
        owner_ids = (st.st_uid, st.st_gid)
        as_owner = {"user": st.st_uid, "group": st.st_gid, "extra_groups": []}
        import pwd
        owner = pwd.getpwuid(st.st_uid).pw_name
    else:
        owner_ids, as_owner, owner = None, {}, None

    write_control(home, "smtproutes", f":127.0.0.1:{port}\n", owner_ids)
    sink = Sink(home, port, owner)
    log(f"remote-sink: smtp-sink[{sink.proc.pid}] on 127.0.0.1:{port};"
        f" control/smtproutes ':127.0.0.1:{port}'")
    results = []
    try:
        for c in conc:
            log(f"remote-sink: smtp-source -s {c} -m {n} -l {size} ...")
            src = smtp_source_case(sink, c, n, size)
            log(f"    {src['rate']:.0f} msg/s, sink received {src['received']}")
            log(f"remote-sink: rqmail, concurrencyremote {c}: filling the queue with {n}"
                f" messages ({injectors} rqmail-queue at a time) ...")
            r = rqmail_case(home, sink, c, n, size, injectors, as_owner, owner_ids, timeout)
            r["source"] = src
            results.append(r)
            log(f"    filled in {r['fill_s']:.1f} s; delivered in {r['secs']:.2f} s"
                f" ({r['rate']:.0f} msg/s), sink received {r['received']} in"
                f" {r['sessions']} sessions; {r['outcomes']}")
            if r["first_fail"]:
                log(f"    first non-success: {r['first_fail']}")
    finally:
        stop(sink.proc, "smtp-sink")

    print()
    print(f"rqmail remote delivery: queue (pre-filled, {n} messages of {size} bytes, 1 remote"
          f" recipient each) -> rqmail-send -> rspawn -> rqmail-remote -> smtp-sink on loopback;"
          f" timed from rqmail-start to the queue being empty")
    print("reference: smtp-source -s C -m N -l SIZE -> the same smtp-sink, same run (one"
          " connection per message, as rqmail-remote). CPU: instance = rqmail-send, lspawn,"
          " rspawn, clean and their children (every rqmail-remote); sink = smtp-sink;"
          " machine = all processes")
    print()
    hdr = (f"{'conc':>4} {'delivered/s':>11} {'received':>8} {'smtp-source/s':>13} {'ratio':>6}"
           f" {'CPU ms/msg':>10} {'sink ms/msg':>11} {'machine ms':>10} {'src machine ms':>14}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        s = r["source"]
        print(f"{r['conc']:>4} {r['rate']:>11.0f} {r['received']:>8} {s['rate']:>13.0f}"
              f" {r['rate'] / s['rate']:>6.2f} {r['cpu'] * 1e3 / n:>10.2f}"
              f" {r['sink_cpu'] * 1e3 / n:>11.2f} {r['machine_cpu'] * 1e3 / n:>10.2f}"
              f" {s['machine_cpu'] * 1e3 / n:>14.2f}")
    print()
    print("details:")
    for r in results:
        s = r["source"]
        procs = ", ".join(f"{k} {v * 1e3 / n:.2f}" for k, v in r["per_proc"].items())
        sink_rate = f"{r['sink_rate']:.0f}" if r["sink_rate"] else "-"
        first = f"{r['first_s']:.2f}" if r["first_s"] is not None else "-"
        print(f"  conc {r['conc']}: drained in {r['secs']:.2f} s; all at the sink at {sink_rate}"
              f" msg/s; first message at the sink after {first} s; sink sessions"
              f" {r['sessions']}; deliveries {r['outcomes']}; queue filled in"
              f" {r['fill_s']:.1f} s ({r['queued']} in todo); CPU ms/msg: {procs};"
              f" smtp-source: {s['secs']:.2f} s, received {s['received']}, its CPU"
              f" {s['gen_cpu'] * 1e3 / n:.2f} ms/msg, sink {s['sink_cpu'] * 1e3 / n:.2f} ms/msg")
        if r["first_fail"]:
            print(f"    first non-success: {r['first_fail']}")


if __name__ == "__main__":
    main()
